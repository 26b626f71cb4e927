"""deploy/kubernetes validates against the Kubernetes schemas (strict), and holds no secret values."""

from pathlib import Path

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
    assert "postgresql" not in text and "password" not in text.lower()
    assert "kind: Secret" not in text
