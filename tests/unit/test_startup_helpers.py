"""Pure parts of the startup messages: partition waits, refused logins, the banner, metrics parts, dev env."""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from kafkaguard.cli.dev import env_lines, psql_url
from kafkaguard.cli.startup import database_label, database_target
from kafkaguard.consumer.assignment_wait import AssignmentWait
from kafkaguard.db.login import login_refused, refused_reason
from kafkaguard.metrics.registry import Metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_consumer_without_partitions_says_so_every_ten_seconds_and_why() -> None:
    clock = FakeClock()
    wait = AssignmentWait("billing", static=False, session_timeout_ms=45_000, clock=clock)
    said = []
    for tick in range(0, 43):
        clock.now = float(tick)
        line = wait.check()
        if line is not None:
            said.append((tick, line))
    assert [t for t, _ in said] == [5, 15, 25, 35]
    assert said[0][1].startswith("group billing: waiting 5 s for partitions: the group is rebalancing")
    assert "session.timeout.ms = 45 s" in said[0][1] and "KAFKAGUARD_CONSUMER__INSTANCE_ID" in said[0][1]
    assert wait.assigned(3) == "group billing: got 3 partitions after waiting 42 s"
    assert wait.check() is None


def test_a_quick_join_is_not_reported_and_a_static_member_says_it_is_static() -> None:
    clock = FakeClock()
    wait = AssignmentWait("g", static=True, session_timeout_ms=10_000, clock=clock)
    clock.now = 3.0
    assert wait.check() is None
    assert wait.assigned(2) is None  # a normal join (~3 s) says nothing beyond "assigned"
    wait.waiting()  # revoked: a rebalance starts
    clock.now = 9.0
    line = wait.check()
    assert line is not None and line.startswith("group g: waiting 6 s for partitions")
    assert "this member is static" in line and "session.timeout.ms = 10 s" in line


def test_an_empty_assignment_names_the_cause() -> None:
    wait = AssignmentWait("g", static=False, session_timeout_ms=45_000, clock=FakeClock())
    line = wait.assigned(0)
    assert line is not None and "at least as many members as its topics have partitions" in line


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            'connection failed: connection to server at "127.0.0.1", port 25432 failed: FATAL:  password '
            'authentication failed for user "app"',
            'password authentication failed for user "app"',
        ),
        ('connection failed: ... failed: FATAL:  role "nobody" does not exist', 'role "nobody" does not exist'),
        (
            'connection failed: ... failed: FATAL:  no pg_hba.conf entry for host "1.2.3.4"',
            'no pg_hba.conf entry for host "1.2.3.4"',
        ),
        (
            'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the '
            "server running on that host and accepting TCP/IP connections?",
            None,
        ),
        ("server closed the connection unexpectedly", None),
    ],
)
def test_a_refused_login_is_told_from_an_outage(message: str, reason: str | None) -> None:
    exc = psycopg.OperationalError(message)
    assert refused_reason(exc) == reason
    wrapped = RuntimeError("while starting")  # found through the cause chain too (SQLAlchemy wraps it)
    wrapped.__cause__ = exc
    assert refused_reason(wrapped) == reason
    assert refused_reason(RuntimeError("password authentication failed")) is None  # not a database error


def test_the_refused_login_line_names_the_server_and_user_never_the_password() -> None:
    error = login_refused(
        "host='db.internal' port='6432' dbname='shop' user='app' password='s3cret-pw'", "password authentication failed"
    )
    assert str(error) == (
        "PostgreSQL at db.internal:6432/shop refused the login of user 'app' (password authentication failed): "
        "check the user and password in --url / KAFKAGUARD_DATABASE_URL"
    )
    assert "s3cret" not in str(error)


def test_the_banner_names_the_database_without_its_password() -> None:
    url = "postgresql+psycopg://app:s3cret-pw@db.internal:6432/shop"
    assert database_target(url, "signup") == "db.internal:6432/shop as app, schema signup"
    assert database_target(url, None).endswith("schema (search_path)")
    assert database_target(url + "?options=-csearch_path%3Dbilling", None).endswith("schema billing")
    assert database_target("", None) == "(none)"
    assert "s3cret" not in database_target("postgresql://app:s3cret-pw@[bad", None)


def test_on_mariadb_the_banner_names_the_database_the_schema_or_the_url_chooses() -> None:
    url = "mysql+pymysql://kg:s3cret-pw@maria.internal/kafkaguard"
    assert database_target(url, None) == "maria.internal:3306 as kg, database kafkaguard"
    assert database_target(url, "public") == "maria.internal:3306 as kg, database kafkaguard"  # the CLI's default
    assert database_target(url, "billing") == "maria.internal:3306 as kg, database billing"


def test_a_consumer_metrics_registry_holds_no_relay_metrics() -> None:
    consumer = generate_latest(Metrics(parts=frozenset({"consumer"})).registry).decode()
    assert "kafkaguard_relay_publish_seconds" not in consumer and "kafkaguard_relay_event_age" not in consumer
    assert "kafkaguard_consumer_applied" in consumer
    everything = generate_latest(Metrics().registry).decode()
    assert "kafkaguard_relay_publish_seconds_bucket" in everything
    with pytest.raises(ValueError, match="unknown metrics parts"):
        Metrics(parts=frozenset({"relays"}))


def test_dev_env_prints_export_lines_and_a_psql_url() -> None:
    info = {"bootstrap_servers": "127.0.0.1:29092", "database_url": "postgresql+psycopg://u:p w@127.0.0.1:25432/kg"}
    assert env_lines(info, "signup") == [
        "export KAFKAGUARD_BOOTSTRAP_SERVERS=127.0.0.1:29092",
        "export KAFKAGUARD_DATABASE_URL='postgresql+psycopg://u:p w@127.0.0.1:25432/kg'",
        "export KAFKAGUARD_DB_SCHEMA=signup",
        "# psql 'postgresql://u:p w@127.0.0.1:25432/kg?options=-csearch_path%3Dsignup'",
    ]
    assert psql_url("postgresql+asyncpg://u:p@h:1/d?sslmode=require") == "postgresql://u:p@h:1/d?sslmode=require"


_PART = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%@:/?#=&[]", max_size=12)
SECRET = "ZQSECRETXK"
"""A password in capitals: every generated part and every word the banner adds is lowercase, so a
capital letter in ``database_target``'s text (but its fixed "a URL that cannot be parsed") is a piece
of the password."""


@given(
    scheme=st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql", "mariadb", "mongodb", "mongodb+srv",
                            "bogus", ""]),
    user=_PART, cut=st.text(alphabet="/?#:@%", max_size=2), host=_PART, port=_PART, db=_PART, query=_PART,
    schema=st.one_of(st.none(), _PART),
)  # fmt: skip
def test_the_banner_helpers_are_total_and_never_show_the_password(
    scheme: str, user: str, cut: str, host: str, port: str, db: str, query: str, schema: str | None
) -> None:
    url = f"{scheme}://{user}:{SECRET[:4]}{cut}{SECRET[4:]}@{host}:{port}/{db}?{query}"  # cut: split it
    shown = database_target(url, schema).replace("(a URL that cannot be parsed)", "")
    assert shown == shown.lower(), f"{shown!r} shows part of the password of {url!r}"
    assert database_label(url) in ("PostgreSQL", "MariaDB", "MongoDB", "database")


@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=20)))
def test_the_banner_helpers_take_any_text(url: str, schema: str | None) -> None:
    assert isinstance(database_label(url), str) and isinstance(database_target(url, schema), str)


def test_a_mongodb_banner_is_host_and_database_only() -> None:
    url = "mongodb://reader:ZQSECRETXK@db1.internal:27017/activity?authSource=admin"
    assert database_target(url, None) == "db1.internal:27017/activity"
    assert database_label(url) == "MongoDB" and database_label("mysql+pymysql://h/d") == "MariaDB"
    assert database_label("not a url") == "database"
