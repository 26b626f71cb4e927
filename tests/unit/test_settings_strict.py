"""Strict settings: a typo in the environment, the TOML file or the arguments is one line naming the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from kafkaguard.devstack.stack import RUN_DIR_ENV
from kafkaguard.errors import ConfigurationError
from kafkaguard.masking import MASK, mask, mask_text
from kafkaguard.settings import CONFIG_ENV, ENV_PREFIX, NON_SETTING_VARIABLES, KafkaguardSettings, Source, explain
from kafkaguard.settings_schema import (
    ANY_KEY,
    annotation_at,
    children,
    data_path,
    first_unknown,
    is_structured,
    setting_paths,
)
from kafkaguard.settings_sources import env_name, environment_problems
from kafkaguard.testing.stacks import REUSE_ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no KAFKAGUARD_* variable (the shell running pytest may set some)."""
    import os

    for var in list(os.environ):
        if var.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(var)


def one_line_error(match: str) -> pytest.RaisesExc[ConfigurationError]:
    return pytest.raises(ConfigurationError, match=match)


def assert_one_line(exc: pytest.ExceptionInfo[ConfigurationError]) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    chained = exc.value.__cause__ or (None if exc.value.__suppress_context__ else exc.value.__context__)
    assert chained is None, f"no chained traceback under the one line: {chained!r}"
    return message


# --- environment -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [
        ("KAFKAGUARD_BOOTSTRAP_SERVER", "KAFKAGUARD_BOOTSTRAP_SERVERS"),
        ("KAFKAGUARD_PUBLISH__DEFAULT_MOD", "KAFKAGUARD_PUBLISH__DEFAULT_MODE"),
        ("KAFKAGUARD_CONSUMER_GROUP_ID", "KAFKAGUARD_CONSUMER__GROUP_ID"),  # one underscore for two
        ("KAFKAGUARD_RELAY__BATCHSIZE", "KAFKAGUARD_RELAY__BATCH_SIZE"),
        ("KAFKAGUARD_DATABASE_URI", "KAFKAGUARD_DATABASE_URL"),
        ("KAFKAGUARD_RESTORE__POLICY__MAX_ATTEMPT", "KAFKAGUARD_RESTORE__POLICY__MAX_ATTEMPTS"),
        ("KAFKAGUARD_CONSUMER__RETRY__BACKOFF__SECOND", "KAFKAGUARD_CONSUMER__RETRY__BACKOFF__SECONDS"),
        ("KAFKAGUARD_RUNDIR", "KAFKAGUARD_RUN_DIR"),  # the non-settings are suggested too
        ("KAFKAGUARD_GROUP_ID", "KAFKAGUARD_CONSUMER__GROUP_ID"),  # the table left out
        (
            "KAFKAGUARD_BATCH_SIZE",
            "KAFKAGUARD_RELAY__BATCH_SIZE, KAFKAGUARD_CONSUMER__BATCH_SIZE or KAFKAGUARD_RESTORE__BATCH_SIZE",
        ),
        ("kafkaguard_bootstrap_server", "KAFKAGUARD_BOOTSTRAP_SERVERS"),  # read case-insensitively, so checked so
        ("kafkaguard_config", "KAFKAGUARD_CONFIG"),  # read in upper case only: in lower case it would be ignored
    ],
)
def test_an_unknown_variable_names_the_nearest_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, nearest: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with one_line_error(re.escape(f"unknown setting {variable} in the environment; did you mean {nearest}?")) as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_an_unknown_variable_far_from_any_setting_lists_the_settings_of_its_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKAGUARD_RELAY__ZZZ", "1")
    with one_line_error("KAFKAGUARD_RELAY__ZZZ") as exc:
        KafkaguardSettings()
    message = assert_one_line(exc)
    assert "the settings there are KAFKAGUARD_RELAY__KIND, KAFKAGUARD_RELAY__BATCH_SIZE" in message


def test_every_unknown_variable_is_reported_in_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_BOOTSTRAP_SERVER", "x")
    monkeypatch.setenv("KAFKAGUARD_PUBLISH__DEFAULT_MOD", "direct")
    with one_line_error("KAFKAGUARD_BOOTSTRAP_SERVER.*; unknown setting KAFKAGUARD_PUBLISH__DEFAULT_MOD") as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_the_message_never_shows_the_value_of_an_unknown_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_DATABASE_URI", "postgresql://u:hunter2@db/app")
    with pytest.raises(ConfigurationError) as exc:
        KafkaguardSettings()
    assert "hunter2" not in str(exc.value)


def test_the_variables_that_are_not_settings_are_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in NON_SETTING_VARIABLES - {CONFIG_ENV}:
        monkeypatch.setenv(var, "1")
    (tmp_path / "kg.toml").write_text("")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "kg.toml"))
    assert KafkaguardSettings().bootstrap_servers == "127.0.0.1:29092"


def test_the_allow_list_holds_the_variables_kafkaguard_reads() -> None:
    from kafkaguard.cli.app import DEBUG_ENV
    from tests.fuzz.profile import FUZZ_ENV
    from tests.integration.test_consumer_rejoin_time import TRIES_ENV

    assert {CONFIG_ENV, RUN_DIR_ENV, REUSE_ENV, DEBUG_ENV, FUZZ_ENV, TRIES_ENV} == NON_SETTING_VARIABLES


def test_every_setting_has_an_accepted_variable() -> None:
    environ = {}
    for path in setting_paths(KafkaguardSettings):
        annotation = annotation_at(KafkaguardSettings, path)
        structured = is_structured(annotation)
        environ[env_name(path)] = ("{}" if children(annotation) is not None else "[]") if structured else "1"
    assert environment_problems(KafkaguardSettings, environ) == []


def test_nested_and_json_variables_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_PUBLISH__DEFAULT_MODE", "direct")
    monkeypatch.setenv("KAFKAGUARD_CONSUMER_CLIENT", '{"session.timeout.ms": 6000}')
    monkeypatch.setenv("KAFKAGUARD_PRODUCER__LINGER_MS", "5")  # below a mapping anything goes (librdkafka's names)
    monkeypatch.setenv("KAFKAGUARD_RESTORE__POLICY", '{"max_attempts": 2, "backoff": {"kind": "fixed", "seconds": 1}}')
    monkeypatch.setenv("KAFKAGUARD_CONSUMER__TOPICS", '["a", "b"]')
    settings = KafkaguardSettings()
    assert settings.publish.default_mode == "direct"
    assert settings.consumer_client == {"session.timeout.ms": 6000}
    assert settings.producer == {"linger_ms": "5"}
    assert settings.restore.policy.max_attempts == 2
    assert settings.consumer.topics == ("a", "b")


def test_a_list_that_is_not_json_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_CONSUMER__TOPICS", "orders,payments")
    with one_line_error("KAFKAGUARD_CONSUMER__TOPICS is not valid JSON .*; give a list as JSON") as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_an_invalid_value_names_the_setting_its_variable_and_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_RELAY__BATCH_SIZE", "many")
    with one_line_error(
        re.escape("invalid setting relay.batch_size = 'many' (env KAFKAGUARD_RELAY__BATCH_SIZE): Input should be")
    ) as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_every_variable_the_repository_sets_is_a_setting_or_allow_listed() -> None:
    """The env usage of src, tests, examples, bench and deploy still loads (files about typos aside)."""
    names: dict[str, str] = {}
    files = [REPO / "README.md", REPO / "Makefile"]
    for folder in ("src", "tests", "examples", "bench", "deploy", "docs"):
        files += sorted((REPO / folder).rglob("*"))
    for path in files:
        if path.suffix not in {".py", ".yaml", ".yml", ".md", ".toml", ".sh", ""} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "did you mean" in text:  # a test or doc of the typo messages themselves
            continue
        for name in re.findall(r"\bKAFKAGUARD_[A-Z0-9_]*[A-Z0-9]\b", text):
            names.setdefault(name, str(path.relative_to(REPO)))
    assert len(names) > 20
    problems = environment_problems(KafkaguardSettings, {name: "{}" for name in names})
    unknown = [(p, names[p.split()[2]]) for p in problems if p.startswith("unknown setting")]
    assert unknown == []


# --- the TOML file -----------------------------------------------------------------------------------


def use_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kafkaguard.toml"
    path.write_text(text)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return path


def test_a_nested_typo_in_the_file_names_the_nearest_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = use_file(monkeypatch, tmp_path, '[consumer]\ngroup = "billing"\n')
    with one_line_error(re.escape(f"unknown setting consumer.group in {path}; did you mean consumer.group_id?")) as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_a_top_level_typo_in_the_file_is_the_same_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = use_file(monkeypatch, tmp_path, 'bootstrap_server = "kafka:9092"\n')
    with one_line_error(re.escape(f"unknown setting bootstrap_server in {path}; did you mean bootstrap_servers?")) as e:
        KafkaguardSettings()
    assert_one_line(e)


def test_a_typo_inside_a_union_of_models_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_file(monkeypatch, tmp_path, '[restore.policy.backoff]\nkind = "fixed"\nsecnds = 60\n')
    with one_line_error(re.escape("did you mean restore.policy.backoff.seconds?")):
        KafkaguardSettings()


def test_a_valid_file_loads_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_file(
        monkeypatch,
        tmp_path,
        'bootstrap_servers = "file:9092"\n[relay]\nbatch_size = 7\n[producer]\n"linger.ms" = 5\n'
        '[publish.modes_by_type]\n"post.created" = "direct"\n',
    )
    monkeypatch.setenv("KAFKAGUARD_BOOTSTRAP_SERVERS", "env:9092")
    settings = KafkaguardSettings()
    assert settings.bootstrap_servers == "env:9092"
    assert settings.relay.batch_size == 7
    assert settings.producer == {"linger.ms": 5}
    assert settings.publish.modes_by_type == {"post.created": "direct"}


def test_an_invalid_value_in_the_file_names_file_and_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = use_file(monkeypatch, tmp_path, "[relay]\nbatch_size = 0\n")
    with one_line_error(re.escape(f"invalid setting relay.batch_size = 0 (file {path}:relay.batch_size)")) as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_a_missing_file_is_an_error_naming_a_file_nearby(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "kafkaguard.toml").write_text("")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "kafkaguard.tml"))
    with one_line_error(
        re.escape(f"{CONFIG_ENV} names {tmp_path / 'kafkaguard.tml'}, which does not exist (in {tmp_path}); ")
        + re.escape(f"did you mean {tmp_path / 'kafkaguard.toml'}?")
    ) as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_a_missing_file_in_a_missing_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "nowhere" / "missing.toml"))
    with one_line_error("which does not exist"):
        KafkaguardSettings(database_url="postgresql://x")  # an argument does not hide the missing file


@pytest.mark.parametrize(
    ("text", "match"),
    [("[relay\nbatch_size = 1\n", "is not valid TOML: .*line 1"), (b"\xff\xfe", "is not UTF-8 text")],
)
def test_a_broken_file_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str | bytes, match: str
) -> None:
    path = tmp_path / "kafkaguard.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setenv(CONFIG_ENV, str(path))
    with one_line_error(match) as exc:
        KafkaguardSettings()
    assert_one_line(exc)


def test_a_folder_instead_of_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path))
    with one_line_error("cannot read .*: Is a directory"):
        KafkaguardSettings()


def test_an_empty_config_variable_means_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, "")
    assert KafkaguardSettings().relay.batch_size == 500


# --- arguments ---------------------------------------------------------------------------------------


def test_a_typo_in_nested_arguments_is_refused() -> None:
    with one_line_error(re.escape("unknown setting relay.batchsize in the arguments; did you mean relay.batch_size?")):
        KafkaguardSettings(relay={"batchsize": 3})


def test_arguments_win_and_model_instances_pass() -> None:
    from kafkaguard.relay.settings import RelaySettings

    settings = KafkaguardSettings(relay=RelaySettings(batch_size=3), publish={"default_mode": "direct"})
    assert (settings.relay.batch_size, settings.publish.default_mode) == (3, "direct")


# --- explain: values and their sources ---------------------------------------------------------------


def test_explain_names_the_source_of_each_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = use_file(monkeypatch, tmp_path, '[relay]\nbatch_size = 7\n[producer]\n"sasl.password" = "pw1"\n')
    monkeypatch.setenv("KAFKAGUARD_DATABASE_URL", "postgresql+psycopg://kg:s3cret@127.0.0.1:25432/kg")
    monkeypatch.setenv("KAFKAGUARD_RESTORE__POLICY", '{"max_attempts": 2}')
    _, rows = explain(db_schema="signup")
    by_key = {row.key: row for row in rows}
    assert by_key["database_url"].value == f"postgresql+psycopg://kg:{MASK}@127.0.0.1:25432/kg"
    assert by_key["database_url"].source == Source("env", "KAFKAGUARD_DATABASE_URL")
    assert by_key["database_url"].env == "KAFKAGUARD_DATABASE_URL"
    assert by_key["relay.batch_size"].source == Source("file", f"{path}:relay.batch_size")
    assert by_key['producer."sasl.password"'].value == MASK
    assert by_key["restore.policy.max_attempts"].source == Source("env", "KAFKAGUARD_RESTORE__POLICY")
    assert by_key["restore.policy.backoff.kind"].source == Source("default")
    assert by_key["db_schema"].source == Source("argument")
    assert by_key["bootstrap_servers"].source.label == "default"
    assert "s3cret" not in repr(rows) and "pw1" not in repr(rows)


# --- the pure pieces ---------------------------------------------------------------------------------


def test_schema_walk() -> None:
    assert children(dict[str, int]) == ANY_KEY
    assert children(int | None) is None
    backoff = children(annotation_at(KafkaguardSettings, ("restore", "policy", "backoff")))
    assert isinstance(backoff, dict) and {"kind", "seconds", "base", "factor"} <= set(backoff)
    assert first_unknown(KafkaguardSettings, ("producer", "anything", "below")) is None
    assert first_unknown(KafkaguardSettings, ("relay", "batch_size", "x")) == 2
    assert data_path(KafkaguardSettings, ("restore", "policy", "backoff", "fixed", "seconds")) == (
        "restore",
        "policy",
        "backoff",
        "seconds",
    )
    assert data_path(KafkaguardSettings, ("consumer", "topics", 0)) == ("consumer", "topics")


@pytest.mark.parametrize(
    ("value", "key", "masked"),
    [
        (
            "postgresql+asyncpg://app:pa%40ss@db:5432/app",
            "database_url",
            f"postgresql+asyncpg://app:{MASK}@db:5432/app",
        ),
        ("postgresql://app@db/app", "database_url", "postgresql://app@db/app"),
        ("http://127.0.0.1:8080/events", "http_default_endpoint", "http://127.0.0.1:8080/events"),
        ("https://h/x?user=a&password=b&token=c", "", f"https://h/x?user=a&password={MASK}&token={MASK}"),
        ("anything", "sasl.password", MASK),
        ("anything", "sasl.oauthbearer.client.secret", MASK),
        ("", "sasl.password", ""),
        (SecretStr("x"), "plain", MASK),
        ({"ssl.key.password": "k", "linger.ms": 5}, "producer", {"ssl.key.password": MASK, "linger.ms": 5}),
        (["redis://:pw@h/0"], "urls", [f"redis://:{MASK}@h/0"]),
        (["s3cret-value"], "http_secrets", MASK),
        ([], "http_secrets", []),  # unset stays visible as unset
        (["/run/secrets/http"], "http_secret_files", ["/run/secrets/http"]),  # where, not what
    ],
)
def test_masking(value: object, key: str, masked: object) -> None:
    assert mask(value, key) == masked


def test_mask_text_keeps_host_and_database() -> None:
    assert mask_text("a postgresql://u:p@h:1/d b") == f"a postgresql://u:{MASK}@h:1/d b"


def test_a_partial_retry_policy_changes_only_what_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """One variable of a nested retry policy keeps the rest of *that field's* default: the in-process
    consumer retries stay 0.2 s doubling, not the restore jobs' hour."""
    from kafkaguard import KafkaguardSettings
    from kafkaguard.policies.backoff import Exponential

    monkeypatch.setenv("KAFKAGUARD_CONSUMER__RETRY__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("KAFKAGUARD_PUBLISH__BACKGROUND_RETRY__BACKOFF__MAX_SECONDS", "3")
    s = KafkaguardSettings()
    assert s.consumer.retry.max_attempts == 2
    assert s.consumer.retry.backoff == Exponential(base=0.2, factor=2, max_seconds=5, jitter=0.2)
    assert s.publish.background_retry.max_attempts == 3
    assert s.publish.background_retry.backoff == Exponential(base=0.5, factor=2, max_seconds=3, jitter=0.2)
    monkeypatch.setenv("KAFKAGUARD_CONSUMER__RETRY__BACKOFF__KIND", "fixed")
    monkeypatch.setenv("KAFKAGUARD_CONSUMER__RETRY__BACKOFF__SECONDS", "1")
    assert KafkaguardSettings().consumer.retry.backoff.delay(1, None) == 1.0  # another kind: replaced whole
    assert KafkaguardSettings().restore.policy.backoff.delay(1, None) == 3600.0  # untouched
