"""connect_cluster: the distributed worker's properties (no JVM started here; the integration test runs them)."""

from __future__ import annotations

import stat
from pathlib import Path

from kafkaguard.connect_security import FILE_PROVIDER
from kafkaguard.devstack.connect_cluster import DEV_TIMINGS, ConnectCluster


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_workers_share_a_group_and_its_topics_each_with_its_own_rest_port(tmp_path: Path) -> None:
    cluster = ConnectCluster(tmp_path, "127.0.0.1:9092", [18083, 18084], tmp_path / "jars", tmp_path / "plugins",
                             group_id="g1")  # fmt: skip
    assert [w.worker_id for w in cluster.workers] == ["127.0.0.1:18083", "127.0.0.1:18084"]
    assert cluster.topics == ["g1-configs", "g1-offsets", "g1-status"]
    seen = []
    for w in cluster.workers:
        w._write_worker()
        props = _props(w.worker_file)
        seen.append(props)
        assert props["group.id"] == "g1"
        assert props["listeners"] == f"http://127.0.0.1:{w.rest_port}"
        assert props["rest.advertised.host.name"] == "127.0.0.1"
        assert props["rest.advertised.port"] == str(w.rest_port)
        assert (props["config.storage.topic"], props["offset.storage.topic"], props["status.storage.topic"]) == (
            "g1-configs", "g1-offsets", "g1-status",
        )  # fmt: skip
        assert "offset.storage.file.filename" not in props  # offsets live in Kafka
        assert props["plugin.path"] == str(tmp_path / "plugins")
        assert props.items() >= FILE_PROVIDER.items()  # the password reference resolves
        assert props.items() >= DEV_TIMINGS.items()
        assert int(props["scheduled.rebalance.max.delay.ms"]) <= 10_000  # not Connect's five minutes
        assert (w.home / "log4j2.properties").exists()
    assert seen[0].keys() == seen[1].keys()


def test_the_password_file_is_private(tmp_path: Path) -> None:
    cluster = ConnectCluster(tmp_path, "b:9092", [1], tmp_path, tmp_path)
    cluster.write_password("s3cret")
    assert cluster.password_file.read_text() == "password=s3cret\n"
    assert stat.S_IMODE(cluster.password_file.stat().st_mode) == 0o600
