"""Which errors are worth retrying.

An :class:`ErrorClassifier` checks the exception's class (and its bases) against two lists of
dotted names; ``permanent`` wins over ``retriable``; anything in neither gets ``default``.
kafkaguard's own decode errors are always permanent (bytes do not improve by waiting).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kafkaguard.envelope import DecodeError, EnvelopeError

ALWAYS_PERMANENT: tuple[type[BaseException], ...] = (DecodeError, EnvelopeError)


def qualified_name(cls: type[BaseException]) -> str:
    """``module.QualName`` of an exception class (builtins without the module)."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class ErrorClassifier(BaseModel):
    """Classify exceptions as retriable or permanent by class name.

    ``retriable`` / ``permanent``: dotted class names (``ValueError``, ``myapp.errors.Conflict``);
    a name matches the class or any of its bases. ``default``: the answer for anything unlisted.
    """

    model_config = ConfigDict(frozen=True)
    retriable: tuple[str, ...] = ("TimeoutError", "ConnectionError", "sqlalchemy.exc.OperationalError")
    permanent: tuple[str, ...] = ("ValueError", "TypeError", "KeyError", "LookupError")
    default: bool = True

    def is_retriable(self, exc: BaseException) -> bool:
        if isinstance(exc, ALWAYS_PERMANENT):
            return False
        names = {qualified_name(c) for c in type(exc).__mro__ if issubclass(c, BaseException)}
        if names & set(self.permanent):
            return False
        if names & set(self.retriable):
            return True
        return self.default
