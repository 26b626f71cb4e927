"""The public API is exactly ``kafkaguard.__all__`` (and ``kafkaguard.testing.__all__``); this locks it
so a change is deliberate, checks that every name is importable lazily, and that the examples and
the README import nothing else."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import kafkaguard
import kafkaguard.testing

REPO = Path(__file__).resolve().parents[2]

PUBLIC = {
    # settings and policies
    "KafkaguardSettings", "TopicSettings", "ConsumerSettings", "RelaySettings", "RelayKind", "PublishSettings",
    "PublishMode", "RestoreSettings", "PublisherStrategy", "RetryPolicy", "Fixed", "Exponential", "Schedule",
    "ErrorClassifier", "HttpAuth",
    # events, publishing, relaying
    "Event", "Publisher", "PublishOutcome", "add_event", "add_event_async", "add_events", "add_events_async", "Relay",
    # consuming and restoring
    "HandlerRegistry", "HandlerContext", "BatchContext", "Position", "Outcome", "Worker", "RestoreResult", "due_keys",
    "restore_key", "retry_dead_letter", "restore_key_async", "retry_dead_letter_async", "PublisherRestoreJob",
    "ListenerRestoreJob",
    "RunReport", "run_every",
    # a worker process's garbage collector, as the worker commands set it
    "tune_gc",
    # engines that find kafkaguard's tables in db_schema
    "create_engine", "create_async_engine",
    # the http extra
    "receiving_router", "install_exception_handlers",
    # the console extra
    "create_console_app", "ConsoleSettings",
    # the mongo extra: document stores
    "MongoConsumerStore", "MongoPublisherDeadLetters",
    # errors
    "KafkaguardError", "ConfigurationError", "EnvelopeError", "DecodeError", "DecodeReason", "DevStackError",
    "ToolMissingError", "PortInUseError", "StartTimeoutError", "PublishError", "KafkaUnavailableError",
    "DeliveryTimeoutError", "KeyHeldError", "EventRejectedError", "PublishUnavailableError", "ConsumerError",
    "StoreUnavailableError", "UnknownEventTypeError", "IdConflictError", "PayloadValidationError",
    "DeadLetterNotFoundError", "SchemaNotReadyError", "AuthenticationError",
    "__version__",
}  # fmt: skip
TESTING = {
    "DevStack", "MemoryConsumerStore", "MemoryOutbox", "MemoryProducer", "MemoryPublisherDeadLetters",
    "MemoryRetention", "MemorySource", "MemoryStoreDown", "Pipeline", "Record", "ServiceProcess", "StoredMessage",
    "default_run_dir", "delete_topics", "ensure_topics", "free_ports", "poll", "upgrade_database",
}  # fmt: skip
# What ``kafkaguard/__init__.py`` itself needs in its namespace; everything else there is public.
PLUMBING = {"annotations", "importlib", "TYPE_CHECKING", "Any"}


def test_public_api_is_locked() -> None:
    assert set(kafkaguard.__all__) == PUBLIC
    assert len(kafkaguard.__all__) == len(PUBLIC)
    assert set(kafkaguard.testing.__all__) == TESTING


def test_every_error_derives_from_the_root_and_lives_in_errors() -> None:
    errors = [getattr(kafkaguard, n) for n in kafkaguard.__all__]
    errors = [e for e in errors if isinstance(e, type) and issubclass(e, BaseException)]
    assert len(errors) == 22
    for error in errors:
        assert issubclass(error, kafkaguard.KafkaguardError), error
        assert error.__module__ == "kafkaguard.errors", error
    defined = {
        v for v in vars(kafkaguard.errors).values() if isinstance(v, type) and issubclass(v, kafkaguard.KafkaguardError)
    }
    assert defined == set(errors), "every error of kafkaguard.errors is exported"


def test_every_public_name_of_the_namespace_is_in_all_and_all_names_resolve() -> None:
    for name in kafkaguard.__all__:  # resolves the lazy ones into the namespace
        assert getattr(kafkaguard, name) is not None, name
    namespace = {
        n for n, v in vars(kafkaguard).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert namespace - PLUMBING == set(kafkaguard.__all__) - {"__version__"}
    for name in kafkaguard.testing.__all__:
        assert getattr(kafkaguard.testing, name) is not None, name


def _type_checking_imports(path: Path) -> dict[str, str]:
    """``name -> module`` of the ``if TYPE_CHECKING:`` imports of ``path``."""
    tree = ast.parse(path.read_text())
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                out.update({a.asname or a.name: imp.module for a in imp.names})
    return out


def test_the_lazy_tables_match_the_type_checking_imports() -> None:
    """What mypy and IDEs see is what ``__getattr__`` imports; every public name is eager or lazy."""
    src = REPO / "src" / "kafkaguard"
    assert _type_checking_imports(src / "__init__.py") == kafkaguard._LAZY
    eager = {n for n in kafkaguard.__all__ if n in vars(kafkaguard.errors) or n == "__version__"}
    assert set(kafkaguard._LAZY) == set(kafkaguard.__all__) - eager
    testing = {n: m for n, (m, _) in kafkaguard.testing._LAZY.items()}
    assert _type_checking_imports(src / "testing" / "__init__.py") == testing
    assert set(testing) == set(kafkaguard.testing.__all__)


# --- the examples and the README -------------------------------------------------------------------


def _kafkaguard_imports(tree: ast.AST) -> list[tuple[str, set[str], int]]:
    """``(module, names, line)`` of every import of kafkaguard in ``tree`` (at any depth)."""
    out: list[tuple[str, set[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, set(), node.lineno) for a in node.names if a.name.split(".")[0] == "kafkaguard"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kafkaguard":
            out.append((node.module, {a.name for a in node.names}, node.lineno))
    return out


def _problems(where: str, tree: ast.AST) -> list[str]:
    problems = []
    for module, names, line in _kafkaguard_imports(tree):
        if module == "kafkaguard":
            bad = names - set(kafkaguard.__all__)
        elif module == "kafkaguard.testing":
            bad = names - set(kafkaguard.testing.__all__)
        else:
            bad = {f"module {module}"}
        problems += [f"{where}:{line}: {module} {name}" for name in sorted(bad)]
    return problems


def test_the_examples_import_only_the_public_api() -> None:
    files = sorted((REPO / "examples").rglob("*.py"))
    assert len(files) > 20
    problems = [p for f in files for p in _problems(str(f.relative_to(REPO)), ast.parse(f.read_text()))]
    assert problems == []


def test_the_python_blocks_of_the_readmes_and_docs_import_only_the_public_api() -> None:
    blocks = 0
    problems = []
    for readme in (REPO / "README.md", REPO / "examples" / "README.md", *sorted((REPO / "docs").rglob("*.md"))):
        for n, code in enumerate(re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)):
            blocks += 1
            problems += _problems(f"{readme.relative_to(REPO)} block {n}", ast.parse(code))
    assert blocks >= 2
    assert problems == []


def test_the_checker_sees_internal_imports() -> None:
    code = (
        "from kafkaguard import Event, Applier\nimport kafkaguard.consumer\n"
        "def f():\n    from kafkaguard.db import migrate\n"
    )
    assert _problems("x", ast.parse(code)) == [
        "x:1: kafkaguard Applier",
        "x:2: kafkaguard.consumer module kafkaguard.consumer",
        "x:4: kafkaguard.db module kafkaguard.db",
    ]
