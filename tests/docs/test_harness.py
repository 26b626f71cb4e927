"""The code-block harness itself: fences, directives, shell commands and kafkaguard command lines (pure, fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import codeblocks as cb
from tests.docs import commands

DOC = """# Title

<!-- test: skip needs a second machine -->
```python
print("skipped")
```

Some text.

```bash
kafkaguard db upgrade --schema app   # a comment; with a # inside
export A=1 && make test
```

<!-- test: continue -->

```python
print("second")
```

````markdown
```python
not a block of its own
```
````

```
plain
```
"""


def test_fences_languages_and_directives() -> None:
    found = cb.blocks(DOC, "doc.md")
    assert [(b.line, b.kind, b.lang) for b in found] == [
        (4, "python", "python"),
        (10, "shell", "bash"),
        (17, "python", "python"),
        (21, "other", "markdown"),
        (27, "other", ""),
    ]
    assert found[0].skip_reason == "needs a second machine"
    assert found[1].directives == {}
    assert "continue" in found[2].directives
    assert "not a block of its own" in found[3].code


def test_directive_applies_to_the_next_block_only() -> None:
    found = cb.blocks("<!-- test: skip why -->\ntext between\n```python\nx = 1\n```\n", "d.md")
    assert found[0].skip_reason is None


@pytest.mark.parametrize(
    "text", ["<!-- test: skip -->\n```python\n```\n", "<!-- test: frobnicate -->\n```python\n```\n"]
)
def test_bad_directives_are_errors(text: str) -> None:
    with pytest.raises(cb.DirectiveError):
        cb.blocks(text, "d.md")


def test_continue_chains_programs() -> None:
    found = cb.blocks(DOC, "doc.md")
    program = cb.python_program(found[2], found)
    assert program.index('print("skipped")') < program.index('print("second")')
    with pytest.raises(cb.DirectiveError):
        cb.python_program(cb.Block("x.md", 1, "python", "pass\n", {"continue": ""}), [])


def test_file_blocks_are_materialised_for_later_blocks_of_their_document() -> None:
    text = (
        "<!-- test: file svc/handlers.py -->\n```python\nregistry = 1\n```\n"
        "```python\nfrom svc.handlers import registry\n```\n"
    )
    first, second = cb.blocks(text, "d.md")
    assert cb.files_before(first, [first, second]) == {"svc/handlers.py": "registry = 1\n"}
    assert cb.files_before(second, [first, second]) == {"svc/handlers.py": "registry = 1\n"}
    other = cb.Block("other.md", 99, "python", "pass\n")
    assert cb.files_before(other, [first, second, other]) == {}
    with pytest.raises(cb.DirectiveError):
        escape = cb.Block("d.md", 1, "python", "x\n", {"file": "../outside.py"})
        cb.files_before(escape, [escape])


def test_simple_commands_split_like_a_shell() -> None:
    script = (
        "A=1 kafkaguard relay --schema app  # run it\n"
        'curl -s -X POST x -d \'{"a": 1,\n  "b": 2}\' && echo done | tee out.txt > /dev/null\n'
        "python -m kafkaguard \\\n    consume m:r --group g\n"
    )
    assert list(cb.simple_commands(script)) == [
        ["kafkaguard", "relay", "--schema", "app"],
        ["curl", "-s", "-X", "POST", "x", "-d", '{"a": 1,\n  "b": 2}'],
        ["echo", "done"],
        ["tee", "out.txt"],
        ["python", "-m", "kafkaguard", "consume", "m:r", "--group", "g"],
    ]


def test_console_blocks_keep_only_prompts() -> None:
    block = cb.Block("d.md", 1, "console", "$ kafkaguard --help\nUsage: ...\n$ echo a \\\n  b\noutput\n")
    assert cb.shell_script(block) == "kafkaguard --help\necho a \\\n  b\n"


def test_kafkaguard_command_lines_are_parsed_by_the_app() -> None:
    assert commands.parse_kafkaguard(["dead-letters", "list", "--store", "publisher"]) == ("dead-letters", "list")
    assert commands.parse_kafkaguard(["relay", "--help"]) == ("relay",)
    for wrong in (["relay", "--no-such-option"], ["no-such-command"], ["dev", "status", "[--json]"],
                  ["dead-letters", "list", "--store", "nowhere"]):  # fmt: skip
        with pytest.raises(commands.UnknownCommand):
            commands.parse_kafkaguard(wrong)


@pytest.mark.parametrize(
    ("words", "kind"),
    [
        (["make", "test"], "make"),
        ([".venv/bin/python", "-m", "examples.dailyfeed.batch", "--once"], "python -m"),
        ([".venv/bin/kafkaguard", "config", "show"], "kafkaguard"),
        (["uvicorn", "examples.orders.main:app"], "uvicorn"),
        (["export", "A=1"], "builtin"),
        (["curl", "-H", "content-type: application/json", "-d", '{"a": 1}'], "program"),
    ],
)
def test_known_commands(words: list[str], kind: str) -> None:
    assert commands.check(words) == kind


@pytest.mark.parametrize(
    "words",
    [
        ["make", "no-such-target"],
        ["python", "-m", "examples.no_such_module"],
        ["uvicorn", "examples.nothing:app"],
        ["uvicorn", "nosuchpackage.app:app"],
        ["no-such-program-kg", "--flag"],
        ["curl", "-H", "content-type: application/json", "-d", "{not json}"],
    ],
)
def test_unknown_commands(words: list[str]) -> None:
    with pytest.raises(commands.UnknownCommand):
        commands.check(words)


def test_modules_of_file_blocks_are_known(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "app.py").write_text("app = None\n")
    assert commands.check(["uvicorn", "svc.app:app"], roots=(tmp_path,)) == "uvicorn"
