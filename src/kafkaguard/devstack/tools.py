"""Find the external programs the dev stack runs, with an actionable error when one is missing;
fetch the ones that come from a package registry (promtool) into the run directory once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kafkaguard.errors import DevStackError, ToolMissingError

_HINTS = {
    "java": "Install a JDK 17+ (Debian: `apt-get install -y openjdk-17-jre-headless`).",
    "mvn": "Install Maven (Debian: `apt-get install -y maven`); it fetches Kafka's jars.",
    "apt-get": "PostgreSQL 15 is installed from Debian's package; on another system install "
    "PostgreSQL 15 yourself and put its bin directory on PATH.",
    "go": "Install Go 1.24+ (Debian: `apt-get install -y golang`); it builds promtool from the Go module proxy.",
}

PROMTOOL_MODULE = "github.com/prometheus/prometheus/cmd/promtool"
PROMTOOL_VERSION = "v0.316.0"
"""Prometheus 3.x's Go module version (``v0.<minor>.<patch>`` for release ``3.<minor>.<patch>``)."""

PROMTOOL_BUILD_TIMEOUT = 1800.0
"""Seconds a first build may take: promtool compiles every service-discovery client (~10 min on 2 cores)."""


def require(tool: str) -> str:
    """Return the absolute path of ``tool`` or raise :class:`ToolMissingError` with a hint."""
    path = shutil.which(tool)
    if path is None:
        raise ToolMissingError(tool, _HINTS.get(tool, ""))
    return path


def promtool_path(run_dir: Path, version: str = PROMTOOL_VERSION) -> Path:
    """Where :func:`ensure_promtool` puts promtool ``version`` in ``run_dir``."""
    return run_dir / "tools" / f"promtool-{version}" / "promtool"


def debian_promtool_path(run_dir: Path) -> Path:
    """Where :func:`ensure_promtool` puts the promtool of Debian's ``prometheus`` package."""
    return run_dir / "tools" / "promtool-debian" / "promtool"


def find_promtool(run_dir: Path, version: str = PROMTOOL_VERSION) -> Path | None:
    """promtool if :func:`ensure_promtool` put one into ``run_dir`` already (Debian's, or ``version``
    built with Go), else a ``promtool`` on PATH, else None (nothing is fetched)."""
    for target in (debian_promtool_path(run_dir), promtool_path(run_dir, version)):
        if target.is_file() and os.access(target, os.X_OK):
            return target
    on_path = shutil.which("promtool")
    return Path(on_path) if on_path is not None else None


def debian_promtool(run_dir: Path) -> Path | None:
    """promtool out of Debian's ``prometheus`` package, unpacked into the run dir without installing
    the package (``apt-get download`` + ``dpkg-deb -x``: no root, and no Prometheus server that a
    package install would start). None where apt-get or the package is not available."""
    target = debian_promtool_path(run_dir)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        return None
    work = target.parent.with_name("promtool-debian.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        got = subprocess.run([apt, "download", "-qq", "prometheus"], cwd=work, capture_output=True, text=True,
                             check=False, timeout=600)  # fmt: skip
        debs = sorted(work.glob("prometheus_*.deb"))
        if got.returncode != 0 or not debs:
            return None
        unpacked = work / "root"
        subprocess.run([dpkg, "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True, timeout=300)
        binary = unpacked / "usr" / "bin" / "promtool"
        if not binary.is_file():
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(binary, target)
        return target
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_promtool(run_dir: Path, *, version: str = PROMTOOL_VERSION) -> Path:
    """Return a promtool in the run dir: Debian's (:func:`debian_promtool`, seconds), else
    ``<run dir>/tools/promtool-<version>/promtool`` built with ``go install`` when absent (a first
    build takes minutes; later calls return at once). An interrupted build leaves nothing that
    counts: the binary is moved into place only when ``go install`` succeeded.

    Raises :class:`ToolMissingError` without ``go`` on PATH, :class:`DevStackError` when the build
    fails (its output is in ``<run dir>/logs/promtool-build.log``).
    """
    target = promtool_path(run_dir, version)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    debian = debian_promtool(run_dir)
    if debian is not None:
        return debian
    go = require("go")
    staging = target.parent.with_name(target.parent.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0"}
    try:
        result = subprocess.run(
            [go, "install", f"{PROMTOOL_MODULE}@{version}"],
            env=env, capture_output=True, text=True, check=False, timeout=PROMTOOL_BUILD_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DevStackError(f"building promtool {version} took longer than {PROMTOOL_BUILD_TIMEOUT:.0f} s") from exc
    built = staging / "promtool"
    if result.returncode != 0 or not built.is_file():
        log = run_dir / "logs" / "promtool-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
        raise DevStackError(f"building promtool {version} with `go install` failed; read {log}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(built, target)
    shutil.rmtree(staging, ignore_errors=True)
    return target
