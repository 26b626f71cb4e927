"""Which errors are worth retrying.

An :class:`ErrorClassifier` checks the exception's class (and its bases) against two lists of
dotted names; ``permanent`` wins over ``retriable``; anything in neither gets ``default``.
kafkaguard's own decode errors and a typed handler's refused payload are always permanent (bytes do
not improve by waiting), and so is
any database error of SQLSTATE class 22 (data exception: a value the column refuses) or 23
(integrity constraint violation): the same statement with the same data fails the same way again,
so retrying in-process only delays the dead letter.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard.errors import DecodeError, EnvelopeError, PayloadValidationError

ALWAYS_PERMANENT: tuple[type[BaseException], ...] = (
    DecodeError,
    EnvelopeError,
    PayloadValidationError,
    RecursionError,
    UnicodeError,
)
PERMANENT_SQLSTATE_CLASSES = ("22", "23")


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error in ``exc`` or its causes (SQLAlchemy wraps the driver's), if any."""
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; a cycle must not hang us
        if seen is None:
            return None
        for candidate in (seen, getattr(seen, "orig", None)):
            code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if isinstance(code, str) and len(code) == 5:
                return code
        seen = seen.__cause__  # SQLAlchemy raises its wrapper `from` the driver's error
    return None


def is_deterministic(exc: BaseException) -> bool:
    """Whether ``exc`` fails the same way on every try: decode errors and SQLSTATE classes 22 and 23."""
    if isinstance(exc, ALWAYS_PERMANENT):
        return True
    code = sqlstate(exc)
    return code is not None and code[:2] in PERMANENT_SQLSTATE_CLASSES


def qualified_name(cls: type[BaseException]) -> str:
    """``module.QualName`` of an exception class (builtins without the module)."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class ErrorClassifier(BaseModel):
    """Classify exceptions as retriable or permanent by class name.

    ``retriable`` / ``permanent``: dotted class names (``ValueError``, ``myapp.errors.Conflict``);
    a name matches the class or any of its bases. ``default``: the answer for anything unlisted.
    """

    model_config = ConfigDict(frozen=True)
    retriable: tuple[str, ...] = Field(
        default=("TimeoutError", "ConnectionError", "sqlalchemy.exc.OperationalError"),
        description="exception classes (dotted names, bases match) retried in-process",
    )
    permanent: tuple[str, ...] = Field(
        default=("ValueError", "TypeError", "KeyError", "LookupError"),
        description="exception classes dead-lettered at once; wins over retriable",
    )
    default: bool = Field(default=True, description="whether an exception in neither list is retried")

    def is_retriable(self, exc: BaseException) -> bool:
        if is_deterministic(exc):
            return False
        names = {qualified_name(c) for c in type(exc).__mro__ if issubclass(c, BaseException)}
        if names & set(self.permanent):
            return False
        if names & set(self.retriable):
            return True
        return self.default
