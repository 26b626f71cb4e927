"""The dailyfeed content service, as is and without its outbox insert (part 6, write path).

``uvicorn --factory bench.content_apps:with_outbox``: ``examples/dailyfeed/content/app.py``
unchanged (``outbox`` mode: the post, the write journal row and the outbox row in one transaction).
``... :without_outbox``: the same app whose publisher adds nothing, so the transaction holds the
post and the journal row only — the difference is exactly the outbox insert (and its NOTIFY).
"""

from __future__ import annotations

from typing import Any

from examples.dailyfeed.content.app import create_app
from fastapi import FastAPI


def with_outbox() -> FastAPI:
    return create_app()


def without_outbox() -> FastAPI:
    app = create_app()

    async def publish_nothing(_session: Any, _event: Any) -> None:
        return None

    app.state.publisher.publish = publish_nothing  # the app's write() calls this publisher object
    return app
