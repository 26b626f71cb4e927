"""The operator console (``kafkaguard console``): server-rendered pages over the dead-letter stores.

Importing this package is cheap (it holds the settings model the core settings need); the web
application, which needs the ``console`` extra (FastAPI, Jinja2, uvicorn), is in
:mod:`kafkaguard.console.app` and public as :func:`kafkaguard.create_console_app`.
"""
