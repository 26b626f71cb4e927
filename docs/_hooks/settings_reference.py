"""Markdown for the settings reference, generated from the pydantic models of :mod:`kafkaguard.settings`.

One section per table (``[relay]``, ``[consumer.retry]``, ...), one row per setting: its TOML key and
environment variable, its type with the model's constraints, its default *where it sits* (the
consumer's retry policy defaults to 3 attempts although a bare ``RetryPolicy`` has 5), and the
field's description. A union of models (``backoff``) gets a section per member.

A field without a description is returned in ``missing``; the hook turns each into a build warning, so
``mkdocs build --strict`` fails until the model says what its new setting means.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kafkaguard.settings import KafkaguardSettings
from kafkaguard.settings_sources import dotted, env_name


@dataclass
class Row:
    path: tuple[str, ...]
    type: str
    default: str
    description: str


@dataclass
class Table:
    path: tuple[str, ...]
    title: str
    doc: str
    rows: list[Row] = field(default_factory=list)


@dataclass
class Reference:
    tables: list[Table]
    missing: list[str]

    def paths(self) -> list[tuple[str, ...]]:
        return [row.path for table in self.tables for row in table.rows]


def _strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _model_members(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds: one for a sub-model, several for a union of models, none otherwise."""
    annotation = _strip_annotated(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [_strip_annotated(m) for m in get_args(annotation)]
        if all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            return members
    return []


def type_text(annotation: Any) -> str:
    """A reader's name for a field type: ``int``, ``str | none``, ``list of str``, ``"outbox" | "direct"``."""
    annotation = _strip_annotated(annotation)
    origin = get_origin(annotation)
    if annotation is type(None):
        return "none"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(json.dumps(member.value) for member in annotation)
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(member) for member in get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict or annotation is dict:
        args = get_args(annotation)
        value = type_text(args[1]) if len(args) == 2 else "any"
        return "table (any key)" if value == "any" else f"table of {value}"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "≤"),
)


def constraints_text(info: FieldInfo) -> str:
    """The field's bounds as ``≥ 1, ≤ 10000`` (empty when it has none)."""
    parts = []
    for item in info.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr)}")
    return ", ".join(parts)


def value_text(value: Any) -> str:
    """A default as it would be written in TOML/JSON: ``500``, ``"kafkaguard"``, ``[]``; unset for None."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "unset"
    if isinstance(value, tuple | frozenset | set):
        value = list(value)
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def escape(text: str) -> str:
    """Text that stays itself inside a Markdown table cell."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _tables(
    model: type[BaseModel], default: BaseModel | None, path: tuple[str, ...], title: str, missing: list[str]
) -> Iterator[Table]:
    table = Table(path, title, first_paragraph(model.__doc__))
    below: list[Iterator[Table]] = []
    for name, info in model.model_fields.items():
        sub_path = (*path, name)
        value = getattr(default, name) if default is not None else info.get_default(call_default_factory=True)
        members = _model_members(info.annotation)
        if members:
            below.append(_sub_tables(members, value, sub_path, info, missing))
            continue
        description = info.description or ""
        if not description:
            where = f"{model.__module__}.{model.__qualname__}.{name}"
            if where not in missing:
                missing.append(where)
        kind = type_text(info.annotation)
        bounds = constraints_text(info)
        table.rows.append(
            Row(
                path=sub_path,
                type=f"{escape(kind)}{', ' + escape(bounds) if bounds else ''}",
                default=value_text(value),
                description=escape(description),
            )
        )
    yield table
    for tables in below:
        yield from tables


def _sub_tables(
    members: list[type[BaseModel]], value: Any, path: tuple[str, ...], info: FieldInfo, missing: list[str]
) -> Iterator[Table]:
    if len(members) == 1:
        for table in _tables(members[0], value, path, f"[{dotted(path)}]", missing):
            if table.path == path and info.description:
                table.doc = f"{_sentence(info.description)} {table.doc}"
            yield table
        return
    # A union of models, told apart by a discriminator field (``kind``): one section per member.
    for member in members:
        current = value if type(value) is member else None
        tag = member.model_fields.get(str(info.discriminator or "kind"))
        tag_value = tag.default if tag is not None else member.__name__
        marker = " (default)" if current is not None else ""
        for table in _tables(
            member, current, path, f"[{dotted(path)}] kind = {json.dumps(tag_value)}{marker}", missing
        ):
            if table.path == path and info.description:
                table.doc = f"{_sentence(info.description)} {table.doc}"
            yield table


def build(model: type[BaseModel] = KafkaguardSettings) -> Reference:
    """Walk ``model`` (the root settings class) into tables of rows."""
    missing: list[str] = []
    tables = list(_tables(model, None, (), "Top level", missing))
    return Reference(tables, missing)


def render(reference: Reference) -> str:
    """The reference as Markdown: a section and a table per settings table."""
    lines: list[str] = []
    for table in reference.tables:
        if not table.rows:
            continue
        lines += [f"## {table.title}", ""]
        if table.doc:
            lines += [escape(table.doc), ""]
        lines += ["| setting | type | default | description |", "| --- | --- | --- | --- |"]
        for row in table.rows:
            setting = f"`{dotted(row.path)}`<br>`{env_name(row.path)}`"
            lines.append(f"| {setting} | {row.type} | {row.default} | {row.description} |")
        lines.append("")
    return "\n".join(lines)
