"""Fenced code blocks of Markdown files, and the commands inside shell blocks (pure; no I/O but reading).

A block can carry directives in HTML comments on the lines right above its fence (blank lines
between are allowed)::

    <!-- test: skip needs a second machine -->     not executed; the reason is required and printed
    <!-- test: continue -->                         python: runs after the previous python block of
                                                    the file, as one program (for a text that builds
                                                    an example up block by block)
    <!-- test: run -->                              shell: run the whole block with bash, not only check it
    <!-- test: file myservice/handlers.py -->       the block is that file: every later block of the same
                                                    document runs with it in its working folder (which is
                                                    on the path), so it can import it; python files are
                                                    also run themselves, and a ``test_*.py`` file
                                                    is run by pytest too (its tests must pass)

Python blocks run with ``__name__ == "__docs__"``: the part of a service example under
``if __name__ == "__main__":`` (start a server, run a worker until SIGTERM) is not run.

Languages: ``python``/``py`` blocks are executed; ``sh``/``bash``/``shell``/``console`` blocks are
checked (bash syntax, every program known, every ``kafkaguard`` command line parsed by the Typer app)
and their cheap read-only ``kafkaguard`` commands run; ``toml`` blocks are loaded as kafkaguard
settings; ``json`` blocks are parsed. Any other language (``text``, ``yaml``, none) is counted as
not executable.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = frozenset({"python", "py", "python3"})
SHELL = frozenset({"sh", "bash", "shell", "console", "zsh"})
TOML = frozenset({"toml"})
JSON = frozenset({"json"})

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<name>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$")
DIRECTIVES = frozenset({"skip", "continue", "run", "file"})


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts, its language, its text and its directives."""

    path: str
    line: int
    lang: str
    code: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def kind(self) -> str:
        if self.lang in PYTHON:
            return "python"
        if self.lang in SHELL:
            return "shell"
        if self.lang in TOML:
            return "toml"
        if self.lang in JSON:
            return "json"
        return "other"

    @property
    def skip_reason(self) -> str | None:
        return self.directives.get("skip")


class DirectiveError(ValueError):
    """A ``<!-- test: ... -->`` comment the harness does not understand, or a skip without reason."""


def blocks(text: str, path: str) -> list[Block]:
    """Every fenced block of the Markdown ``text`` (``path`` names it in ids and messages)."""
    found: list[Block] = []
    lines = text.split("\n")
    pending: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line)
        if directive:
            name, arg = directive["name"], directive["arg"]
            if name not in DIRECTIVES:
                raise DirectiveError(
                    f"{path}:{index + 1}: unknown directive 'test: {name}' (known: {sorted(DIRECTIVES)})"
                )
            if name == "skip" and not arg:
                raise DirectiveError(f"{path}:{index + 1}: 'test: skip' needs a reason")
            pending[name] = arg
            index += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip():
                pending = {}  # directives apply to the block right below them only
            index += 1
            continue
        marker, indent = fence["fence"], len(fence["indent"])
        lang = fence["info"].strip().split(" ")[0].lower() if fence["info"].strip() else ""
        body: list[str] = []
        start = index + 1
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(marker[0] * len(marker)) and set(closing) == {marker[0]}:
                break
            body.append(lines[index][indent:] if lines[index][:indent].strip() == "" else lines[index])
            index += 1
        found.append(Block(path, start, lang, "\n".join(body) + "\n", dict(pending)))
        pending = {}
        index += 1
    return found


def files_before(block: Block, every: list[Block]) -> dict[str, str]:
    """Relative path -> text of the ``file`` blocks of ``block``'s document above it (and itself)."""
    files: dict[str, str] = {}
    for other in every:
        if other.path == block.path and other.line <= block.line and "file" in other.directives:
            name = other.directives["file"]
            if not name or Path(name).is_absolute() or ".." in Path(name).parts:
                raise DirectiveError(f"{other.where}: 'test: file' needs a relative path inside the folder")
            files[name] = other.code
    return files


def python_program(block: Block, previous: list[Block]) -> str:
    """The code to run for ``block``: with ``continue``, the program of the python block before it first."""
    if "continue" not in block.directives:
        return block.code
    earlier = [b for b in previous if b.kind == "python" and b.path == block.path and b.line < block.line]
    if not earlier:
        raise DirectiveError(f"{block.where}: 'test: continue' but no python block before it")
    return python_program(earlier[-1], earlier[:-1]) + "\n" + block.code


def shell_script(block: Block) -> str:
    """The commands of a shell block: a ``console`` block's ``$ `` lines (and their continuations)."""
    if block.lang != "console":
        return block.code
    script: list[str] = []
    continuing = False
    for line in block.code.split("\n"):
        if line.startswith("$ "):
            script.append(line[2:])
            continuing = line.rstrip().endswith("\\")
        elif continuing:
            script.append(line)
            continuing = line.rstrip().endswith("\\")
    return "\n".join(script) + "\n"


_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "\n", ";;", "(", ")", "|&"})
_REDIRECTS = frozenset({">", ">>", "<", "<<", "<<<", ">&", "<&", "&>", "&>>", ">|"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def without_comments(script: str) -> str:
    """``script`` without its shell comments (a ``#`` starting a word outside quotes, to the end of the line)."""
    out: list[str] = []
    quote: str | None = None
    in_comment = False
    previous = "\n"
    for char in script:
        if in_comment:
            if char == "\n":
                in_comment = False
                out.append(char)
            continue
        if quote:
            if char == quote and previous != "\\":
                quote = None
        elif char in "'\"" and previous != "\\":
            quote = char
        elif char == "#" and previous in " \t\n;&|(":
            in_comment = True
            previous = char
            continue
        out.append(char)
        previous = char
    return "".join(out)


def simple_commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell script as argument lists, env assignments and redirections left out.

    Good enough for documentation: quotes, comments, continuation lines, ``&&``/``|``/``;`` and
    multi-line quoted arguments; no expansions (``$VAR`` stays as written).
    """
    lexer = shlex.shlex(without_comments(script).replace("\\\n", " "), posix=True, punctuation_chars=";&|()<>\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    skip_next = False
    for token in lexer:
        if token in _SEPARATORS:
            if words:
                yield words
            words = []
            continue
        if token in _REDIRECTS:
            skip_next = True
            continue
        if skip_next:
            skip_next = False
            continue
        if not words and _ASSIGNMENT.match(token):
            continue
        words.append(token)
    if words:
        yield words


def kafkaguard_args(words: list[str]) -> list[str] | None:
    """The arguments after ``kafkaguard`` in a command (``kafkaguard``, ``.venv/bin/kafkaguard``,
    ``python -m kafkaguard``); None when the command is not a kafkaguard command line."""
    program = Path(words[0]).name
    if program == "kafkaguard":
        return words[1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", program) and words[1:3] == ["-m", "kafkaguard"]:
        return words[3:]
    return None


def read_blocks(root: Path, relative: str) -> list[Block]:
    return blocks((root / relative).read_text(encoding="utf-8"), relative)
