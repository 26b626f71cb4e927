"""Hypothesis strategies for what a broker can deliver and what plain SQL can put in the outbox.

Messages (:class:`Message`) carry raw key, value and header bytes; header names are ``str`` as in
:class:`kafkaguard.consumer.records.Record`, a name that is not UTF-8 surrogate-escaped (the form
:mod:`kafkaguard.raw_headers` encodes back to the exact bytes). The strategies reach: missing and
empty keys, NUL bytes, invalid UTF-8, keys longer than 255 characters up to large sizes; values
that are valid envelopes with random JSON payloads, nested 1..5000 levels, with ``\\u0000`` and
lone surrogate escapes, NaN, integers too long for Python's ``int()``, invalid UTF-8, huge,
non-object JSON, empty or missing; header names with NUL, long or not UTF-8, repeated; header
values missing, empty, NUL, invalid UTF-8, long; ``event_id``/``type`` headers valid or malformed.

A test runs a *plan*: a list of :class:`Poison` (anything), :class:`Good` (a valid event of a fresh
key: must be applied), :class:`Redeliver` (an earlier good event's bytes again: a duplicate) and
:class:`Conflict` (an earlier good event's id with another payload: an id conflict).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from kafkaguard import headers as H
from kafkaguard.consumer.records import Record
from tests.fuzz.app import TYPE, UNHANDLED_TYPE

Headers = tuple[tuple[str, bytes | None], ...]

# Text PostgreSQL and UTF-8 accept (no surrogates, no NUL): what "valid" parts are made of.
SAFE_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
ANY_CHARS = st.characters(codec="utf-8")  # NUL included
SAFE_TEXT = st.text(SAFE_CHARS, max_size=12)
SURROGATE_TEXTS = ("\ud800", "x\udfff", "\udfff\ud800", "\udc80tail")
NUL_TEXTS = ("\x00", "a\x00b", "\x00\x00")


@dataclass(frozen=True)
class Limits:
    """Bounds of the generated inputs (by path and profile).

    ``max_key``/``max_value``: bytes; ``max_payload``: the consumer's ``max_payload_bytes`` (values
    around it are generated on purpose); ``nul_names``/``undecodable_names``: header names a plain
    Python producer cannot send (it cuts a name at NUL; it takes only ``str`` names).
    """

    max_key: int = 100_000
    max_value: int = 300_000
    max_payload: int = 200_000
    max_name: int = 4_000
    nul_names: bool = True
    undecodable_names: bool = True


def _repeat(char: str, n: int) -> bytes:
    """About ``n`` bytes of ``char`` repeated (whole characters: the result stays valid UTF-8)."""
    return (char * max(1, n // len(char.encode("utf-8")))).encode("utf-8")


class PrettyByRepr:
    """Hypothesis prints a dataclass field by field; these print their own short ``repr``."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


class Fixture:
    """Fixtures are printed with every falsifying example: by their class name only."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"<{type(self).__name__}>")


def brief(value: bytes | str | None, limit: int = 160) -> str:
    """``repr(value)`` when short (an example can be pasted back), else its start and its length."""
    if value is None or len(value) <= limit:
        return repr(value)
    head = value[:limit]
    if len(set(value)) == 1:  # one repeated byte or character: say so
        return f"{value[:1]!r} * {len(value)}"
    return f"{head!r} + …({len(value)} {'bytes' if isinstance(value, bytes) else 'chars'} in all)"


def _undecodable(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _escaped_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, repr=False)
class Message(PrettyByRepr):
    """Raw key, value and headers of one Kafka message (no position yet)."""

    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    def record(self, topic: str, partition: int, offset: int) -> Record:
        return Record(topic, partition, offset, self.key, self.value, list(self.headers))

    @property
    def names_are_utf8(self) -> bool:
        """Whether a confluent-kafka Producer can send these header names (``str`` without NUL)."""
        for name, _ in self.headers:
            if "\x00" in name:
                return False
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                return False
        return True

    def size(self) -> int:
        hdrs = sum(len(n.encode("utf-8", "surrogateescape")) + len(v or b"") for n, v in self.headers)
        return len(self.key or b"") + len(self.value or b"") + hdrs

    def __repr__(self) -> str:  # hypothesis prints examples: keep 1 MB values readable
        hdrs = ", ".join(f"({brief(n, 60)}, {brief(v, 60)})" for n, v in self.headers)
        return f"Message(key={brief(self.key)}, value={brief(self.value)}, headers=[{hdrs}])"


@dataclass(frozen=True)
class Poison:
    """Any message the strategies reach (it may happen to be valid)."""

    message: Message


@dataclass(frozen=True)
class Good:
    """A valid event; the test gives it a fresh key and event id. It must be applied."""

    payload: dict[str, Any]
    extra_headers: Headers = ()
    ascii_json: bool = True

    def value(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=self.ascii_json).encode("utf-8")


@dataclass(frozen=True)
class Redeliver:
    """The bytes of the plan's ``index``-th good event (modulo their number) again: a duplicate."""

    index: int


@dataclass(frozen=True)
class Conflict:
    """The event id and key of the plan's ``index``-th good event with another payload."""

    index: int


PlanItem = Poison | Good | Redeliver | Conflict


# -- JSON ---------------------------------------------------------------------------------------
def safe_json() -> st.SearchStrategy[Any]:
    """JSON values PostgreSQL's jsonb and the handler accept (no NUL, no surrogates, finite)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(SAFE_CHARS, max_size=20),
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4),
        max_leaves=12,
    )


def wild_json() -> st.SearchStrategy[Any]:
    """JSON-ish values with NUL, lone surrogates, NaN, infinities and big integers in them."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(ANY_CHARS, max_size=20),
        st.sampled_from(SURROGATE_TEXTS + NUL_TEXTS),
    )
    keys = st.one_of(st.text(ANY_CHARS, max_size=8), st.sampled_from(SURROGATE_TEXTS + NUL_TEXTS))
    return st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12
    )


def good_payloads() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(SAFE_TEXT.filter(lambda k: k != "fail"), safe_json(), max_size=4)


def deep(max_depth: int = 5000) -> st.SearchStrategy[bytes]:
    """JSON nested 1..``max_depth`` levels: arrays, objects, inside an object, or never closed."""

    def build(args: tuple[int, str]) -> bytes:
        n, kind = args
        if kind == "array":
            return b"[" * n + b"]" * n
        if kind == "object":
            return b'{"a":' * n + b"1" + b"}" * n
        if kind == "inside":
            return b'{"a":' + b"[" * n + b"]" * n + b"}"
        return b'{"a":' + b"[" * n  # unclosed: the decoder recurses before it finds the end

    return st.tuples(st.integers(1, max_depth), st.sampled_from(["array", "object", "inside", "unclosed"])).map(build)


SPECIAL_VALUES = (
    b'{"n":NaN}',
    b'{"n":Infinity}',
    b'{"n":-Infinity}',
    b'{"s":"a\x00b"}',  # a raw NUL inside a JSON string (a control character: not JSON)
    b'{"s":"a\\u0000b"}',  # NUL escaped: valid JSON, refused by jsonb
    b'{"s":"\\ud800"}',  # lone surrogate escape
    b'{"s":"\\udfff\\ud800"}',
    b'{"\\u0000":1}',
    b'{"s":"\xff"}',  # invalid UTF-8
    b'{"s":"\xed\xa0\x80"}',  # an encoded surrogate (CESU-8): invalid UTF-8
    b'\xef\xbb\xbf{"a":1}',  # a byte order mark
    b'{"a":1,"a":2}',
    b'  {"a":1}  \n',
    b'{"a":1} trailing',
    b"{",
    b"}",
    b"null",
    b"[]",
    b'"text"',
    b"0",
    b"-0.0e-0",
    b'{"fail":"retriable"}',
    b'{"fail":"permanent"}',
)


def values(limits: Limits) -> st.SearchStrategy[bytes | None]:
    """Kafka values: anything from valid envelopes' payloads to bytes that are not JSON at all."""

    def wild(args: tuple[Any, bool]) -> bytes:
        obj, ascii_only = args
        return json.dumps(obj, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")

    def padded(n: int) -> bytes:
        return b'{"pad":"' + b"x" * n + b'"}'

    near_limit = st.integers(max(0, limits.max_payload - 20), limits.max_payload + 20)
    return st.one_of(
        st.none(),
        st.just(b""),
        st.tuples(st.dictionaries(st.text(ANY_CHARS, max_size=8), wild_json(), max_size=5), st.booleans()).map(wild),
        st.tuples(wild_json(), st.booleans()).map(wild),  # mostly not an object
        st.tuples(good_payloads(), st.booleans()).map(wild),
        deep(),
        st.sampled_from(SPECIAL_VALUES),
        st.integers(4_000, 6_000).map(lambda n: b'{"n":' + b"9" * n + b"}"),  # over int()'s 4300 digits
        st.one_of(st.integers(0, 1_000), near_limit, st.integers(1_000, limits.max_value)).map(padded),
        st.binary(max_size=64),
    )


# -- keys and headers ---------------------------------------------------------------------------
def keys(limits: Limits) -> st.SearchStrategy[bytes | None]:
    """Kafka keys: none, empty, NUL, not UTF-8, longer than 255 characters, up to ``max_key`` bytes."""
    return st.one_of(
        st.none(),
        st.just(b""),
        st.sampled_from([b"\x00", b"a\x00b", b"\xff", b"\xc3", b"k\xed\xa0\x80", b"unknown"]),
        st.text(SAFE_CHARS, min_size=1, max_size=40).map(str.encode),
        st.text(ANY_CHARS, min_size=1, max_size=40).map(str.encode),
        st.binary(min_size=1, max_size=40),
        st.text(SAFE_CHARS, min_size=256, max_size=400).map(str.encode),
        st.tuples(SAFE_CHARS, st.integers(256, limits.max_key)).map(lambda a: _repeat(a[0], a[1])),
    )


def header_names(limits: Limits, *, envelope: bool = True) -> st.SearchStrategy[str]:
    chars = ANY_CHARS if limits.nul_names else SAFE_CHARS
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(["traceparent", "x-trace", "", "é", "日本", "kafkaguard.reason"]),
        st.text(chars, max_size=16),
        st.integers(256, limits.max_name).map(lambda n: "n" * n),
    ]
    if envelope:
        options.append(st.sampled_from(list(H.ENVELOPE_HEADERS)))
    if limits.nul_names:
        options.append(st.sampled_from(["\x00", "a\x00b", "\x00event_id"]))
    if limits.undecodable_names:
        options.append(st.binary(min_size=1, max_size=8).filter(_undecodable).map(_escaped_name))
    names = st.one_of(*options)
    if not envelope:
        names = names.filter(lambda n: n not in H.ENVELOPE_HEADERS)
    return names


def header_values(limits: Limits) -> st.SearchStrategy[bytes | None]:
    return st.one_of(
        st.none(),
        st.just(b""),
        st.sampled_from([b"\x00", b"a\x00b", b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]),
        st.text(ANY_CHARS, max_size=20).map(str.encode),
        st.binary(max_size=20),
        st.integers(256, limits.max_name).map(lambda n: b"v" * n),
    )


MISSING = object()


def _field(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A header's value, ``None`` (a null header value) or ``MISSING`` (no header)."""
    return st.one_of(strategy, st.just(MISSING), st.none())


@st.composite
def envelope_headers(draw: st.DrawFn, limits: Limits) -> Headers:
    """``event_id``/``type``/... headers valid or malformed, plus extra headers, in any order."""
    text_bytes = st.text(ANY_CHARS, max_size=30).map(str.encode)
    event_id = draw(
        _field(
            st.one_of(
                st.uuids().map(lambda u: str(u).encode()),
                st.uuids().map(lambda u: str(u).encode()),
                st.sampled_from([b"", b"not-a-uuid", b"\x00", b"\xff\xfe", b"{" + b"0" * 32 + b"}"]),
                text_bytes,
            )
        )
    )
    type_ = draw(
        _field(
            st.one_of(
                st.just(TYPE.encode()),
                st.just(TYPE.encode()),
                st.just(UNHANDLED_TYPE.encode()),
                st.sampled_from([b"", b"fuzz.applied\x00", b"\x00", b"\xff", TYPE.encode() + b"\xc3"]),
                text_bytes,
                st.integers(256, 2_000).map(lambda n: b"t" * n),
            )
        )
    )
    occurred_at = draw(
        _field(st.sampled_from([b"2024-02-29T12:00:00+00:00", b"2024-02-29T12:00:00", b"9999-99-99", b"now", b""]))
    )
    version = draw(_field(st.sampled_from([b"1", b"0", b"-1", b"abc", b"99999999999999999999", b"", b"1.5", b" 2 "])))
    aggregate = draw(_field(text_bytes))
    out: list[tuple[str, bytes | None]] = []
    for name, value in (
        (H.EVENT_ID, event_id),
        (H.TYPE, type_),
        (H.OCCURRED_AT, occurred_at),
        (H.SCHEMA_VERSION, version),
        (H.AGGREGATE_TYPE, aggregate),
    ):
        if value is not MISSING:
            out.append((name, value))
    out += draw(st.lists(st.tuples(header_names(limits), header_values(limits)), max_size=4))
    return tuple(draw(st.permutations(out)))


@st.composite
def poison_messages(draw: st.DrawFn, limits: Limits) -> Message:
    return Message(draw(keys(limits)), draw(values(limits)), draw(envelope_headers(limits)))


@st.composite
def good_events(draw: st.DrawFn, limits: Limits) -> Good:
    chars = ANY_CHARS if limits.nul_names else SAFE_CHARS
    names = header_names(limits, envelope=False).filter(lambda n: "\x00" not in n or limits.nul_names)
    extra_names = names.filter(lambda n: not _surrogates(n))
    extras = draw(st.lists(st.tuples(extra_names, st.text(chars, max_size=20).map(str.encode)), max_size=3))
    return Good(draw(good_payloads()), tuple(extras), draw(st.booleans()))


def _surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def plans(limits: Limits, *, max_items: int, min_items: int = 1) -> st.SearchStrategy[list[PlanItem]]:
    """Lists of poison, good, redelivered and conflicting events (poison three times as likely)."""
    poison = poison_messages(limits).map(Poison)
    item = st.one_of(
        poison,
        poison,
        poison,
        good_events(limits),
        st.integers(0, 50).map(Redeliver),
        st.integers(0, 50).map(Conflict),
    )
    return st.lists(item, min_size=min_items, max_size=max_items)


# -- outbox rows --------------------------------------------------------------------------------
MAIN_TOPIC = "<main>"
OTHER_TOPIC = "<other>"
BAD_TOPICS = ("bad topic", "x" * 300, "tópico", "a/b", ".", "..", "a" * 250)


@dataclass(frozen=True, repr=False)
class RowSpec(PrettyByRepr):
    """One outbox row as plain SQL writes it; JSON columns as the text cast to ``jsonb``.

    ``topic``: ``None`` (the column's default: the aggregate type's topic, which the test maps to
    its main topic), :data:`MAIN_TOPIC`/:data:`OTHER_TOPIC` (the test's two topics) or a name
    Kafka refuses. ``headers``: ``None`` for the column default.
    """

    aggregatetype: str
    aggregateid: str
    type: str
    payload: str
    headers: str | None = None
    topic: str | None = MAIN_TOPIC
    schema_version: int = 1
    note: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return (
            f"RowSpec(aggregatetype={brief(self.aggregatetype, 40)}, aggregateid={brief(self.aggregateid, 60)},"
            f" type={brief(self.type, 40)}, payload={brief(self.payload)}, headers={brief(self.headers, 100)},"
            f" topic={brief(self.topic, 60)}, schema_version={self.schema_version})"
        )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def row_payloads(max_pad: int) -> st.SearchStrategy[str]:
    def nested(args: tuple[int, str]) -> str:
        n, kind = args
        if kind == "array":
            return "[" * n + "]" * n
        if kind == "inside":
            return '{"a":' + "[" * n + "]" * n + "}"
        return '{"a":' * n + "1" + "}" * n

    return st.one_of(
        st.dictionaries(SAFE_TEXT, safe_json(), max_size=5).map(_json),
        safe_json().map(_json),  # mostly not an object
        st.tuples(st.integers(1, 5000), st.sampled_from(["array", "inside", "object"])).map(nested),
        st.sampled_from(['{"n": 1e400}', '{"n": -0}', '{"n": 123456789012345678901234567890}', "{}", '""', "null"]),
        st.one_of(st.integers(0, 2_000), st.integers(900_000, max_pad)).map(lambda n: _json({"pad": "x" * n})),
    )


def row_headers() -> st.SearchStrategy[str | None]:
    def nested(n: int) -> str:
        return '{"a":' + "[" * n + "]" * n + "}"

    return st.one_of(
        st.none(),
        st.sampled_from(
            [
                "{}",
                "[]",
                '"text"',
                "1",
                "null",
                "true",
                '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}',
                '{"event_id": "not-this", "type": "nor-this"}',
                '{"a": null, "b": 1.5, "c": [1, {"d": 2}], "e": false}',
            ]
        ),
        st.dictionaries(st.text(SAFE_CHARS, max_size=30), st.text(SAFE_CHARS, max_size=30), max_size=4).map(_json),
        st.dictionaries(SAFE_TEXT, safe_json(), max_size=4).map(_json),
        st.integers(1, 5000).map(nested),
        st.integers(256, 100_000).map(lambda n: _json({"long": "v" * n})),
    )


def row_specs(*, max_key: int, max_pad: int) -> st.SearchStrategy[RowSpec]:
    """Outbox rows: keys of any text without NUL (empty, shared, long), odd types, payloads, headers, topics."""
    text = st.text(SAFE_CHARS, max_size=20)
    aggregateid = st.one_of(
        st.just(""),
        st.sampled_from(["A", "B", "unknown"]),  # shared keys: later rows of a key wait behind its dead letter
        text,
        st.integers(256, max_key).map(lambda n: "k" * n),
    )
    return st.builds(
        RowSpec,
        aggregatetype=st.one_of(st.just(""), st.just("fuzz"), text, st.integers(256, 5_000).map(lambda n: "a" * n)),
        aggregateid=aggregateid,
        type=st.one_of(st.just(TYPE), st.just(TYPE), st.just(""), text, st.integers(256, 5_000).map(lambda n: "t" * n)),
        payload=row_payloads(max_pad),
        headers=row_headers(),
        topic=st.one_of(
            st.just(MAIN_TOPIC),
            st.just(MAIN_TOPIC),
            st.just(OTHER_TOPIC),
            st.none(),
            st.just(""),
            st.sampled_from(BAD_TOPICS),
        ),
        schema_version=st.one_of(st.just(1), st.integers(-(2**31), 2**31 - 1)),
    )
