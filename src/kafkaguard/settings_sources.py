"""Where kafkaguard's settings come from, read strictly: the environment, the TOML file, arguments.

- :func:`environment_problems`: every ``KAFKAGUARD_*`` variable must name a setting (or be one of
  :data:`NON_SETTING_VARIABLES`), and a table or list given in one must be JSON;
- :func:`config_file` / :func:`read_config_file`: the file named by ``KAFKAGUARD_CONFIG`` must exist,
  be TOML, and hold only settings;
- :class:`Layers`: each source's raw values, to say where an effective value came from.

Messages are one line, name the nearest valid setting, and never show a secret.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsError

from kafkaguard.errors import ConfigurationError
from kafkaguard.logtext import short
from kafkaguard.masking import mask
from kafkaguard.settings_schema import (
    annotation_at,
    children,
    data_path,
    first_unknown,
    is_structured,
    nearest,
    suggest,
    unknown_keys,
)

CONFIG_ENV = "KAFKAGUARD_CONFIG"
ENV_PREFIX = "KAFKAGUARD_"

NON_SETTING_VARIABLES = frozenset(
    {
        CONFIG_ENV,  # the TOML file of settings (this module)
        "KAFKAGUARD_RUN_DIR",  # the dev stack's run folder (kafkaguard.devstack.stack.RUN_DIR_ENV)
        "KAFKAGUARD_TEST_REUSE_STACK",  # pytest fixtures reuse a running dev stack (kafkaguard.testing.stacks)
        "KAFKAGUARD_DEBUG",  # the CLI prints tracebacks (kafkaguard.cli.app)
        "KAFKAGUARD_FUZZ",  # `make fuzz`'s full hypothesis profile (tests/fuzz/profile.py)
        "KAFKAGUARD_REJOIN_TRIES",  # kills per case in tests/integration/test_consumer_rejoin_time.py
    }
)
"""``KAFKAGUARD_*`` variables that kafkaguard reads but that are not settings; every other one must be a setting."""


def env_name(path: tuple[str, ...], prefix: str = ENV_PREFIX) -> str:
    """The environment variable of a setting: ``("relay", "batch_size")`` -> ``KAFKAGUARD_RELAY__BATCH_SIZE``."""
    return prefix + "__".join(path).upper()


def dotted(path: tuple[str, ...]) -> str:
    """A setting's TOML key: ``relay.batch_size``; a key that is not a bare TOML key is quoted."""
    return ".".join(p if p and all(c.isalnum() or c in "_-" for c in p) else json.dumps(p) for p in path)


def environment_problems(model: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """One message per ``KAFKAGUARD_*`` variable in ``environ`` that is no setting or whose JSON is broken."""
    problems: list[str] = []
    for var in sorted(environ):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX) or var in NON_SETTING_VARIABLES:  # those are read in upper case only
            continue
        path = tuple(upper.removeprefix(ENV_PREFIX).lower().split("__"))
        if first_unknown(model, path) is not None:
            problems.append(unknown_message(model, path, "environment", var=var))
            continue
        annotation = annotation_at(model, path)
        if is_structured(annotation):
            try:
                json.loads(environ[var])
            except ValueError as exc:
                kind = "table" if children(annotation) is not None else "list"
                problems.append(f"{var} is not valid JSON ({exc}); give a {kind} as JSON")
    return problems


def config_file(environ: Mapping[str, str]) -> Path | None:
    """The TOML file named by ``KAFKAGUARD_CONFIG`` (None when unset or empty); it must exist."""
    named = environ.get(CONFIG_ENV)
    if not named:
        return None
    path = Path(named)
    if not path.exists():
        folder = path.absolute().parent
        siblings = sorted(p.name for p in folder.glob("*.toml")) if folder.is_dir() else []
        best = nearest(path.name, siblings)
        hint = f"; did you mean {folder / best}?" if best else ""
        raise ConfigurationError(f"{CONFIG_ENV} names {named}, which does not exist (in {folder}){hint}")
    return path


def read_config_file(model: type[BaseModel], path: Path) -> dict[str, Any]:
    """The settings in the TOML file ``path``; an unknown key, bad TOML or an unreadable file raise."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} (named by {CONFIG_ENV}) is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} (named by {CONFIG_ENV}) is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path} (named by {CONFIG_ENV}): {exc.strerror}") from None
    unknown = [unknown_message(model, key, "file", file=path) for key in unknown_keys(model, data)]
    if unknown:
        raise ConfigurationError("; ".join(unknown))
    return data


Where = Literal["argument", "environment", "file"]


def unknown_message(
    model: type[BaseModel], path: tuple[str, ...], where: Where, *, var: str = "", file: Path | None = None
) -> str:
    """``unknown setting X in Y; did you mean Z?`` -- or the valid names at that level when none is near."""
    in_env = where == "environment"
    render = env_name if in_env else dotted
    extra = tuple((v.removeprefix(ENV_PREFIX).lower(),) for v in NON_SETTING_VARIABLES) if in_env else ()
    best = suggest(model, path, "__" if in_env else ".", extra)
    name = var or render(path)
    place = {"argument": "in the arguments", "environment": "in the environment", "file": f"in {file}"}[where]
    if best:
        names = [render(p) for p in best]
        either = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        return f"unknown setting {name} {place}; did you mean {either}?"
    index = first_unknown(model, path) or 0
    level = children(annotation_at(model, path[:index]))
    if isinstance(level, dict):
        there = ", ".join(render((*path[:index], n)) for n in level)
        return f"unknown setting {name} {place}; the settings there are {there}"
    return f"unknown setting {name} {place}: {render(path[:index])} is a single value"


def invalid_message(model: type[BaseModel], exc: ValidationError, arguments: Mapping[str, Any]) -> str:
    """A ValidationError as one line: each bad setting, its (masked) value, where it came from, what is wrong."""
    layers = Layers.read(model, arguments)
    parts = []
    for error in exc.errors(include_url=False):
        path = data_path(model, error["loc"])
        source = layers.source_of(path)
        given = mask(error.get("input"), path[-1] if path else "")
        value = repr(short(given, 60)) if isinstance(given, str) else short(given, 60)
        parts.append(f"invalid setting {dotted(path) or '(all)'} = {value} ({source.label}): {error['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from: ``default``, an ``argument``, ``env`` (variable) or ``file`` (file:key)."""

    kind: Literal["default", "argument", "env", "file"]
    origin: str | None = None

    @property
    def label(self) -> str:
        return self.kind if self.origin is None else f"{self.kind} {self.origin}"


@dataclass(frozen=True)
class Layers:
    """The raw values of each source, highest precedence first."""

    arguments: Mapping[str, Any]
    env: Mapping[str, Any]
    environ: Mapping[str, str]
    file: Path | None
    toml: Mapping[str, Any]

    @classmethod
    def read(cls, model: type[BaseModel], arguments: Mapping[str, Any]) -> Layers:
        """The layers as ``model(**arguments)`` sees them now (the process environment, its file)."""
        assert issubclass(model, BaseSettings)
        try:
            env: Mapping[str, Any] = EnvSettingsSource(model)()
        except SettingsError:
            env = {}
        file = config_file(os.environ)
        toml = read_config_file(model, file) if file is not None else {}
        upper_environ = {k.upper(): v for k, v in os.environ.items()}
        return cls(arguments, env, upper_environ, file, toml)

    def source_of(self, path: tuple[str, ...]) -> Source:
        if holds(self.arguments, path):
            return Source("argument")
        if holds(self.env, path):
            return Source("env", self._variable(path))
        if holds(self.toml, path):
            return Source("file", f"{self.file}:{dotted(path)}")
        return Source("default")

    def _variable(self, path: tuple[str, ...]) -> str | None:
        """The variable that set ``path``: the one named for it or for a table above it, else one below it."""
        for n in range(len(path), 0, -1):
            if env_name(path[:n]) in self.environ:
                return env_name(path[:n])
        below = sorted(v for v in self.environ if v.startswith(env_name(path) + "__"))
        return ", ".join(below) or None


def holds(data: Any, path: tuple[str, ...]) -> bool:
    """True when the nested ``data`` gives a value at ``path`` (a model instance gives every path below it)."""
    for part in path:
        if isinstance(data, BaseModel):
            return True
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True
