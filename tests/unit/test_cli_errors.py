"""The CLI's error table and its one boundary (kafkaguard.cli.errors, kafkaguard.cli.app.run), without servers."""

from __future__ import annotations

import pytest
import typer
from pydantic import BaseModel, ValidationError

from kafkaguard.cli.app import run
from kafkaguard.cli.errors import FAILURE, USAGE, UsageProblem, describe, one_line, redact, secrets_of
from kafkaguard.errors import ConfigurationError, StoreUnavailableError


class _Settings(BaseModel):
    batch_size: int


def _validation_error() -> ValidationError:
    try:
        _Settings(batch_size="hunter2-secret")  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("exc", "code", "contains"),
    [
        (UsageProblem("pass --group"), USAGE, "pass --group"),
        (typer.BadParameter("bad value"), USAGE, "Invalid value: bad value"),
        (ConfigurationError("no database URL"), FAILURE, "no database URL"),
        (StoreUnavailableError("PostgreSQL is unreachable"), FAILURE, "PostgreSQL is unreachable"),
        (_validation_error(), FAILURE, "batch_size: Input should be a valid integer"),
        (RuntimeError("boom"), FAILURE, "unexpected RuntimeError: boom (run `kafkaguard --debug ...`"),
    ],
)
def test_describe(exc: BaseException, code: int, contains: str) -> None:
    failure = describe(exc)
    assert failure.exit_code == code
    assert contains in failure.message
    assert "\n" not in failure.message


def test_settings_errors_do_not_quote_the_value() -> None:
    assert "hunter2-secret" not in describe(_validation_error()).message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("two\nlines", "two lines"),
        ("esc \x1b[31m red", "esc \\x1b[31m red"),
        ("bidi \u202e override", "bidi \\u202e override"),
        ("café ✓", "café ✓"),
        ("nul \x00", "nul \\x00"),
    ],
)
def test_one_line(text: str, expected: str) -> None:
    assert one_line(text) == expected


def test_one_line_bounds_the_length() -> None:
    line = one_line("k" * 10_000, limit=100)
    assert line.startswith("k" * 100) and line.endswith("(10000 chars)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg://user:pw@host:5432/db", "postgresql+psycopg://user:***@host:5432/db"),
        ("host=h password='a b\\'c' dbname=x", "host=h password=*** dbname=x"),
        ("password=plain user=u", "password=*** user=u"),
        ("mentions Sup3rSecret here", "mentions *** here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text, ["Sup3rSecret"]) == expected


def test_secrets_of_the_command_line_and_environment() -> None:
    args = ["dead-letters", "list", "--url", "postgresql+psycopg://u:from-arg@h/db", "--url=postgresql://u:eq-form@h/d"]
    environ = {"KAFKAGUARD_DATABASE_URL": "postgresql+psycopg://u:from-env@h/db"}
    assert sorted(secrets_of(args, environ)) == ["eq-form", "from-arg", "from-env"]
    assert secrets_of(["--url", "not a url"], {}) == []


@pytest.mark.parametrize(
    "args",
    [
        ["dead-letters", "list", "--since", "not-a-date"],
        ["dead-letters", "list", "--store", "nosuch"],
        ["dead-letters", "show", "abc"],
        ["dead-letters", "list", "--no-such-option"],
        ["dead-letters", "list", "--limit", "-1"],
        ["dead-letters", "replay", "--store", "publisher", "--group", "g"],
        ["dead-letters", "replay", "--url", "postgresql+psycopg://u:pw@127.0.0.1:1/db"],  # no --app: before the DB
        ["restore", "publisher"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args) == USAGE
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out


def test_no_arguments_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == USAGE
    captured = capsys.readouterr()
    assert "dead-letters" in captured.out + captured.err and "error" not in captured.err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dead-letters", "replay", "--help"]) == 0
    assert "--app" in capsys.readouterr().out


def test_bad_url_is_one_line_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dead-letters", "list", "--url", "postgresql+psycopg://u:pw-secret@h:notaport/db"]) == FAILURE
    err = capsys.readouterr().err
    assert "bad database URL" in err and "pw-secret" not in err
