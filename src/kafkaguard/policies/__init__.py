"""Pure decisions: backoff schedules, retry-or-dead-letter, error classification. No I/O here."""
