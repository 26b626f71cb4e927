"""The public API is exactly kafkaguard.__all__; this locks it so a change is deliberate."""

import kafkaguard


def test_public_api_is_locked() -> None:
    assert sorted(kafkaguard.__all__) == sorted(
        [
            "BatchContext",
            "ConfigurationError",
            "ConsumerError",
            "DeadLetterNotFoundError",
            "DeliveryTimeoutError",
            "DevStackError",
            "Event",
            "EventRejectedError",
            "KafkaUnavailableError",
            "HandlerContext",
            "HandlerRegistry",
            "KafkaguardError",
            "Outcome",
            "PortInUseError",
            "PublishError",
            "PublishMode",
            "PublishOutcome",
            "PublishUnavailableError",
            "Publisher",
            "Relay",
            "RestoreResult",
            "SchemaNotReadyError",
            "StartTimeoutError",
            "StoreUnavailableError",
            "ToolMissingError",
            "UnknownEventTypeError",
            "Worker",
            "__version__",
            "add_event",
            "add_event_async",
            "add_events",
            "add_events_async",
            "create_async_engine",
            "create_engine",
            "due_keys",
            "receiving_router",
            "restore_key",
            "restore_key_async",
            "retry_dead_letter",
            "retry_dead_letter_async",
        ]
    )


def test_every_error_derives_from_the_root() -> None:
    for name in kafkaguard.__all__:
        obj = getattr(kafkaguard, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, kafkaguard.KafkaguardError), name
