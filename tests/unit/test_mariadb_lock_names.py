"""MariaDB named locks are built from outside data (Kafka keys, consumer groups, database names):
every input gives a name MariaDB accepts (at most 64 characters) and distinct inputs distinct names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kafkaguard.db.columns import OUTBOX_SHARDS
from kafkaguard.stores.outbox_mariadb import lock_prefix
from kafkaguard.stores.publisher_dead_letters_mariadb import key_lock_name

# Any text a decoded key or a group can hold, lone surrogates and NULs included.
ANY_TEXT = st.text(st.characters(codec=None), max_size=400)


@given(scope=ANY_TEXT, key=ANY_TEXT)
def test_key_lock_names_fit_mariadb_for_any_key(scope: str, key: str) -> None:
    name = key_lock_name(scope, key)
    assert len(name) <= 64 and name.isascii()
    assert name == key_lock_name(scope, key), "the same key always takes the same lock"


@given(scope=ANY_TEXT, a=ANY_TEXT, b=ANY_TEXT)
def test_different_keys_take_different_locks(scope: str, a: str, b: str) -> None:
    assert (key_lock_name(scope, a) == key_lock_name(scope, b)) == (a == b)


@given(database=st.text(st.characters(codec="utf-8"), min_size=1, max_size=64))
def test_shard_lock_names_fit_for_any_database_name(database: str) -> None:
    for kind in ("relay", "relay-presence"):
        longest = f"{lock_prefix(kind, database)}{max(OUTBOX_SHARDS, 256) - 1}"
        assert len(longest) <= 64
