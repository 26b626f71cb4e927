"""``kafkaguard config show`` and a misconfigured command, run as a user runs them (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kafkaguard.testing.fixtures import TestDatabase

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pw"


def kafkaguard(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m kafkaguard ARGS`` with only ``env``'s KAFKAGUARD_* variables (the runner's own are dropped)."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("KAFKAGUARD_")}
    path = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run(
        [sys.executable, "-m", "kafkaguard", *args],
        env={**base, "PYTHONPATH": path, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def test_config_show_masks_the_database_password_and_names_each_source(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:25432/app"
    config = tmp_path / "kafkaguard.toml"
    config.write_text('[relay]\nbatch_size = 42\n[producer]\n"sasl.password" = "pw-in-file"\n')
    env = {"KAFKAGUARD_DATABASE_URL": url, "KAFKAGUARD_CONFIG": str(config)}

    proc = kafkaguard("config", "show", env=env)
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout and "pw-in-file" not in proc.stdout
    lines = {line.split(" = ", 1)[0]: line for line in proc.stdout.splitlines() if " = " in line}
    assert ":***@" in lines["database_url"]
    assert lines["database_url"].endswith("# env KAFKAGUARD_DATABASE_URL")
    assert lines["relay.batch_size"].endswith(f"# file {config}:relay.batch_size")
    assert lines["bootstrap_servers"].endswith("# default")
    assert proc.stdout.splitlines()[0] == f"# settings file: {config}"

    proc = kafkaguard("config", "show", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout
    rows = {row["key"]: row for row in json.loads(proc.stdout)["settings"]}
    assert rows["database_url"]["source"] == "env"
    assert rows["database_url"]["origin"] == "KAFKAGUARD_DATABASE_URL"
    assert ":***@" in rows["database_url"]["value"]
    assert rows["relay.batch_size"] == {
        "key": "relay.batch_size",
        "env": "KAFKAGUARD_RELAY__BATCH_SIZE",
        "value": 42,
        "source": "file",
        "origin": f"{config}:relay.batch_size",
    }


def test_a_typo_in_a_variable_stops_the_relay_at_once_with_one_message(migrated_database: TestDatabase) -> None:
    """Without the check the relay would start against the default broker and run until killed."""
    env = {
        "KAFKAGUARD_DATABASE_URL": migrated_database.url,
        "KAFKAGUARD_BOOTSTRAP_SERVER": "127.0.0.1:1",  # no S
    }
    started = time.monotonic()
    proc = kafkaguard("relay", env=env, timeout=60)
    assert time.monotonic() - started < 60
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    # The one line may be wrapped by the terminal width of the error console: compare it unwrapped.
    message = " ".join(proc.stderr.split())
    assert (
        "error: unknown setting KAFKAGUARD_BOOTSTRAP_SERVER in the environment; "
        "did you mean KAFKAGUARD_BOOTSTRAP_SERVERS?"
    ) in message


def test_a_missing_file_and_a_nested_typo_stop_a_command(migrated_database: TestDatabase, tmp_path: Path) -> None:
    base = {"KAFKAGUARD_DATABASE_URL": migrated_database.url}
    proc = kafkaguard("db", "upgrade", env={**base, "KAFKAGUARD_CONFIG": str(tmp_path / "missing.toml")})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"KAFKAGUARD_CONFIG names {tmp_path / 'missing.toml'}, which does not exist" in " ".join(proc.stderr.split())

    config = tmp_path / "kafkaguard.toml"
    config.write_text('[consumer]\ngroup = "billing"\n')
    proc = kafkaguard("config", "show", env={**base, "KAFKAGUARD_CONFIG": str(config)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "unknown setting consumer.group in" in proc.stderr
    assert "did you mean consumer.group_id?" in " ".join(proc.stderr.split())
