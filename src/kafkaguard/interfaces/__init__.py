"""Interfaces to the outside: CLI helpers, HTTP (FastAPI) helpers."""
