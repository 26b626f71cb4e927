"""http mode's request authentication (kafkaguard.http_signing): signatures, replay window, rotation, bearer tokens,
credentials from files, and secrets that never show (repr, errors, settings reports, ``config show --json``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from kafkaguard.cli.app import run
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError
from kafkaguard.http_signing import (
    MAX_SIGNATURES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AuthFailure,
    HttpAuth,
    RequestAuth,
    request_auth,
    sign,
)
from kafkaguard.publisher.http import HttpPublisher, body_of
from kafkaguard.publisher.settings import PublishMode, PublishSettings
from kafkaguard.settings import KafkaguardSettings, explain
from kafkaguard.topics import topic_for

OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-fedcba9876543210"
TOKEN = "gateway-token-0123456789"
NOW = 1_764_700_000.0
BODY = b'{"event_id":"e","payload":{"n":1}}'


def hmac_auth(*secrets: str, window: float = 300.0) -> RequestAuth:
    return request_auth(
        HttpAuth.HMAC, secrets=[SecretStr(s) for s in secrets], replay_window=window, prefix="consumer.http"
    )


def signed(auth: RequestAuth, body: bytes = BODY, now: float = NOW) -> dict[str, str]:
    return auth.headers(body, now)


def check(auth: RequestAuth, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> AuthFailure | None:
    return auth.check(body, now, timestamp=headers.get(TIMESTAMP_HEADER), signature=headers.get(SIGNATURE_HEADER))


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(NEW.encode(), b"1764700000." + BODY, hashlib.sha256).hexdigest()
    assert sign(NEW.encode(), 1_764_700_000, BODY) == expected
    assert signed(hmac_auth(NEW)) == {TIMESTAMP_HEADER: "1764700000", SIGNATURE_HEADER: f"v1={expected}"}


def test_a_signed_request_is_accepted_and_unsigned_or_tampered_ones_are_not() -> None:
    auth = hmac_auth(NEW)
    headers = signed(auth)
    assert check(auth, headers) is None
    assert check(auth, {}) is AuthFailure.MISSING_SIGNATURE
    assert check(auth, {TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER]}) is AuthFailure.MISSING_SIGNATURE
    assert check(auth, headers, body=BODY.replace(b"1", b"2")) is AuthFailure.BAD_SIGNATURE
    other_time = {**headers, TIMESTAMP_HEADER: str(int(NOW) + 1)}  # the timestamp is signed too
    assert check(auth, other_time) is AuthFailure.BAD_SIGNATURE
    assert check(hmac_auth(OLD), headers) is AuthFailure.BAD_SIGNATURE  # another secret
    assert check(auth, {**headers, SIGNATURE_HEADER: "v2=" + headers[SIGNATURE_HEADER][3:]}) is (
        AuthFailure.MISSING_SIGNATURE
    )


def test_the_replay_window_bounds_the_timestamp_both_ways() -> None:
    auth = hmac_auth(NEW, window=300)
    headers = signed(auth)
    assert check(auth, headers, now=NOW + 300) is None
    assert check(auth, headers, now=NOW - 300) is None
    assert check(auth, headers, now=NOW + 301) is AuthFailure.STALE_TIMESTAMP
    assert check(auth, headers, now=NOW - 301) is AuthFailure.STALE_TIMESTAMP  # from the future


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "-1764700000", "+1764700000", "1_764_700_000", "1.5", "١٢٣", "9" * 13]
)
def test_a_timestamp_that_is_not_plain_digits_is_refused(timestamp: str) -> None:
    auth = hmac_auth(NEW)
    headers = {**signed(auth), TIMESTAMP_HEADER: timestamp}
    assert check(auth, headers) is (AuthFailure.MISSING_SIGNATURE if timestamp == "" else AuthFailure.BAD_TIMESTAMP)


def test_rotation_any_listed_secret_and_any_listed_signature_is_accepted() -> None:
    receiver = hmac_auth(NEW, OLD)
    assert check(receiver, signed(hmac_auth(OLD))) is None  # a sender not yet switched
    assert check(receiver, signed(hmac_auth(NEW))) is None
    assert check(hmac_auth(NEW), signed(hmac_auth(OLD))) is AuthFailure.BAD_SIGNATURE  # OLD removed
    # A sender may send one signature per secret during the switch; one match is enough.
    both = f"v1={'0' * 64}, v1={sign(OLD.encode(), int(NOW), BODY)}"
    assert check(hmac_auth(OLD), {TIMESTAMP_HEADER: str(int(NOW)), SIGNATURE_HEADER: both}) is None
    assert signed(receiver)[SIGNATURE_HEADER] == f"v1={sign(NEW.encode(), int(NOW), BODY)}"  # the first signs


def test_only_the_first_signatures_of_a_long_header_are_looked_at() -> None:
    auth = hmac_auth(NEW)
    good = signed(auth)[SIGNATURE_HEADER]
    padding = ",".join(["v1=" + "0" * 64] * MAX_SIGNATURES)
    late = {TIMESTAMP_HEADER: str(int(NOW)), SIGNATURE_HEADER: f"{padding},{good}"}
    assert check(auth, late) is AuthFailure.BAD_SIGNATURE
    assert check(auth, {**late, SIGNATURE_HEADER: f"{good},{padding}"}) is None


def test_a_non_ascii_signature_is_refused_not_raised() -> None:
    auth = hmac_auth(NEW)
    headers = {**signed(auth), SIGNATURE_HEADER: "v1=é" + "0" * 63}
    assert check(auth, headers) is AuthFailure.MISSING_SIGNATURE


def test_bearer_tokens_accept_any_listed_one() -> None:
    auth = request_auth(HttpAuth.BEARER, tokens=[SecretStr(TOKEN), SecretStr(TOKEN + "-old")], prefix="consumer.http")
    assert auth.headers(BODY, NOW) == {"Authorization": f"Bearer {TOKEN}"}
    assert auth.check(BODY, NOW, authorization=f"Bearer {TOKEN}") is None
    assert auth.check(BODY, NOW, authorization=f"bearer {TOKEN}-old") is None
    assert auth.check(BODY, NOW, authorization=f"Bearer {TOKEN}x") is AuthFailure.BAD_TOKEN
    assert auth.check(BODY, NOW, authorization="Bearer é") is AuthFailure.BAD_TOKEN
    assert auth.check(BODY, NOW, authorization=f"Basic {TOKEN}") is AuthFailure.MISSING_TOKEN
    assert auth.check(BODY, NOW, authorization="Bearer ") is AuthFailure.MISSING_TOKEN
    assert auth.check(BODY, NOW) is AuthFailure.MISSING_TOKEN
    # A valid signature is no token.
    assert auth.check(BODY, NOW, **_as_kwargs(signed(hmac_auth(NEW)))) is AuthFailure.MISSING_TOKEN


def _as_kwargs(headers: dict[str, str]) -> dict[str, str]:
    return {"timestamp": headers[TIMESTAMP_HEADER], "signature": headers[SIGNATURE_HEADER]}


def test_mode_none_accepts_everything_and_sends_nothing() -> None:
    auth = request_auth(HttpAuth.NONE, prefix="consumer.http")
    assert auth.check(BODY, NOW) is None
    assert auth.headers(BODY, NOW) == {}


def test_without_credentials_the_error_names_the_settings_to_set() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ConsumerSettings().http_request_auth()
    message = str(caught.value)
    assert "consumer.http_secrets" in message and "KAFKAGUARD_CONSUMER__HTTP_SECRETS" in message
    assert 'consumer.http_auth = "none"' in message
    with pytest.raises(ConfigurationError, match="consumer.http_tokens or consumer.http_token_files"):
        ConsumerSettings(http_auth=HttpAuth.BEARER, http_secrets=(SecretStr(NEW),)).http_request_auth()


def test_bad_credentials_are_refused_without_showing_them(tmp_path: Path) -> None:
    short = "short-secret"
    with pytest.raises(ConfigurationError, match=r"consumer.http_secrets\[1\] is shorter than 16") as caught:
        ConsumerSettings(http_secrets=(SecretStr(short),)).http_request_auth()
    assert short not in str(caught.value)
    with pytest.raises(ConfigurationError, match="not both"):
        ConsumerSettings(http_secrets=(SecretStr(NEW),), http_secret_files=(tmp_path / "s",)).http_request_auth()
    spaced = "a token with spaces in it"
    with pytest.raises(ConfigurationError, match="printable ASCII") as caught:
        ConsumerSettings(http_auth=HttpAuth.BEARER, http_tokens=(SecretStr(spaced),)).http_request_auth()
    assert spaced not in str(caught.value)


def test_secrets_are_read_from_files_without_their_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "current").write_text(NEW + "\n")
    (tmp_path / "previous").write_text(OLD)
    settings = ConsumerSettings(http_secret_files=(tmp_path / "current", tmp_path / "previous"))
    auth = settings.http_request_auth()
    assert auth.keys == (NEW.encode(), OLD.encode())
    assert check(auth, signed(hmac_auth(OLD))) is None
    (tmp_path / "token").write_text(TOKEN + "\n")
    bearer = ConsumerSettings(http_auth=HttpAuth.BEARER, http_token_files=(tmp_path / "token",)).http_request_auth()
    assert bearer.check(BODY, NOW, authorization=f"Bearer {TOKEN}") is None


def test_an_unreadable_or_empty_secret_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read consumer.http_secret_files file .*missing"):
        ConsumerSettings(http_secret_files=(tmp_path / "missing",)).http_request_auth()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match=r"consumer.http_secret_files file .*empty is empty"):
        ConsumerSettings(http_secret_files=(tmp_path / "empty",)).http_request_auth()


def test_secrets_never_show_in_reprs_settings_reports_or_config_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKAGUARD_CONSUMER__HTTP_SECRETS", json.dumps([NEW, OLD]))
    monkeypatch.setenv("KAFKAGUARD_PUBLISH__HTTP_TOKENS", json.dumps([TOKEN]))
    settings = KafkaguardSettings()
    assert [s.get_secret_value() for s in settings.consumer.http_secrets] == [NEW, OLD]
    auth = settings.consumer.http_request_auth()
    shown = [repr(settings), str(settings), repr(auth), repr(settings.publish), settings.model_dump_json()]
    _, rows = explain()
    shown.append(json.dumps([(r.key, r.value) for r in rows]))
    assert run(["config", "show", "--json"]) == 0
    shown.append(capsys.readouterr().out)
    for text in shown:
        assert NEW not in text and OLD not in text and TOKEN not in text
    assert "consumer.http_secrets" in shown[-1]  # listed, masked


def test_an_invalid_secret_setting_does_not_echo_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_CONSUMER__HTTP_SECRETS", json.dumps([NEW, 7, {"x": OLD}]))
    with pytest.raises(ConfigurationError) as caught:
        KafkaguardSettings()
    assert "consumer.http_secrets" in str(caught.value)
    assert NEW not in str(caught.value) and OLD not in str(caught.value)


def _recording_publisher(settings: PublishSettings, seen: list[httpx.Request]) -> HttpPublisher:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    return HttpPublisher(settings, for_aggregate=topic_for, transport=httpx.MockTransport(handler), delay=lambda _: 0.0)


def test_the_publisher_signs_the_exact_body_it_sends_with_the_first_secret() -> None:
    seen: list[httpx.Request] = []
    settings = PublishSettings(
        default_mode=PublishMode.HTTP,
        http_default_endpoint="http://consumer/events",
        http_secrets=(SecretStr(NEW), SecretStr(OLD)),
    )
    event = Event(type="post.created", key="p1", payload={"text": "héllo"})
    _recording_publisher(settings, seen).deliver(event)
    (request,) = seen
    assert request.content == body_of(event) and json.loads(request.content) == event.to_json()
    assert request.headers["content-type"] == "application/json"
    headers = {TIMESTAMP_HEADER: request.headers[TIMESTAMP_HEADER], SIGNATURE_HEADER: request.headers[SIGNATURE_HEADER]}
    now = float(headers[TIMESTAMP_HEADER])
    assert check(hmac_auth(NEW), headers, body=request.content, now=now) is None
    assert check(hmac_auth(OLD), headers, body=request.content, now=now) is AuthFailure.BAD_SIGNATURE


def test_a_publisher_using_http_mode_without_credentials_does_not_start() -> None:
    with pytest.raises(ConfigurationError, match="publish.http_secrets or publish.http_secret_files"):
        HttpPublisher(PublishSettings(modes_by_aggregate={"post": PublishMode.HTTP}), for_aggregate=topic_for)
    # No rule uses http mode: every Publisher builds an HttpPublisher, which then needs nothing.
    HttpPublisher(PublishSettings(), for_aggregate=topic_for).close()
    opted_out = PublishSettings(
        default_mode=PublishMode.HTTP, http_auth=HttpAuth.NONE, http_default_endpoint="http://c/e"
    )
    seen: list[httpx.Request] = []
    _recording_publisher(opted_out, seen).deliver(Event(type="post.created", key="p1", payload={}))
    assert TIMESTAMP_HEADER not in seen[0].headers and SIGNATURE_HEADER not in seen[0].headers


# Header values as Starlette hands them over: any latin-1 text (HTTP header bytes decoded as latin-1).
_HEADER_VALUES = st.one_of(st.none(), st.text(st.characters(max_codepoint=0xFF), max_size=200))


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from([HttpAuth.HMAC, HttpAuth.BEARER]),
    body=st.binary(max_size=200),
    timestamp=_HEADER_VALUES,
    signature=_HEADER_VALUES,
    authorization=_HEADER_VALUES,
)
def test_check_is_total_over_arbitrary_header_values_and_refuses_forged_requests(
    mode: HttpAuth, body: bytes, timestamp: str | None, signature: str | None, authorization: str | None
) -> None:
    """Whatever the headers hold, check() answers (never raises), and a request not made with a key is refused."""
    auth = RequestAuth(mode, (NEW.encode(),))
    assert auth.check(body, NOW, timestamp=timestamp, signature=signature, authorization=authorization) in set(
        AuthFailure
    )
