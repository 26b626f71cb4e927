"""``uvicorn examples.dailyfeed.activity.main:app``: the activity service's API with settings from the environment."""

from examples.dailyfeed.activity.app import create_app

app = create_app()
