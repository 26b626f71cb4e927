"""Fetch Apache Kafka's jars from Maven Central with the project's ``pom.xml``.

The jars are copied into ``<run dir>/jars/<sha256 of pom.xml>/``; a marker file written last makes
the copy count only when complete, so an interrupted fetch is redone and an unchanged pom is never
fetched twice.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from kafkaguard.devstack.tools import require
from kafkaguard.errors import DevStackError

_COMPLETE = ".complete"


def pom_path() -> Path:
    """Return the path of the pom.xml shipped in this package."""
    return Path(str(resources.files("kafkaguard.devstack").joinpath("pom.xml")))


def ensure_kafka_jars(run_dir: Path, *, quiet: bool = True) -> Path:
    """Return a folder holding Kafka's runtime class path, fetching it with ``mvn`` when needed."""
    pom = pom_path()
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = run_dir / "jars" / digest
    if (target / _COMPLETE).exists():
        return target
    mvn = require("mvn")
    require("java")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    argv = [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={target}",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log = run_dir / "logs" / "mvn-fetch.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
        raise DevStackError(f"fetching Kafka's jars with Maven failed; read {log}")
    if not any(target.glob("kafka_2.13-*.jar")):
        raise DevStackError(f"Maven finished but no kafka_2.13 jar is in {target}; check {pom}")
    (target / _COMPLETE).write_text(digest)
    return target
