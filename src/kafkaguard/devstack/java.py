"""Running Kafka's published jars on the local JVM: command lines, log4j2 and properties files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kafkaguard.devstack.tools import require

_LOG4J2_BASE = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
"""


def write_log4j2(path: Path, loggers: Mapping[str, str]) -> Path:
    """Write a console-only log4j2 configuration with per-logger ``levels``; return ``path``."""
    lines = [_LOG4J2_BASE]
    for i, (name, level) in enumerate(loggers.items()):
        lines.append(f"logger.l{i}.name = {name}\nlogger.l{i}.level = {level}\n")
    path.write_text("".join(lines))
    return path


def write_properties(path: Path, props: Mapping[str, str]) -> None:
    """Write a Java ``.properties`` file (one ``key=value`` per line)."""
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


def java_argv(jars: Path, main: str, *args: str, heap_mb: int, log4j2: Path) -> list[str]:
    """``java`` with a bounded heap, G1, headless, ``log4j2`` and every jar of ``jars`` on the class path."""
    return [
        require("java"),
        f"-Xms{heap_mb // 2}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2}",
        "-cp",
        f"{jars}/*",
        main,
        *args,
    ]
