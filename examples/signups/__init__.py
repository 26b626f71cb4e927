"""Two services on kafkaguard's public API: a signup service and a welcome-email service.

- The **signup service** (``app.py``, FastAPI, async SQLAlchemy): ``POST /signups`` inserts a
  ``users`` row and publishes ``user.signed_up`` through the outbox in the same transaction.
  ``kafkaguard relay`` publishes the outbox to Kafka.
- The **welcome service** (``handlers.py``): ``kafkaguard consume`` runs an ``async def`` typed
  handler that writes one ``welcome_emails`` row per signup through the inbox, exactly once. A
  signup from a domain in ``blocked_domains`` is refused permanently and dead-lettered; once the
  domain is unblocked, ``kafkaguard restore listener`` or ``kafkaguard dead-letters replay``
  applies it.

Each service owns a schema (``signup.toml``, ``welcome.toml``); the database URL and the broker
come from the environment (``KAFKAGUARD_DATABASE_URL``, ``KAFKAGUARD_BOOTSTRAP_SERVERS``).
"""
