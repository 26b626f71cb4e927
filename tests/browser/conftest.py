"""Playwright driving Debian's chromium (headless) against a console served by uvicorn, for tests/browser.

Chromium comes from the system (``scripts/install-system-deps.sh``); Playwright's own browser
download is never used. Screenshots go to ``reports/console/`` (git-ignored); ``make
console-screenshots`` copies two of them into ``docs/img/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

expect.set_options(timeout=20_000)  # a job page refreshes every second until its job finished
CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/install-system-deps.sh)
# --no-sandbox: the tests may run as root in a container, where chromium's sandbox cannot start; the
# rest keep chromium from reaching out to Google's hosts (refused on a closed network, many at a time).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium from the system; a missing binary fails with what to install.

    Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop running in the
    main thread while it is open, and every later test of the session that runs a loop of its own
    (``asyncio.run``, async handlers) would fail with "cannot be called from a running event loop"."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in a context of its own (no cookies from another test)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
