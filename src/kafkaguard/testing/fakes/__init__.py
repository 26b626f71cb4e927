"""In-memory fakes of kafkaguard's ports, for unit tests (no Kafka, no PostgreSQL)."""
