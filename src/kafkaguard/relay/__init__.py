"""The outbox relay: publishes committed outbox rows to Kafka in per-key order."""
