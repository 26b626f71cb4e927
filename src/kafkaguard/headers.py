"""Names of Kafka headers and delivery metadata, defined once.

The first group travels on every event (a plain Kafka client, or Debezium's router configured by
kafkaguard, sees the same names). The second group is added to records on a ``<topic>.dlq`` topic.
"""

EVENT_ID = "event_id"
TYPE = "type"
AGGREGATE_TYPE = "aggregate_type"
OCCURRED_AT = "occurred_at"
SCHEMA_VERSION = "schema_version"
TRACEPARENT = "traceparent"

ENVELOPE_HEADERS = (EVENT_ID, TYPE, AGGREGATE_TYPE, OCCURRED_AT, SCHEMA_VERSION)

DLQ_ORIGINAL_TOPIC = "kafkaguard.original.topic"
DLQ_ORIGINAL_PARTITION = "kafkaguard.original.partition"
DLQ_ORIGINAL_OFFSET = "kafkaguard.original.offset"
DLQ_EXCEPTION_CLASS = "kafkaguard.exception.class"
DLQ_EXCEPTION_MESSAGE = "kafkaguard.exception.message"
DLQ_REASON = "kafkaguard.reason"
