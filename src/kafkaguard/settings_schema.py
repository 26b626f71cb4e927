"""Which keys a settings model accepts, and the nearest valid name for one it does not.

Pure functions over the pydantic model classes (no environment, no files), used by
:mod:`kafkaguard.settings` to refuse a typo instead of ignoring it:

- a sub-model (``relay``, ``consumer.retry``) accepts exactly its field names; a union of models
  (``backoff``: fixed | exponential | schedule) the names of any member;
- a mapping field (``producer``, ``consumer_client``, ``publish.modes_by_type``) accepts any key below it
  (librdkafka settings and event types are not ours to check);
- any other field is a single value and accepts no key below it.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

ANY_KEY = "*"
"""What :func:`children` returns for a mapping field: any key is valid below it."""

Children = dict[str, Any] | str | None
"""Field name -> annotation (a model), :data:`ANY_KEY` (a mapping), or None (a single value)."""

_MAPPINGS = (dict, Mapping)


def children(annotation: Any) -> Children:
    """The keys valid below a field of type ``annotation``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return children(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        merged: dict[str, Any] = {}
        for member in get_args(annotation):
            below = children(member)
            if below == ANY_KEY:
                return ANY_KEY
            if isinstance(below, dict):
                merged = {**below, **merged}
        return merged or None
    if origin in _MAPPINGS or annotation in _MAPPINGS:
        return ANY_KEY
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: field.annotation for name, field in annotation.model_fields.items()}
    return None


def setting_paths(model: type[BaseModel]) -> Iterator[tuple[str, ...]]:
    """Every settable path of ``model``, tables included (``("relay",)``, ``("relay", "batch_size")``)."""

    def walk(below: Children, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if isinstance(below, dict):
            for name, annotation in below.items():
                yield (*prefix, name)
                yield from walk(children(annotation), (*prefix, name))

    yield from walk(children(model), ())


def first_unknown(model: type[BaseModel], path: tuple[str, ...]) -> int | None:
    """The index of the first part of ``path`` that ``model`` does not accept; None when all are valid."""
    below = children(model)
    for index, part in enumerate(path):
        if below == ANY_KEY:
            return None
        if not isinstance(below, dict) or part not in below:
            return index
        below = children(below[part])
    return None


def unknown_keys(model: type[BaseModel], data: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The paths of the keys in the nested mapping ``data`` (a TOML file, arguments) ``model`` does not accept."""
    found: list[tuple[str, ...]] = []

    def walk(below: Children, node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        if below == ANY_KEY:
            return
        for key, value in node.items():
            path = (*prefix, str(key))
            if not isinstance(below, dict) or key not in below:
                found.append(path)
            elif isinstance(value, Mapping):
                walk(children(below[key]), value, path)

    walk(children(model), data, ())
    return found


def data_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """The keys of a pydantic error location, without the union tags and list indexes pydantic adds."""
    below = children(model)
    path: list[str] = []
    for part in loc:
        if below == ANY_KEY:
            path.append(str(part))
        elif isinstance(below, dict) and part in below:
            path.append(str(part))
            below = children(below[str(part)])
    return tuple(path)


def nearest(name: str, candidates: list[str], cutoff: float = 0.6) -> str | None:
    """The candidate most like ``name`` (difflib, case-insensitive), or None when none reaches ``cutoff``."""
    by_folded = {candidate.casefold(): candidate for candidate in candidates}
    match = difflib.get_close_matches(name.casefold(), list(by_folded), n=1, cutoff=cutoff)
    return by_folded[match[0]] if match else None


def suggest(
    model: type[BaseModel], path: tuple[str, ...], sep: str, extra: tuple[tuple[str, ...], ...] = ()
) -> list[tuple[str, ...]]:
    """The valid paths nearest to the invalid ``path`` (``extra`` counts as valid); empty when none is near.

    Two guesses compete: the unknown part against the other names of its table (``consumer.group`` ->
    ``consumer.group_id``), and the whole path, joined with ``sep``, against every path, which finds a
    wrong nesting (``CONSUMER_GROUP_ID`` -> ``CONSUMER__GROUP_ID``) but needs a closer match because
    paths sharing a table look alike. Failing both, the settings of that exact name in any table
    (``GROUP_ID`` -> ``CONSUMER__GROUP_ID``; ``BATCH_SIZE`` -> three of them).
    """
    index = first_unknown(model, path)
    index = len(path) - 1 if index is None else index
    every = [*setting_paths(model), *extra]
    siblings = {p[-1]: p for p in every if len(p) == index + 1 and p[:index] == path[:index]}
    whole = {sep.join(p): p for p in every}

    def ratio(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a.casefold(), b.casefold()).ratio()

    guesses = []
    sibling = nearest(path[index], list(siblings))
    if sibling is not None:
        guesses.append((ratio(path[index], sibling), siblings[sibling]))
    joined = nearest(sep.join(path), list(whole), cutoff=0.8)
    if joined is not None:
        guesses.append((ratio(sep.join(path), joined), whole[joined]))
    if guesses:
        return [max(guesses)[1]]
    return [p for p in every if p[-1] == path[-1] and p != path]


def annotation_at(model: type[BaseModel], path: tuple[str, ...]) -> Any:
    """The annotation of the field at ``path`` (a valid path, see :func:`first_unknown`); Any below a mapping."""
    annotation: Any = model
    for part in path:
        below = children(annotation)
        if not isinstance(below, dict):
            return Any
        annotation = below[part]
    return annotation


def is_structured(annotation: Any) -> bool:
    """True for a table or a list: pydantic-settings reads such a field's environment variable as JSON."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return is_structured(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(is_structured(member) for member in get_args(annotation) if member is not type(None))
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        return True
    return children(annotation) is not None
