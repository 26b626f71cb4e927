"""The import graph between kafkaguard's top-level pieces: no cycle, and dependencies pointing one way.

Nodes are the top-level subpackages and modules of ``kafkaguard`` (``relay``, ``db``, ``envelope``,
...). One exception: ``kafkaguard.settings`` assembles the components' settings models
(``relay/settings.py``, ...), which import pure modules only (checked here); its imports of those
models are not edges to the component. Any other import of ``relay.settings`` is an edge to ``relay``.

Edges are read with :mod:`ast` from every file, so that nothing is imported:

- every ``import``/``from ... import`` naming a kafkaguard module counts, at module level or inside a
  function (a lazy import still couples the two, and still runs);
- importing ``kafkaguard.a.b`` also runs ``kafkaguard/a/__init__.py``: when that file imports
  kafkaguard modules itself, the import is an edge to ``a`` too (this is how a package that
  re-exports everything drags itself in);
- imports under ``if TYPE_CHECKING:`` never run: they are left out of the cycle check but kept in the
  layer check (a type named from a higher layer is still a dependency on it);
- ``from kafkaguard import X`` inside the package is an edge to the public facade (``__init__``).

Checked: (a) no cycle between nodes (``python -m kafkaguard``, the ``__main__`` module, aside);
(b) a node imports only its own layer or lower ones (:data:`LAYERS`), so (c) no component imports an
interface (cli, metrics, interfaces, testing, devstack). A cycle either stays inside one layer or
climbs a layer somewhere, so (a) is checked as: no cycle inside a layer, plus (b) for imports that
run; a last check proves that nothing but the known violations closes a cycle. Violations known today are listed in
:data:`KNOWN_CYCLES` and :data:`KNOWN_UPWARD`; the test fails when a new one appears *and* when a
listed one is gone, so the lists only shrink, deliberately.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import kafkaguard

PACKAGE = Path(kafkaguard.__file__).resolve().parent
# The components' settings models, which kafkaguard.settings assembles (pure: they import layer 0 only).
SETTINGS_MODELS = frozenset(
    {"consumer.settings", "publisher.settings", "relay.settings", "restore.settings", "console.settings"}
)

# Lower number = lower layer; a node may import its own layer and the ones below, never above.
PURE = ("envelope", "errors", "headers", "ids", "logtext", "masking", "raw_headers", "policies", "topics",
        "signals", "settings_schema", "settings_sources", "process_memory", "process_gc", "http_signing",
        "kafka_security", "connect_security", "tracing", "log_json")  # fmt: skip
LAYERS: dict[str, int] = {
    **dict.fromkeys(PURE, 0),  # data, decisions, names, text helpers
    "settings": 1,  # KafkaguardSettings: the component settings assembled, read from the environment
    "db": 2,  # engines, tables, locks, the migrations runner
    "stores": 3,  # the SQL of each table, on db
    "migrations": 3,  # Alembic scripts, on db's tables
    "transports": 4,  # Kafka adapters
    # components: take their ports (stores, transports) and report through hooks
    **dict.fromkeys(["relay", "consumer", "publisher", "restore", "maintenance"], 5),
    # interfaces and tooling: what users and operators run, built on the components
    **dict.fromkeys(["cli", "interfaces", "metrics", "testing", "devstack", "console", "__init__", "__main__"], 6),
}
COMPONENTS = frozenset(n for n, layer in LAYERS.items() if layer == 5)
INTERFACES = frozenset(n for n, layer in LAYERS.items() if layer == 6)

# Known violations, being removed by the issue-15 branches (producer, relaystore, consumerstore);
# the lead empties these lists as those branches merge. Each names the import that causes it.
KNOWN_CYCLES: set[frozenset[str]] = set()  # publisher <-> relay went with RelayKind's move to topics.py
KNOWN_UPWARD: set[tuple[str, str]] = set()  # settings -> consumer went with the lazy consumer/__init__.py


@dataclass(frozen=True)
class Edge:
    """One import from a node to another, where it is written and whether it runs."""

    source: str
    target: str
    where: str  # file:line
    typing_only: bool  # under ``if TYPE_CHECKING:``


def _module_path(name: str) -> Path | None:
    """The file of ``kafkaguard.<...>`` (a package's ``__init__.py``), or None when it is no module."""
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def node_of(name: str) -> str:
    """The node of module ``kafkaguard.<...>``: its top-level piece (``__init__`` for the facade)."""
    parts = name.split(".")[1:]
    return parts[0] if parts else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["kafkaguard", *parts])


def imports_of(tree: ast.AST, module: str, *, is_package: bool) -> Iterator[tuple[str, int, bool]]:
    """``(imported module, line, typing_only)`` for every kafkaguard import in ``tree`` (function-level
    ones included); ``from a import b`` names ``a.b`` when that is a module, else ``a``."""
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "kafkaguard":
                    yield alias.name, node.lineno, id(node) in typing_only
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            if base.split(".")[0] != "kafkaguard":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if _module_path(full) else base), node.lineno, id(node) in typing_only


@cache
def _runs_imports(init: Path) -> bool:
    """Whether a package's ``__init__.py`` imports kafkaguard modules when it runs."""
    name = _module_name(init)
    return any(not t for _, _, t in imports_of(ast.parse(init.read_text()), name, is_package=True))


def edges() -> list[Edge]:
    """Every edge between different nodes, from every file of the package."""
    return list(_edges())


@cache
def _edges() -> tuple[Edge, ...]:
    found: list[Edge] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        source = node_of(module)
        tree = ast.parse(path.read_text())
        for imported, line, typing_only in imports_of(tree, module, is_package=path.name == "__init__.py"):
            parts = imported.split(".")
            assembled = source == "settings" and ".".join(parts[1:3]) in SETTINGS_MODELS
            targets = set() if assembled else {node_of(imported)}
            for i in range(2, len(parts)):  # the packages on the way, whose __init__ runs first
                init = _module_path(".".join(parts[:i]))
                if init is not None and init.name == "__init__.py" and _runs_imports(init):
                    targets.add(node_of(".".join(parts[:i])))
            where = f"{path.relative_to(PACKAGE)}:{line}"
            found += [Edge(source, t, where, typing_only) for t in sorted(targets) if t != source]
    return tuple(found)


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.add(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _runtime_graph(all_edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for e in all_edges:
        if not e.typing_only and "__main__" not in (e.source, e.target):
            graph[e.source].add(e.target)
    return graph


def upward(all_edges: list[Edge]) -> dict[tuple[str, str], list[str]]:
    """Edges from a node to a higher layer, with where each is written."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in all_edges:
        if LAYERS[e.target] > LAYERS[e.source]:
            out[(e.source, e.target)].append(e.where + (" (TYPE_CHECKING)" if e.typing_only else ""))
    return out


def _same_layer(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {v: {w for w in ws if LAYERS[w] == LAYERS[v]} for v, ws in graph.items()}


def _describe(found: set[frozenset[str]], all_edges: list[Edge]) -> str:
    """Each cycle's edges, one line per pair of nodes with the first place it is written."""
    lines = []
    for component in sorted(found, key=sorted):
        first: dict[tuple[str, str], str] = {}
        for e in all_edges:
            if not e.typing_only and e.source in component and e.target in component:
                first.setdefault((e.source, e.target), e.where)
        inside = [f"{a} -> {b} ({where})" for (a, b), where in sorted(first.items())]
        lines.append(f"cycle {sorted(component)}:\n  " + "\n  ".join(inside))
    return "\n".join(lines)


# --- the checks ---------------------------------------------------------------------------------------


def test_every_piece_of_the_package_has_a_layer() -> None:
    nodes = {node_of(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert nodes - set(LAYERS) == set(), "place each new top-level module or subpackage in LAYERS"
    assert set(LAYERS) - nodes == set(), "LAYERS names a module that is gone"


def test_the_settings_models_kafkaguard_settings_assembles_are_pure() -> None:
    for name in sorted(SETTINGS_MODELS):
        path = PACKAGE.joinpath(*name.split(".")).with_suffix(".py")
        imported = {node_of(m) for m, _, _ in imports_of(ast.parse(path.read_text()), f"kafkaguard.{name}",
                                                         is_package=False)}  # fmt: skip
        assert {n for n in imported if LAYERS[n] > 0} == set(), f"{name} imports more than pure modules"


def test_no_cycle_inside_a_layer_beyond_the_known_ones() -> None:
    all_edges = edges()
    found = cycles(_same_layer(_runtime_graph(all_edges)))
    assert found - KNOWN_CYCLES == set(), "new import cycle:\n" + _describe(found - KNOWN_CYCLES, all_edges)
    assert KNOWN_CYCLES - found == set(), (
        f"a known cycle is gone or changed (now: {[sorted(c) for c in found]}): update KNOWN_CYCLES\n"
        + _describe(found, all_edges)
    )


def test_dependencies_point_down_the_layers_beyond_the_known_exceptions() -> None:
    found = upward(edges())
    new = {k: v for k, v in found.items() if k not in KNOWN_UPWARD}
    assert new == {}, "imports from a lower layer into a higher one (see LAYERS): " + repr(new)
    assert KNOWN_UPWARD - set(found) == set(), "a known exception is fixed: remove it from KNOWN_UPWARD"


def test_without_the_known_violations_the_graph_has_no_cycle() -> None:
    all_edges = [e for e in edges() if (e.source, e.target) not in KNOWN_UPWARD]
    graph = _runtime_graph(all_edges)
    for component in KNOWN_CYCLES:
        for v in component:
            graph[v] -= component
    found = cycles(graph)
    assert found == set(), _describe(found, all_edges)


def test_no_component_imports_an_interface_beyond_the_known_exceptions() -> None:
    found = {(e.source, e.target) for e in edges() if e.source in COMPONENTS and e.target in INTERFACES}
    assert found <= KNOWN_UPWARD, f"a component imports an interface: {sorted(found - KNOWN_UPWARD)}"


# --- the reader itself, on hand-written sources ------------------------------------------------------


def test_reader_counts_function_level_relative_and_typing_only_imports() -> None:
    source = """
from typing import TYPE_CHECKING
import kafkaguard.errors
from kafkaguard.db import columns, engine
from kafkaguard import Publisher
from . import plan
if TYPE_CHECKING:
    from kafkaguard.settings import KafkaguardSettings
def build():
    from kafkaguard.metrics.registry import Metrics
"""
    got = set(imports_of(ast.parse(source), "kafkaguard.relay.worker", is_package=False))
    assert got == {
        ("kafkaguard.errors", 3, False),
        ("kafkaguard.db.columns", 4, False),
        ("kafkaguard.db.engine", 4, False),
        ("kafkaguard", 5, False),
        ("kafkaguard.relay.plan", 6, False),
        ("kafkaguard.settings", 8, True),
        ("kafkaguard.metrics.registry", 10, False),
    }
    assert [node_of(m) for m in ("kafkaguard", "kafkaguard.relay.settings", "kafkaguard.settings")] == [
        "__init__",
        "relay",
        "settings",
    ]


def test_cycles_are_found_and_a_chain_is_not_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset({"a", "b", "c"})}
    assert cycles({"a": {"b"}, "b": {"c"}}) == set()
