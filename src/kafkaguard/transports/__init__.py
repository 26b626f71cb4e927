"""Adapters to Kafka (confluent-kafka) and HTTP; client errors are translated here."""
