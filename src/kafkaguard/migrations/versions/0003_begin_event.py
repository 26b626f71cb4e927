"""the consumer's steps before a handler in one call: ``kafkaguard_begin_event``

The transaction-per-event consumer used to send four statements before the handler (key lock,
inbox look-up, blocked check, inbox insert). This function does the same in one round trip.

Why a function, not one plain statement: under READ COMMITTED a statement reads the snapshot taken
when it starts, i.e. before the advisory lock inside it is granted; a blocked check in that same
statement could miss the dead letter the lock's previous holder committed, and per-key order would
break. A ``VOLATILE`` plpgsql function takes a fresh snapshot for each statement it runs, so every
look-up after ``pg_advisory_xact_lock`` sees what the previous holder committed.

Steps (the order of ``Applier.prepare``):

1. the key lock (the same lock as ``kafkaguard.db.locks``: scope = consumer group);
2. with an inbox row (``p_event_id`` not NULL): the existing row of the id -> ``r_state = 1``
   with its content hash and position (the caller tells a duplicate from an id conflict);
3. ``p_check_blocked``: an open listener dead letter of the key (statuses ``p_open``) ->
   ``r_state = 2``, nothing written;
4. the inbox row, ``ON CONFLICT DO NOTHING``; a row another transaction committed meanwhile (the
   same id under another key) is read back and returned as in step 2; otherwise ``r_state = 0``.

Tables are named unqualified, like every kafkaguard statement: they resolve through the caller's
search_path (kafkaguard's schema first), and the function is created in that schema.

On MariaDB this version changes nothing: there is no ``pg_advisory_xact_lock`` (nor plpgsql), and
the MariaDB consumer, when it comes, takes its key lock and makes its look-ups as separate
statements (a key-lock row locked ``FOR UPDATE``), not through this function.

Revision ID: 0003_begin_event
Revises: 0002_total_inputs
"""

from __future__ import annotations

from alembic import op

from kafkaguard.migrations import portable as my

revision = "0003_begin_event"
down_revision = "0002_total_inputs"
branch_labels = None
depends_on = None

BEGIN_EVENT_FUNCTION = """
CREATE OR REPLACE FUNCTION kafkaguard_begin_event(
  p_group text, p_key text, p_check_blocked boolean, p_open text[],
  p_event_id uuid, p_type text, p_topic text, p_partition integer, p_offset bigint, p_content_hash bytea,
  OUT r_state smallint, OUT r_content_hash bytea, OUT r_topic text, OUT r_partition integer, OUT r_offset bigint
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext(p_group), hashtext(p_key));
  IF p_event_id IS NOT NULL THEN
    SELECT 1, i.content_hash, i.topic, i.partition, i."offset"
      INTO r_state, r_content_hash, r_topic, r_partition, r_offset
      FROM kafka_inbox AS i WHERE i.consumer_group = p_group AND i.event_id = p_event_id;
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;
  IF p_check_blocked AND EXISTS (
    SELECT 1 FROM kafka_listener_dead_letters AS d
     WHERE d.consumer_group = p_group AND d.key = p_key AND d.status = ANY (p_open)
  ) THEN
    r_state := 2;
    RETURN;
  END IF;
  r_state := 0;
  IF p_event_id IS NOT NULL THEN
    INSERT INTO kafka_inbox AS i (consumer_group, event_id, type, key, topic, partition, "offset", content_hash)
    VALUES (p_group, p_event_id, p_type, p_key, p_topic, p_partition, p_offset, p_content_hash)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT 1, i.content_hash, i.topic, i.partition, i."offset"
        INTO r_state, r_content_hash, r_topic, r_partition, r_offset
        FROM kafka_inbox AS i WHERE i.consumer_group = p_group AND i.event_id = p_event_id;
    END IF;
  END IF;
END $$
"""

_ARGS = "text, text, boolean, text[], uuid, text, text, integer, bigint, bytea"
DROP_BEGIN_EVENT = f"DROP FUNCTION IF EXISTS kafkaguard_begin_event({_ARGS})"


def upgrade() -> None:
    if my.on_mariadb():
        return  # no function on MariaDB (see above)
    op.execute(BEGIN_EVENT_FUNCTION)


def downgrade() -> None:
    if my.on_mariadb():
        return
    op.execute(DROP_BEGIN_EVENT)
