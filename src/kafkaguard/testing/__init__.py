"""Test support: pytest fixtures that start the real Kafka and PostgreSQL (see ``fixtures``)."""
