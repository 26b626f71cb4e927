"""The consumer: at-least-once delivery from Kafka with exactly-once effects in the database."""
