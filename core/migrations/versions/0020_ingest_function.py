"""ingest in one statement on PostgreSQL: the function omnicrm_ingest (core/ingest_postgresql.py)

A customer's inbound message becomes one `SELECT * FROM omnicrm_ingest(...)`: the contact found
by its addresses (or created with them), the conversation threaded (or reopened, or created),
the interaction inserted, in the database, instead of six statements and a savepoint from
Python. It does what `core.ingest`'s ORM path does on SQLite, step by step, and the ingest
tests run on both databases to hold them to it. A change to ingest's rules or to the columns it
writes needs a new migration that replaces the function (CREATE OR REPLACE).

Its argument is one JSON object that Python prepared (addresses normalized, HTML sanitized,
language detected, the time from omnicrm's clock); see `core.ingest_postgresql.arguments`.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A repeat (the interaction's (channel, external_id) is stored already, perhaps by a
# transaction committing just now) raises OM001 inside the function's inner block, which undoes
# the block's contact and conversation: the caller's transaction stays as it was. A value the
# database refuses (class 22, data_exception) is undone the same way and answered in `refused`.
_FUNCTION = r"""
CREATE FUNCTION omnicrm_ingest(
    p jsonb,
    OUT interaction_id bigint,
    OUT conversation_id bigint,
    OUT contact_id bigint,
    OUT created boolean,
    OUT contact_created boolean,
    OUT conversation_state text,
    OUT queue_id bigint,
    OUT assignee_id bigint,
    OUT refused text
) LANGUAGE plpgsql AS $function$
DECLARE
    v_now timestamptz := (p->>'now')::timestamptz;
    v_occurred timestamptz := (p->>'occurred_at')::timestamptz;
    v_channel text := p->>'channel';
    v_external_id text := p->>'external_id';
    v_may_reopen boolean := (p->>'may_reopen')::boolean;
    v_detected text := p->>'detected_language';
    v_contact contact%ROWTYPE;
    v_conversation conversation%ROWTYPE;
    v_found boolean := false;
    v_kind text;
    v_address text;
    v_claimed bigint;
    v_retry boolean;
    v_language text;
    v_name text;
    v_marketing jsonb;
BEGIN
    created := true;
    conversation_state := NULL;
    BEGIN
        -- The contact: the oldest owner of any of the addresses, or a new one with them. An
        -- address another contact owns stays theirs; a person another transaction created
        -- first (an identity insert conflicts) is used instead of ours.
        LOOP
            SELECT c.* INTO v_contact
            FROM identity i JOIN contact c ON c.id = i.contact_id
            WHERE (i.kind, i.address) IN (
                SELECT a->>0, a->>1 FROM jsonb_array_elements(p->'addresses') a
            )
            ORDER BY c.id LIMIT 1;
            contact_created := NOT FOUND;
            IF contact_created THEN
                INSERT INTO contact (
                    display_name, language, tags, custom_fields, priority_tier,
                    marketing_source, created_at, updated_at
                ) VALUES (
                    p->>'display_name', p->>'new_contact_language', '[]'::jsonb,
                    p->'contact_fields', 'standard', p->'new_contact_marketing', v_now, v_now
                ) RETURNING * INTO v_contact;
            END IF;
            v_retry := false;
            FOR v_kind, v_address IN
                SELECT a->>0, a->>1 FROM jsonb_array_elements(p->'addresses') a
            LOOP
                v_claimed := NULL;
                INSERT INTO identity (contact_id, kind, address, created_at)
                VALUES (v_contact.id, v_kind, v_address, v_now)
                ON CONFLICT (kind, address) DO NOTHING
                RETURNING identity.contact_id INTO v_claimed;
                IF v_claimed IS NULL AND contact_created THEN
                    DELETE FROM identity WHERE identity.contact_id = v_contact.id;
                    DELETE FROM contact WHERE contact.id = v_contact.id;
                    v_retry := true;
                    EXIT;
                END IF;
            END LOOP;
            EXIT WHEN NOT v_retry;
        END LOOP;

        IF NOT contact_created THEN
            -- Fill what the contact lacks; what they wrote is detected as their language
            -- unless a message of theirs written later had one detected.
            v_language := v_contact.language;
            IF v_detected IS NOT NULL AND (
                NOT (p->>'own_time')::boolean OR NOT EXISTS (
                    SELECT 1 FROM interaction i
                    WHERE i.contact_id = v_contact.id AND i.direction = 'in'
                      AND i.occurred_at > v_occurred AND i.meta->>'language' IS NOT NULL
                )
            ) THEN
                v_language := v_detected;
            ELSIF coalesce(v_contact.language, '') = '' AND p->>'channel_language' <> '' THEN
                v_language := p->>'channel_language';
            END IF;
            v_name := CASE WHEN v_contact.display_name = '' THEN p->>'display_name'
                ELSE v_contact.display_name END;
            v_marketing := CASE WHEN v_contact.marketing_source = '{}'::jsonb
                THEN p->'new_contact_marketing' ELSE v_contact.marketing_source END;
            IF (v_name, v_language, v_contact.custom_fields || (p->'contact_fields'), v_marketing)
                IS DISTINCT FROM (v_contact.display_name, v_contact.language,
                                  v_contact.custom_fields, v_contact.marketing_source)
            THEN
                UPDATE contact SET
                    display_name = v_name, language = v_language,
                    custom_fields = custom_fields || (p->'contact_fields'),
                    marketing_source = v_marketing, updated_at = v_now
                WHERE contact.id = v_contact.id;
            END IF;
        END IF;

        -- The conversation: the one holding a message this one answers (theirs, or one we
        -- sent), else the contact's latest on the channel (and thread), reopened if resolved
        -- within the window, else a new one.
        IF NOT contact_created AND jsonb_array_length(p->'reply_to') > 0 THEN
            SELECT c.* INTO v_conversation
            FROM conversation c JOIN interaction i ON i.conversation_id = c.id
            WHERE i.channel = v_channel
              AND i.external_id IN (SELECT jsonb_array_elements_text(p->'reply_to'))
              AND c.contact_id = v_contact.id
            ORDER BY i.id DESC LIMIT 1;
            v_found := FOUND;
            IF NOT v_found THEN
                SELECT c.* INTO v_conversation
                FROM conversation c JOIN outbox o ON o.conversation_id = c.id
                WHERE o.channel = v_channel
                  AND o.provider_id IN (SELECT jsonb_array_elements_text(p->'reply_to'))
                  AND c.contact_id = v_contact.id
                ORDER BY o.id DESC LIMIT 1;
                v_found := FOUND;
            END IF;
        END IF;
        IF NOT v_found AND NOT contact_created THEN
            IF p->>'thread_key' IS NULL THEN
                SELECT * INTO v_conversation FROM conversation c
                WHERE c.contact_id = v_contact.id AND c.channel = v_channel
                ORDER BY c.id DESC LIMIT 1;
            ELSE
                SELECT * INTO v_conversation FROM conversation c
                WHERE c.contact_id = v_contact.id AND c.channel = v_channel
                  AND c.thread_key = p->>'thread_key'
                ORDER BY c.id DESC LIMIT 1;
            END IF;
            v_found := FOUND;
        END IF;
        IF v_found AND v_conversation.status = 'resolved' AND v_may_reopen THEN
            IF v_now - coalesce(v_conversation.resolved_at, v_conversation.updated_at)
                <= make_interval(secs => (p->>'reopen_seconds')::double precision)
            THEN
                UPDATE conversation c SET
                    status = 'open', resolved_at = NULL, resolution_seconds = NULL,
                    reopened_count = c.reopened_count + 1, queue_entered_at = NULL,
                    routing_note = p->>'reopened_note', last_inbound_at = v_occurred,
                    updated_at = v_now
                WHERE c.id = v_conversation.id
                RETURNING * INTO v_conversation;
                conversation_state := 'reopened';
            ELSE
                v_found := false;  -- resolved too long ago: a new conversation
            END IF;
        ELSIF v_found AND v_conversation.status <> 'resolved' THEN
            UPDATE conversation c SET last_inbound_at = v_occurred, updated_at = v_now
            WHERE c.id = v_conversation.id;
        END IF;
        -- (A machine-made message joins a resolved conversation and changes nothing of it.)
        IF NOT v_found THEN
            INSERT INTO conversation (
                contact_id, channel, thread_key, status, queue_id, priority, subject,
                created_at, updated_at, last_inbound_at, reopened_count
            ) VALUES (
                v_contact.id, v_channel, p->>'thread_key', 'open', (p->>'queue_id')::bigint, 0,
                p->>'new_subject', v_now, v_now, v_occurred, 0
            ) RETURNING * INTO v_conversation;
            conversation_state := 'created';
        END IF;

        INSERT INTO interaction (
            conversation_id, contact_id, kind, direction, channel, external_id, subject, text,
            html, attachments, meta, occurred_at, created_at
        ) VALUES (
            v_conversation.id, v_contact.id, p->>'kind', 'in', v_channel, v_external_id,
            p->>'subject', p->>'text', p->>'html', p->'attachments', p->'meta', v_occurred,
            v_now
        )
        ON CONFLICT (channel, external_id) DO NOTHING
        RETURNING interaction.id INTO interaction_id;
        IF interaction_id IS NULL THEN
            RAISE EXCEPTION 'repeat' USING ERRCODE = 'OM001';
        END IF;
    EXCEPTION
        WHEN SQLSTATE 'OM001' THEN
            created := false;
        WHEN data_exception THEN
            -- A value the database refuses (too long, out of range): a property of this
            -- message, answered rather than raised, so the caller's transaction goes on
            -- (the email poller quarantines the message in it).
            refused := SQLSTATE || ': ' || SQLERRM;
            created := false;
            RETURN;
    END;
    IF created THEN
        conversation_id := v_conversation.id;
        contact_id := v_contact.id;
        queue_id := v_conversation.queue_id;
        assignee_id := v_conversation.assignee_id;
    ELSE
        SELECT i.id, i.conversation_id, i.contact_id
        INTO interaction_id, conversation_id, contact_id
        FROM interaction i WHERE i.channel = v_channel AND i.external_id = v_external_id;
        contact_created := false;
        conversation_state := NULL;
    END IF;
END
$function$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION omnicrm_ingest(jsonb)")
