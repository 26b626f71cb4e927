"""``uvicorn examples.signups.main:app``: the signup service with settings from ``KAFKAGUARD_*``."""

from examples.signups.app import create_app

app = create_app()
