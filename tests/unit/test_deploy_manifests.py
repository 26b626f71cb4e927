"""deploy/kubernetes validates against the Kubernetes schemas (strict), and holds no secret values."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
DOCS = [
    (path.name, i, doc)
    for path in sorted(DEPLOY.glob("*.yaml"))
    for i, doc in enumerate(yaml.safe_load_all(path.read_text()))
    if doc
]


def test_manifests_exist() -> None:
    kinds = sorted(doc["kind"] for _, _, doc in DOCS)
    assert kinds == ["ConfigMap", "CronJob", "CronJob", "CronJob", "Deployment", "Deployment"]


@pytest.mark.parametrize(("name", "index", "doc"), DOCS, ids=[f"{n}#{i}" for n, i, _ in DOCS])
def test_manifest_is_valid(name: str, index: int, doc: dict[str, object]) -> None:
    kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_invalid_manifest_is_caught() -> None:
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.37.0", strict=True)


def test_no_secret_values_in_manifests() -> None:
    text = "".join(p.read_text() for p in DEPLOY.glob("*.yaml"))
    assert "postgresql" not in text
    assert "kind: Secret" not in text
    for _, _, doc in DOCS:
        for container in _containers(doc):
            for var in container.get("env", []):
                if any(word in var["name"] for word in ("PASSWORD", "SECRET")):
                    assert "value" not in var, var  # a secret comes from a file or a secretKeyRef, never a literal
    config = next(doc for _, _, doc in DOCS if doc["kind"] == "ConfigMap")
    secrets = [k for k in config["data"] if any(w in k for w in ("PASSWORD", "SECRET"))]
    assert secrets and all(k.endswith("_FILE") for k in secrets)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec") or spec.get("template", {}).get(
        "spec"
    )
    return list(pod["containers"]) if pod else []


def _kafka_workloads() -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], doc)
        for _, _, doc in DOCS
        if any("cleanup" not in " ".join(c["command"]) for c in _containers(doc))
    ]


@pytest.mark.parametrize(("name", "doc"), _kafka_workloads(), ids=[n for n, _ in _kafka_workloads()])
def test_kafka_credentials_are_mounted_files(name: str, doc: dict[str, Any]) -> None:
    """Every workload that talks to Kafka mounts its own principal's Secret where the ConfigMap's
    ``*_FILE`` / ``*_LOCATION`` settings point, and names its principal."""
    config = next(d for _, _, d in DOCS if d["kind"] == "ConfigMap")["data"]
    paths = [
        v
        for k, v in config.items()
        if k.startswith("KAFKAGUARD_KAFKA_SECURITY__") and k.endswith(("_FILE", "_LOCATION"))
    ]
    assert paths
    (container,) = _containers(doc)
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert all(any(p.startswith(m + "/") for m in mounts) for p in paths), (paths, mounts)
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["KAFKAGUARD_KAFKA_SECURITY__USERNAME"].startswith("kafkaguard-")
