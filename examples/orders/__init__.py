"""The order service of the order note, on kafkaguard: orders + items + outbox row in one transaction."""
