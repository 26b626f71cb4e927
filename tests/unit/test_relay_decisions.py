"""Pure decisions of the relay and of http mode, table-tested without Kafka or PostgreSQL."""

import pytest

from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError
from kafkaguard.publisher.http_rules import Verdict, endpoint_for, verdict
from kafkaguard.publisher.settings import PublishSettings
from kafkaguard.relay.plan import RowOutcome, plan_round
from kafkaguard.relay.shards import fair_share, to_release, to_try

A, T, R = RowOutcome.ACKED, RowOutcome.TRANSIENT, RowOutcome.REJECTED


def test_acked_rows_are_removed() -> None:
    plan = plan_round([("k", 1, A), ("j", 2, A)], block_key=True)
    assert (plan.remove, plan.dead_letter) == ([1, 2], [])


def test_transient_failure_stops_its_key_only_and_dead_letters_nothing() -> None:
    plan = plan_round([("k", 1, T), ("j", 2, A), ("k", 3, A)], block_key=True)
    assert plan.remove == [2] and plan.dead_letter == [] and plan.kept_after_failure == [3]


def test_rejected_row_is_dead_lettered_and_blocks_its_key() -> None:
    plan = plan_round([("k", 1, A), ("k", 2, R), ("k", 3, A), ("j", 4, A)], block_key=True)
    assert (plan.remove, plan.dead_letter, plan.kept_after_failure) == ([1, 4], [2], [3])


def test_without_blocking_the_key_flows_past_its_dead_letter() -> None:
    plan = plan_round([("k", 1, R), ("k", 2, A)], block_key=False)
    assert (plan.remove, plan.dead_letter) == ([2], [1])


@pytest.mark.parametrize(("live", "share"), [(0, 64), (1, 64), (2, 32), (3, 22), (64, 1), (100, 1)])
def test_fair_share(live: int, share: int) -> None:
    assert fair_share(64, live) == share


def test_release_and_try() -> None:
    assert to_release({1, 2, 3, 40}, 2) == [40, 3]
    assert to_release({1, 2}, 2) == []
    assert to_try({0, 1}, 4, 2, start=0) == []
    assert to_try({0}, 4, 3, start=3) == [3, 1, 2]


def test_http_verdicts() -> None:
    assert verdict(200, 1, 2) is Verdict.DONE
    assert verdict(204, 3, 2) is Verdict.DONE
    assert verdict(404, 1, 2) is Verdict.REJECTED
    assert verdict(503, 1, 2) is Verdict.RETRY
    assert verdict(None, 2, 2) is Verdict.RETRY
    assert verdict(None, 3, 2) is Verdict.REJECTED


def test_http_endpoint_lookup() -> None:
    s = PublishSettings(
        http_endpoints={"post.created": "http://a", "post": "http://b"}, http_default_endpoint="http://c"
    )
    assert endpoint_for(s, Event(type="post.created", key="1", payload={})) == "http://a"
    assert endpoint_for(s, Event(type="post.deleted", key="1", payload={})) == "http://b"
    assert endpoint_for(s, Event(type="comment.created", key="1", payload={})) == "http://c"
    with pytest.raises(ConfigurationError, match="no HTTP endpoint"):
        endpoint_for(PublishSettings(), Event(type="x.y", key="1", payload={}))


def test_a_key_stopped_in_the_previous_batch_stays_stopped_in_the_next() -> None:
    # Pipelined relay: batch N+1 was produced before batch N's failure on key k was known.
    plan = plan_round([("k", 5, A), ("j", 6, A), ("k", 7, R)], block_key=True, stopped={"k"})
    assert (plan.remove, plan.dead_letter, plan.kept_after_failure) == ([6], [], [5])
    assert plan.stopped == {"k"}


def test_stopped_keys_to_carry_into_the_next_batch() -> None:
    plan = plan_round([("k", 1, T), ("j", 2, R), ("m", 3, A)], block_key=True)
    assert plan.stopped == {"k", "j"}
    assert plan_round([("j", 2, R)], block_key=False).stopped == set()
