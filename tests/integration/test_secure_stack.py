"""The secured dev stack (``kafkaguard dev up --secure``) against real brokers and PostgreSQL.

A plain client that is not ours (kcat) produces and consumes over SCRAM and over mTLS with only
what ``dev status --json --show-secrets`` reports; plaintext, a wrong password and an untrusted
certificate are refused; the ACLs let each principal do its part and nothing else; PostgreSQL takes
TLS with ``verify-full`` and refuses a connection without it; the status without
``--show-secrets`` holds no password.

kcat is Debian's (1.7.1), which links Debian bookworm's librdkafka 2.0.2: its SCRAM client repeats
the client nonce in the final message (librdkafka#4895, fixed in 2.6.1) and Kafka 4.x, which checks
nonces strictly as RFC 5802 asks, refuses it as "invalid credentials". The SCRAM case therefore
runs the same kcat binary on the newer librdkafka that the confluent-kafka wheel ships
(``LD_LIBRARY_PATH``); the mTLS case runs it on Debian's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kafkaguard.devstack.certs import self_signed
from kafkaguard.devstack.secure import DENIED_TOPIC, TOPIC_PREFIX, UNREADABLE_TOPIC
from kafkaguard.devstack.stack import DevStack
from kafkaguard.testing import stacks


@pytest.fixture(scope="module")
def secure() -> Iterator[DevStack]:
    with stacks.secure_stack() as stack:
        yield stack


def _cli(stack: DevStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    argv = [sys.executable, "-m", "kafkaguard", "dev", *args, "--run-dir", str(stack.run_dir)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def _status(stack: DevStack, *, show_secrets: bool) -> dict[str, Any]:
    result = _cli(stack, "status", "--json", *(["--show-secrets"] if show_secrets else []))
    assert result.returncode == 0, result.stderr
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def _topic(stack: DevStack, name: str) -> str:
    admin = AdminClient(stack.client_security("operator", "mtls"))
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], request_timeout=20)
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return name


def _kcat(args: list[str], stdin: str | None = None, *, lib: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"LD_LIBRARY_PATH": str(lib)} if lib else {})}
    return subprocess.run(
        ["kcat", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False, env=env
    )


def _wheel_librdkafka(folder: Path) -> Path:
    """A folder holding ``librdkafka.so.1``: the confluent-kafka wheel's bundled librdkafka."""
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka-*.so.1"))
    assert found, f"no bundled librdkafka in {libs}"
    (folder / "librdkafka.so.1").symlink_to(found[0])
    return folder


@pytest.mark.parametrize("mechanism", ["scram", "mtls"])
def test_kcat_produces_and_consumes_with_only_what_status_reports(
    secure: DevStack, mechanism: str, tmp_path: Path
) -> None:
    info = _status(secure, show_secrets=True)
    lib = _wheel_librdkafka(tmp_path) if mechanism == "scram" else None
    topic = _topic(secure, f"{TOPIC_PREFIX}kcat{uuid.uuid4().hex[:8]}")
    if mechanism == "scram":

        def opts(who: str) -> list[str]:
            p = info["principals"][who]
            return ["-b", info["sasl_ssl_bootstrap_servers"], "-X", "security.protocol=SASL_SSL",
                    "-X", f"sasl.mechanism={info['sasl_mechanism']}", "-X", f"sasl.username={p['username']}",
                    "-X", f"sasl.password={p['password']}", "-X", f"ssl.ca.location={info['ca_file']}"]  # fmt: skip
    else:

        def opts(who: str) -> list[str]:
            p = info["principals"][who]
            return ["-b", info["ssl_bootstrap_servers"], "-X", "security.protocol=SSL",
                    "-X", f"ssl.ca.location={info['ca_file']}",
                    "-X", f"ssl.certificate.location={p['certificate_file']}",
                    "-X", f"ssl.key.location={p['key_file']}"]  # fmt: skip

    lines = [f"k{i}:v{i}-{mechanism}" for i in range(5)]
    produced = _kcat([*opts("relay"), "-P", "-t", topic, "-K", ":"], "\n".join(lines) + "\n", lib=lib)
    assert produced.returncode == 0, produced.stderr
    group = f"kafkaguard-kcat-{uuid.uuid4().hex[:8]}"
    consumed = _kcat(
        [*opts("consumer"), "-G", group, "-X", "auto.offset.reset=earliest", "-c", "5", "-f", "%k:%s\n", topic],
        lib=lib,
    )
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.split()) == sorted(lines)


def _metadata_error(config: dict[str, Any], timeout: float = 8.0) -> str | None:
    """None when ``config`` gets metadata, else the error librdkafka gives."""
    errors: list[str] = []
    admin = AdminClient(
        {**config, "socket.timeout.ms": 3000, "log_level": 0, "error_cb": lambda e: errors.append(str(e))}
    )
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return " ".join([str(exc), *errors])
    return None


def test_plaintext_wrong_password_and_untrusted_certificate_are_refused(secure: DevStack, tmp_path: Path) -> None:
    scram = secure.client_security("relay", "scram")
    mtls = secure.client_security("relay", "mtls")
    assert _metadata_error(scram) is None and _metadata_error(mtls) is None  # the right credentials work
    for bootstrap in (scram["bootstrap.servers"], mtls["bootstrap.servers"]):
        assert _metadata_error({"bootstrap.servers": bootstrap, "security.protocol": "PLAINTEXT"}) is not None
    started, errors = time.monotonic(), []
    producer = Producer({**scram, "sasl.password": "not-the-password", "log_level": 0, "error_cb": errors.append})
    while not errors and time.monotonic() - started < 10:
        producer.poll(0.2)
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors  # within 10 s, named as such
    assert "SCRAM-SHA-512" in errors[0].str() and "not-the-password" not in errors[0].str()
    stranger = self_signed(tmp_path, "relay")
    untrusted = {**mtls, "ssl.certificate.location": str(stranger.certificate), "ssl.key.location": str(stranger.key)}
    assert _metadata_error(untrusted) is not None
    # TLS without a client certificate on the mTLS listener is refused too
    no_cert = {k: v for k, v in mtls.items() if k not in ("ssl.certificate.location", "ssl.key.location")}
    assert _metadata_error(no_cert) is not None


def _produce_error(config: dict[str, Any], topic: str) -> KafkaError | None:
    outcome: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 15000, "log_level": 0})
    producer.produce(topic, b"v", key=b"k", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(30)
    assert len(outcome) == 1
    return outcome[0]


@pytest.mark.parametrize("mechanism", ["scram", "mtls"])
def test_each_principal_may_do_its_part_only(secure: DevStack, mechanism: str) -> None:
    relay = secure.client_security("relay", mechanism)
    own = _topic(secure, f"{TOPIC_PREFIX}own{uuid.uuid4().hex[:8]}")
    outside = _topic(secure, f"elsewhere.{uuid.uuid4().hex[:8]}")
    _topic(secure, DENIED_TOPIC)
    assert _produce_error(relay, own) is None
    for topic in (outside, DENIED_TOPIC):
        err = _produce_error(relay, topic)
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, err)

    _topic(secure, UNREADABLE_TOPIC)
    consumer = secure.client_security("consumer", mechanism)
    assert _first_consumer_error(consumer, f"kafkaguard-acl-{uuid.uuid4().hex[:6]}", UNREADABLE_TOPIC) == (
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    )
    # a group outside the consumer's prefix is refused
    assert _first_consumer_error(consumer, "not-ours", own) == KafkaError.GROUP_AUTHORIZATION_FAILED


def _first_consumer_error(config: dict[str, Any], group: str, topic: str) -> int | None:
    """The code of the first error a consumer of ``group`` subscribed to ``topic`` polls (30 s at most)."""
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", "log_level": 0})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is not None:
                return int(msg.error().code())
        return None
    finally:
        consumer.close()


def test_postgres_takes_verify_full_and_refuses_without_tls(secure: DevStack) -> None:
    info = secure.postgres.conninfo()
    assert "sslmode=verify-full" in info
    with psycopg.connect(info, connect_timeout=5) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    with pytest.raises(psycopg.OperationalError, match="no encryption|pg_hba.conf"):
        psycopg.connect(info.replace("sslmode=verify-full", "sslmode=disable"), connect_timeout=5)


def test_status_without_show_secrets_holds_no_password(secure: DevStack) -> None:
    shown = _status(secure, show_secrets=True)
    passwords = [p["password"] for p in shown["principals"].values()]
    passwords.append(secure.postgres.password_file.read_text().strip())
    assert all(len(p) >= 16 for p in passwords)
    masked = _cli(secure, "status", "--json").stdout + _cli(secure, "status").stdout
    assert not [p for p in passwords if p in masked]
    assert shown["denied_topic"] == DENIED_TOPIC and shown["unreadable_topic"] == UNREADABLE_TOPIC
