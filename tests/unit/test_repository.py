"""The repository holds no Java or Go source: Java only runs Kafka's published jars."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_java_or_go_source_is_tracked() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert tracked, "git ls-files returned nothing; is this a checkout?"
    foreign = [p for p in tracked if p.endswith((".java", ".go", ".scala", ".kt", ".class", ".jar"))]
    assert foreign == []
