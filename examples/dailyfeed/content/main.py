"""``uvicorn examples.dailyfeed.content.main:app``: the content service with settings from the environment."""

from examples.dailyfeed.content.app import create_app

app = create_app()
