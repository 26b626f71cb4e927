"""The pom pins Kafka 4.4.x with the log4j 2 slf4j binding, as Maven resolves it."""

import subprocess
from pathlib import Path

from kafkaguard.devstack.jars import ensure_kafka_jars, pom_path
from kafkaguard.devstack.stack import default_run_dir


def test_dependency_tree_pins_kafka_44_and_log4j(tmp_path: Path) -> None:
    out = tmp_path / "tree.txt"
    subprocess.run(
        ["mvn", "-B", "-q", "-f", str(pom_path()), "dependency:tree", f"-DoutputFile={out}"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    tree = out.read_text()
    assert "org.apache.kafka:kafka_2.13:jar:4.4." in tree
    assert "org.apache.logging.log4j:log4j-core:jar:2." in tree
    assert "org.apache.logging.log4j:log4j-slf4j-impl:jar:2." in tree
    assert "slf4j-reload4j" not in tree and "logback" not in tree  # exactly one slf4j binding


def test_jars_are_cached_by_pom_hash() -> None:
    first = ensure_kafka_jars(default_run_dir())
    marker = first / ".complete"
    stamp = marker.stat().st_mtime_ns
    again = ensure_kafka_jars(default_run_dir())
    assert again == first and marker.stat().st_mtime_ns == stamp  # not fetched twice
    assert any(first.glob("kafka_2.13-4.4.*.jar"))
