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


def pom_path(name: str = "pom.xml") -> Path:
    """Return the path of a pom shipped in this package (``pom.xml``: the broker; ``connect-pom.xml``)."""
    return Path(str(resources.files("kafkaguard.devstack").joinpath(name)))


def ensure_kafka_jars(run_dir: Path, *, quiet: bool = True) -> Path:
    """Return a folder holding Kafka's runtime class path, fetching it with ``mvn`` when needed."""
    return ensure_jars(run_dir, "pom.xml", "jars", expect="kafka_2.13-*.jar", quiet=quiet)


def ensure_jars(run_dir: Path, pom_name: str, folder: str, *, expect: str, quiet: bool = True) -> Path:
    """Copy the runtime closure of ``pom_name`` into ``<run dir>/<folder>/<pom hash>`` once."""
    pom = pom_path(pom_name)
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = run_dir / folder / digest
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
        log = run_dir / "logs" / f"mvn-fetch-{folder}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
        raise DevStackError(f"fetching jars for {pom_name} with Maven failed; read {log}")
    if not any(target.glob(expect)):
        raise DevStackError(f"Maven finished but nothing matching {expect} is in {target}; check {pom}")
    (target / _COMPLETE).write_text(digest)
    return target
