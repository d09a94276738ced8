"""The history the reports bench (bench/reports.py) runs the reports over: a year of a
contact center and its sales, seeded into a migrated PostgreSQL database.

`seed` writes it with server-side SQL (`INSERT ... SELECT` over `generate_series` with random();
nothing row by row in Python), rows in time order as a live system appends them. By default (the
sizes are the bench's options), over the 12 months before 1 January 2026 (Berlin time; weekdays
busier than weekends, days than nights, a little growth over the year):

- 100,000 contacts; 40 operators in 8 queues, four of them keeping business hours;
- 250,000 conversations (a quarter of the interactions) over 5 channels (email, webchat,
  WhatsApp, Telegram, voice) with queue, assignee, first response, resolution, SLA due time,
  reopens, and the business-time durations routing would have measured (routing/metrics.py,
  computed here in SQL with each queue's calendar);
- 1,000,000 interactions: each conversation's first customer message, its first answer, then
  more inbound and outbound messages, internal notes and events (about 52% in, 42% out);
- a voice call for each voice conversation (~20,000), queued; those nobody answered abandoned
  or left as voicemail;
- 50,000 leads in the default pipeline, from forms, the API, conversations, imports and by
  hand, with UTM sources and campaigns, values in EUR or USD, owners, open, won or lost, and
  1-4 `lead_stage_change` rows each.

Then VACUUM ANALYZE (what autovacuum has long done to a year-old table; it also keeps
autovacuum from starting in the middle of the timings). `seed` returns what it wrote (`Seeded`:
the rows per table, the default pipeline, how long each step took).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.clock import local_midnight
from core.models import (
    Contact,
    Conversation,
    Interaction,
    Lead,
    LeadStageChange,
    Operator,
    Queue,
    QueueMember,
    Role,
    VoiceCall,
)
from core.pipelines import default_pipeline_query

ZONE: Final = "Europe/Berlin"
# The history: the DAYS days before 2026 begins in Berlin.
END_DAY: Final = date(2026, 1, 1)
END: Final = local_midnight(END_DAY, ZoneInfo(ZONE))
DAYS: Final = 365
OPERATORS: Final = 40
# The queues (ids 1-8): name, weekday business hours in Berlin (None: around the clock), the
# first-response SLA in minutes (None: no target). The channels a conversation may land in
# each are in CONVERSATIONS_SQL; every operator works one queue (operator n: queue (n-1) % 8 + 1).
QUEUES: Final = (
    ("Support EN", "09:00-17:00", 240),
    ("Support DE", "09:00-17:00", 240),
    ("Billing", "09:00-17:00", 480),
    ("Sales", None, 30),
    ("Messengers", None, None),
    ("Hotline", "08:00-20:00", 5),
    ("VIP", None, 60),
    ("Returns", None, 1440),
)

# Helpers of the seeding session (pg_temp: gone with its connection).
FUNCTIONS: Final = (
    # A moment of the year before `end_at`: 85% in the (Berlin) day, peaking early afternoon;
    # days drawn with some growth over the year (70% uniform, 30% denser towards the end).
    """
    CREATE FUNCTION pg_temp.bench_moment(end_at timestamptz, days integer)
    RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
        SELECT ((end_at AT TIME ZONE 'Europe/Berlin') - make_interval(days => days)
            + make_interval(days => floor(days * CASE WHEN random() < 0.7 THEN random()
                                                      ELSE sqrt(random()) END)::integer)
            + make_interval(secs => CASE WHEN random() < 0.85
                                         THEN 8 * 3600 + 10 * 3600 * (random() + random()) / 2
                                         ELSE 86400 * random() END)
        ) AT TIME ZONE 'Europe/Berlin'
    $$
    """,
    # `n` moments of the year, weekends at about a third of a weekday (some draws dropped).
    """
    CREATE FUNCTION pg_temp.bench_moments(n integer, end_at timestamptz, days integer)
    RETURNS TABLE (moment timestamptz) LANGUAGE sql VOLATILE AS $$
        SELECT at FROM (
            SELECT pg_temp.bench_moment(end_at, days) AS at
            FROM generate_series(1, n * 3 / 2 + 20)
        ) AS candidate
        WHERE extract(isodow FROM at AT TIME ZONE 'Europe/Berlin') < 6 OR random() < 0.35
        LIMIT n
    $$
    """,
    # A standard normal draw (Box-Muller), for log-normal durations and amounts.
    """
    CREATE FUNCTION pg_temp.bench_normal() RETURNS double precision LANGUAGE sql VOLATILE AS $$
        SELECT sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())
    $$
    """,
    # Seconds from `since` to `until` within weekday (Mon-Fri) hours `opens`-`closes`, Berlin
    # time: routing's business_seconds (routing/metrics.py) for the calendars of QUEUES.
    """
    CREATE FUNCTION pg_temp.bench_business_seconds(
        since timestamptz, until timestamptz, opens time, closes time
    ) RETURNS integer LANGUAGE sql STABLE AS $$
        SELECT CASE WHEN until <= since THEN 0 ELSE coalesce(sum(greatest(0, extract(epoch FROM
                least(until, (day::date + closes) AT TIME ZONE 'Europe/Berlin')
                - greatest(since, (day::date + opens) AT TIME ZONE 'Europe/Berlin')))), 0)::integer
            END
        FROM generate_series((since AT TIME ZONE 'Europe/Berlin')::date::timestamp,
                             (until AT TIME ZONE 'Europe/Berlin')::date::timestamp,
                             interval '1 day') AS day
        WHERE extract(isodow FROM day) < 6
    $$
    """,
)

CONTACTS_SQL: Final = """
    INSERT INTO contact (id, display_name, tags, custom_fields, priority_tier, marketing_source,
                         created_at, updated_at)
    SELECT g,
        (ARRAY['Anna', 'Jonas', 'Maria', 'Иван', 'Ольга', 'ნინო', 'Lukas', 'Kim', 'Sofia',
               'Ahmet', 'Julia'])[1 + g % 11]
        || ' ' || (ARRAY['Novak', 'Weber', 'Keller', 'Петров', 'Смирнова', 'ბერიძე', 'Lee',
                         'Schmidt', 'Yilmaz'])[1 + (g / 11) % 9] || ' ' || g,
        '[]', '{}', CASE WHEN g % 20 = 0 THEN 'vip' ELSE 'standard' END, '{}', at, at
    FROM (
        SELECT g, CAST(:end_at AS timestamptz) - (550 * random()) * interval '1 day' AS at
        FROM generate_series(1, CAST(:contacts AS integer)) AS g
    ) AS drawn
"""

# Each conversation's draws and what follows from them, kept for the inserts below.
CONVERSATIONS_PLAN_SQL: Final = """
    CREATE TEMP TABLE bench_conversation AS
    WITH drawn AS (
        -- In time order: ids follow time, as a live table's do.
        SELECT row_number() OVER (ORDER BY moment) AS id, moment AS created_at,
            1 + floor(:contacts * power(random(), 1.5))::bigint AS contact_id,
            random() AS r_channel, random() AS r_queue, random() AS r_pick, random() AS r_who,
            random() AS r_answer, random() AS r_status, random() AS r_state,
            random() AS r_reopen, pg_temp.bench_normal() AS z_first,
            pg_temp.bench_normal() AS z_resolve
        FROM pg_temp.bench_moments(:n, CAST(:end_at AS timestamptz), :days)
    ),
    channelled AS (
        SELECT *, CASE WHEN r_channel < 0.35 THEN 'email' WHEN r_channel < 0.65 THEN 'webchat'
                       WHEN r_channel < 0.80 THEN 'whatsapp' WHEN r_channel < 0.92 THEN 'telegram'
                       ELSE 'voice' END AS channel
        FROM drawn
    ),
    queued AS (
        SELECT *, CASE WHEN r_queue >= 0.99 THEN NULL
                       WHEN r_queue < 0.05 THEN 7
                       WHEN channel = 'voice' THEN 6
                       WHEN channel = 'email'
                       THEN (ARRAY[1, 1, 2, 2, 3, 8])[1 + floor(r_pick * 6)::int]
                       WHEN channel = 'webchat'
                       THEN (ARRAY[1, 2, 4, 8])[1 + floor(r_pick * 4)::int]
                       ELSE (ARRAY[4, 5, 5])[1 + floor(r_pick * 3)::int] END AS queue_id
        FROM channelled
    ),
    assigned AS (
        SELECT *,
            CASE WHEN r_who < 0.06 THEN NULL
                 WHEN queue_id IS NULL THEN 1 + floor((r_who - 0.06) / 0.94 * 40)::bigint
                 ELSE queue_id + 8 * floor((r_who - 0.06) / 0.94 * 5)::bigint END AS assignee_id,
            least(10 * 86400, CASE channel
                WHEN 'email' THEN 10800 * exp(1.2 * z_first)
                WHEN 'webchat' THEN 60 * exp(1.0 * z_first)
                WHEN 'voice' THEN 35 * exp(0.8 * z_first)
                ELSE 600 * exp(1.3 * z_first) END) * interval '1 second' AS first_delay,
            least(30 * 86400, CASE channel
                WHEN 'email' THEN 86400 * exp(1.0 * z_resolve)
                WHEN 'webchat' THEN 900 * exp(1.0 * z_resolve)
                WHEN 'voice' THEN 240 * exp(0.6 * z_resolve)
                ELSE 7200 * exp(1.2 * z_resolve) END) * interval '1 second' AS resolve_delay
        FROM queued
    ),
    answered AS (
        SELECT *, CASE WHEN assignee_id IS NOT NULL
                        AND r_answer < CASE WHEN channel = 'voice' THEN 0.85 ELSE 0.97 END
                        AND created_at + first_delay < CAST(:end_at AS timestamptz)
                       THEN created_at + first_delay END AS first_response_at
        FROM assigned
    ),
    resolved AS (
        SELECT *, CASE WHEN r_status >= 0.06
                        AND NOT (created_at > CAST(:end_at AS timestamptz) - interval '5 days'
                                 AND r_status < 0.5)
                        AND coalesce(first_response_at, created_at) + resolve_delay
                            < CAST(:end_at AS timestamptz)
                       THEN coalesce(first_response_at, created_at) + resolve_delay
                  END AS resolved_at
        FROM answered
    )
    SELECT id, contact_id, channel, queue_id, assignee_id, created_at, first_response_at,
        resolved_at,
        CASE WHEN resolved_at IS NOT NULL THEN 'resolved' WHEN r_state < 0.6 THEN 'open'
             WHEN r_state < 0.9 THEN 'pending' ELSE 'snoozed' END AS status,
        CASE WHEN resolved_at IS NULL THEN 0 WHEN r_reopen < 0.04 THEN 1
             WHEN r_reopen < 0.05 THEN 2 ELSE 0 END AS reopened_count
    FROM resolved
"""

CONVERSATIONS_SQL: Final = """
    INSERT INTO conversation (id, contact_id, channel, thread_key, status, queue_id, assignee_id,
        priority, subject, created_at, updated_at, last_inbound_at, first_response_at,
        sla_due_at, snoozed_until, resolved_at, queue_entered_at, last_outbound_at,
        first_response_seconds, resolution_seconds, reopened_count)
    SELECT c.id, c.contact_id, c.channel, NULL, c.status, c.queue_id, c.assignee_id,
        CASE WHEN c.queue_id = 7 THEN 1 ELSE 0 END,
        CASE WHEN c.channel = 'email' THEN 'Order ' || (100000 + c.id) ELSE '' END,
        c.created_at, coalesce(c.resolved_at, c.first_response_at, c.created_at), c.created_at,
        c.first_response_at,
        c.created_at + make_interval(mins => (q.config #>> '{sla,first_response_minutes}')::int),
        CASE WHEN c.status = 'snoozed' THEN CAST(:end_at AS timestamptz) + interval '2 days' END,
        c.resolved_at, c.created_at, c.first_response_at,
        CASE WHEN c.first_response_at IS NULL THEN NULL
             WHEN q.config ? 'business_hours' THEN pg_temp.bench_business_seconds(
                 c.created_at, c.first_response_at,
                 split_part(q.config #>> '{business_hours,weekly,mon,0}', '-', 1)::time,
                 split_part(q.config #>> '{business_hours,weekly,mon,0}', '-', 2)::time)
             ELSE extract(epoch FROM c.first_response_at - c.created_at)::int END,
        CASE WHEN c.resolved_at IS NULL THEN NULL
             WHEN q.config ? 'business_hours' THEN pg_temp.bench_business_seconds(
                 c.created_at, c.resolved_at,
                 split_part(q.config #>> '{business_hours,weekly,mon,0}', '-', 1)::time,
                 split_part(q.config #>> '{business_hours,weekly,mon,0}', '-', 2)::time)
             ELSE extract(epoch FROM c.resolved_at - c.created_at)::int END,
        c.reopened_count
    FROM bench_conversation AS c LEFT JOIN queue AS q ON q.id = c.queue_id
    ORDER BY c.id
"""

# Each conversation's first customer message and first answer, then more of both, notes and
# events at random in the open conversations' lives, up to `interactions` in all.
INTERACTIONS_SQL: Final = """
    INSERT INTO interaction (conversation_id, contact_id, kind, direction, channel, subject,
                             text, attachments, meta, operator_id, occurred_at, created_at)
    SELECT conversation_id, contact_id, kind, direction, channel, '',
        (ARRAY['Hello, my order has not arrived yet, can you check the delivery?',
               'I would like to return the item and get a refund',
               'The invoice shows the wrong address, please send a corrected one',
               'Thank you, that solved it',
               'Can I change the delivery date of my order?',
               'Здравствуйте, моя посылка не пришла',
               'Guten Tag, meine Rechnung ist falsch',
               'We have sent you the tracking number by email, it should arrive tomorrow'
        ])[1 + floor(random() * 8)::int],
        '[]', '{}', operator_id, occurred_at, occurred_at
    FROM (
        SELECT id AS conversation_id, contact_id,
            CASE WHEN channel = 'voice' THEN 'call' ELSE 'message' END AS kind,
            'in' AS direction, channel, NULL::bigint AS operator_id, created_at AS occurred_at
        FROM conversation
        UNION ALL
        SELECT id, contact_id, CASE WHEN channel = 'voice' THEN 'call' ELSE 'message' END,
            'out', channel, assignee_id, first_response_at
        FROM conversation WHERE first_response_at IS NOT NULL
        UNION ALL
        SELECT c.id, c.contact_id,
            CASE WHEN x.r_kind >= 0.97 THEN 'event' WHEN x.r_kind >= 0.90 THEN 'note'
                 WHEN c.channel = 'voice' THEN 'call' ELSE 'message' END,
            CASE WHEN x.r_kind < 0.52 THEN 'in' WHEN x.r_kind < 0.90 THEN 'out'
                 ELSE 'internal' END,
            c.channel,
            CASE WHEN x.r_kind >= 0.52 AND x.r_kind < 0.97 THEN c.assignee_id END,
            c.created_at + x.share * (coalesce(c.resolved_at, least(c.created_at
                + interval '3 days', CAST(:end_at AS timestamptz))) - c.created_at)
        FROM (
            SELECT 1 + floor(random() * :conversations)::bigint AS conversation_id,
                random() AS r_kind, random() AS share
            FROM generate_series(1, greatest(0, CAST(:interactions AS integer)
                - (SELECT count(*) + count(first_response_at) FROM conversation)::integer))
        ) AS x JOIN conversation AS c ON c.id = x.conversation_id
    ) AS item
    ORDER BY occurred_at
"""

# The call of each voice conversation: waited in its queue, answered when someone answered.
CALLS_SQL: Final = """
    INSERT INTO voice_call (call_sid, direction, from_number, to_number, contact_id,
        conversation_id, queue_id, state, outcome, menu_attempts, operator_id, leg, started_at,
        queued_at, answered_at, ended_at, wait_seconds, duration_seconds, talk_seconds, meta,
        created_at, updated_at)
    SELECT 'CA' || lpad(id::text, 32, '0'), 'in', '+49151' || lpad(contact_id::text, 8, '0'),
        '+4930999999', contact_id, id, queue_id, 'ended', outcome, 0,
        CASE WHEN outcome = 'answered' THEN assignee_id END,
        CASE WHEN outcome = 'answered' THEN 1 ELSE 0 END,
        created_at - interval '25 seconds', created_at, first_response_at, ended_at,
        extract(epoch FROM coalesce(first_response_at, ended_at) - created_at)::int,
        extract(epoch FROM ended_at - created_at)::int + 25,
        extract(epoch FROM ended_at - first_response_at)::int,
        '{}', created_at - interval '25 seconds', ended_at
    FROM (
        SELECT *,
            CASE WHEN first_response_at IS NOT NULL THEN 'answered'
                 WHEN random() < 0.8 THEN 'abandoned' ELSE 'voicemail' END AS outcome,
            coalesce(resolved_at, first_response_at + interval '4 minutes',
                     created_at + (20 + 200 * random()) * interval '1 second') AS ended_at
        FROM conversation WHERE channel = 'voice'
    ) AS planned
    ORDER BY created_at
"""

# Each lead's draws and its path: the furthest open stage it reached (0 new, 1 qualified,
# 2 proposal), then won or lost once its cycle ended before the history does (15% go stale).
LEADS_PLAN_SQL: Final = """
    CREATE TEMP TABLE bench_lead AS
    WITH drawn AS (
        -- In time order: ids follow time, as a live table's do.
        SELECT row_number() OVER (ORDER BY moment) AS id, moment AS created_at,
            random() AS r_source, random() AS r_stage, random() AS r_open, random() AS r_won,
            random() AS r_owner, random() AS r_value, random() AS r_currency, random() AS r_utm,
            random() AS r_campaign, random() AS r_contact, random() AS r_reason,
            pg_temp.bench_normal() AS z_cycle, pg_temp.bench_normal() AS z_value
        FROM pg_temp.bench_moments(:n, CAST(:end_at AS timestamptz), :days)
    ),
    sourced AS (
        SELECT d.*, c.id AS conversation_id,
            coalesce(c.contact_id, 1 + floor(d.r_contact * :contacts)::bigint) AS contact_id,
            CASE WHEN c.id IS NOT NULL THEN 'conversation:' || c.channel
                 WHEN d.r_source < 0.58 THEN 'form:contact'
                 WHEN d.r_source < 0.71 THEN 'form:demo'
                 WHEN d.r_source < 0.84 THEN 'api'
                 WHEN d.r_source < 0.94 THEN 'manual'
                 ELSE 'import' END AS source,
            CASE WHEN d.r_stage < 0.45 THEN 0 WHEN d.r_stage < 0.75 THEN 1 ELSE 2 END AS furthest,
            greatest(0.5, least(180, 14 * exp(0.9 * d.z_cycle))) * interval '1 day' AS cycle
        FROM drawn AS d
        -- A third come from a conversation of about the same time (ids follow time in both).
        LEFT JOIN conversation AS c ON d.r_source < 0.35
            AND c.id = greatest(1, round(CAST(:conversations AS bigint) * d.id
                                         / CAST(:n AS numeric)))
    ),
    closing AS (
        SELECT *, r_open >= 0.15 AND created_at + cycle < CAST(:end_at AS timestamptz) AS closed
        FROM sourced
    ),
    outcome AS (
        SELECT *, closed AND r_won < (ARRAY[0.08, 0.35, 0.6])[furthest + 1] AS won,
            CASE WHEN closed THEN cycle
                 ELSE least(cycle, CAST(:end_at AS timestamptz) - created_at) * 0.9 END AS span,
            (ARRAY['google', 'facebook', 'linkedin', 'newsletter', 'bing'])[
                1 + floor(r_utm / 0.8 * 5)::int] AS utm_source
        FROM closing
    )
    SELECT id, created_at, conversation_id, contact_id, source, furthest, closed, won, cycle,
        span,
        CASE WHEN won THEN 'won' WHEN closed THEN 'lost'
             ELSE (ARRAY['new', 'qualified', 'proposal'])[furthest + 1] END AS stage,
        CASE WHEN r_owner >= 0.1 THEN 1 + floor((r_owner - 0.1) / 0.9 * 40)::bigint END
            AS owner_id,
        CASE WHEN r_value < 0.9 THEN round((2000 * exp(0.8 * z_value))::numeric, -1) END
            AS value,
        CASE WHEN r_value >= 0.9 THEN NULL WHEN r_currency < 0.7 THEN 'EUR' ELSE 'USD' END
            AS currency,
        CASE WHEN closed AND NOT won THEN (ARRAY['too expensive', 'chose a competitor',
            'no budget', 'no answer'])[1 + floor(r_reason * 4)::int] END AS lost_reason,
        CASE WHEN (source LIKE 'form:%' OR source = 'api') AND r_utm < 0.8
             THEN jsonb_build_object(
                 'utm_source', utm_source,
                 'utm_medium', CASE utm_source WHEN 'newsletter' THEN 'email'
                                   WHEN 'google' THEN 'cpc' WHEN 'bing' THEN 'cpc'
                                   ELSE 'social' END,
                 'utm_campaign', CASE WHEN r_campaign < 0.4 THEN 'brand'
                                      WHEN r_campaign < 0.55 THEN 'retargeting'
                                      ELSE to_char(created_at AT TIME ZONE 'Europe/Berlin',
                                                   'YYYY-"q"Q')
                                           || CASE WHEN r_campaign < 0.8 THEN '-launch'
                                                   ELSE '-webinar' END END)
             ELSE '{}'::jsonb END AS marketing
    FROM outcome
"""

LEADS_SQL: Final = """
    INSERT INTO lead (id, contact_id, conversation_id, pipeline_id, title, source, stage, value,
        currency, owner_id, lost_reason, marketing, stage_entered_at, closed_at, created_at,
        updated_at)
    SELECT id, contact_id, conversation_id, :pipeline_id, 'Lead ' || id, source, stage, value,
        currency, owner_id, lost_reason, marketing, entered, closed_at, created_at, entered
    FROM (
        SELECT *, CASE WHEN closed THEN created_at + cycle END AS closed_at,
            CASE WHEN closed THEN created_at + cycle
                 ELSE created_at + span * (furthest / (furthest + 1.0)) END AS entered
        FROM bench_lead
    ) AS lead_row
    ORDER BY id
"""

# A lead's history: a row per open stage up to its furthest (at even steps of its span), and
# the closing one: 1-4 rows.
STAGE_CHANGES_SQL: Final = """
    INSERT INTO lead_stage_change (lead_id, pipeline_id, from_stage, to_stage, operator_id,
                                   reason, changed_at)
    SELECT id, :pipeline_id,
        CASE WHEN k = 0 THEN NULL WHEN k <= furthest THEN stages[k]
             ELSE stages[furthest + 1] END,
        CASE WHEN k <= furthest THEN stages[k + 1] WHEN won THEN 'won' ELSE 'lost' END,
        owner_id,
        CASE WHEN k > furthest AND NOT won THEN lost_reason END,
        CASE WHEN k <= furthest THEN created_at + span * (k / (furthest + 1.0))
             ELSE created_at + cycle END AS changed_at
    FROM bench_lead
    CROSS JOIN LATERAL generate_series(0, furthest + CASE WHEN closed THEN 1 ELSE 0 END) AS k
    CROSS JOIN (SELECT ARRAY['new', 'qualified', 'proposal'] AS stages) AS keys
    ORDER BY changed_at
"""

SEQUENCES: Final = (
    "contact",
    "operator",
    "queue",
    "conversation",
    "interaction",
    "voice_call",
    "lead",
    "lead_stage_change",
)


@dataclass(frozen=True)
class Sizes:
    contacts: int
    interactions: int
    leads: int
    runs: int

    @property
    def conversations(self) -> int:
        return max(1, self.interactions // 4)


@dataclass
class Seeded:
    seconds: float = 0.0
    steps: list[tuple[str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    pipeline_id: int = 0


async def seed(engine: AsyncEngine, sizes: Sizes) -> Seeded:
    """The history (see the module), then VACUUM ANALYZE; how long each step took."""
    seeded = Seeded()
    started = time.perf_counter()
    params: dict[str, Any] = {
        "end_at": END,
        "days": DAYS,
        "contacts": sizes.contacts,
        "conversations": sizes.conversations,
        "interactions": sizes.interactions,
    }

    async def step(connection: AsyncConnection, name: str, sql: str, **extra: Any) -> None:
        began = time.perf_counter()
        await connection.execute(text(sql), {**params, **extra})
        seeded.steps.append((name, time.perf_counter() - began))

    async with engine.begin() as connection:
        pipeline_id = await connection.scalar(default_pipeline_query())
        assert pipeline_id is not None, "migrations make the default pipeline"
        seeded.pipeline_id = pipeline_id
        for sql in FUNCTIONS:
            await connection.exec_driver_sql(sql)
        await connection.execute(
            insert(Operator),
            [
                {
                    "id": n,
                    "email": f"operator{n}@example.com",
                    "name": f"Operator {n:02d}",
                    "role": Role.OPERATOR,
                }
                for n in range(1, OPERATORS + 1)
            ],
        )
        await connection.execute(
            insert(Queue),
            [
                {"id": n, "name": name, "config": queue_config(hours, sla)}
                for n, (name, hours, sla) in enumerate(QUEUES, start=1)
            ],
        )
        await connection.execute(
            insert(QueueMember),
            [
                {"queue_id": (n - 1) % len(QUEUES) + 1, "operator_id": n}
                for n in range(1, OPERATORS + 1)
            ],
        )
        await step(connection, "contacts", CONTACTS_SQL)
        await step(connection, "conversations", CONVERSATIONS_PLAN_SQL, n=sizes.conversations)
        await step(connection, "conversations", CONVERSATIONS_SQL)
        await step(connection, "interactions", INTERACTIONS_SQL)
        await step(connection, "voice calls", CALLS_SQL)
        await step(connection, "leads", LEADS_PLAN_SQL, n=sizes.leads)
        await step(connection, "leads", LEADS_SQL, pipeline_id=pipeline_id)
        await step(connection, "stage changes", STAGE_CHANGES_SQL, pipeline_id=pipeline_id)
        for table in SEQUENCES:
            await connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608 - our names
                f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        for model in (Contact, Conversation, Interaction, VoiceCall, Lead, LeadStageChange):
            counted = await connection.execute(select(func.count()).select_from(model))
            seeded.counts[model.__tablename__] = counted.scalar_one()
    began = time.perf_counter()
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM (ANALYZE)")
    seeded.steps.append(("vacuum analyze", time.perf_counter() - began))
    seeded.seconds = time.perf_counter() - started
    return seeded


def queue_config(hours: str | None, sla_minutes: int | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if hours is not None:
        weekdays = ("mon", "tue", "wed", "thu", "fri")
        config["business_hours"] = {"timezone": ZONE, "weekly": {day: [hours] for day in weekdays}}
    if sla_minutes is not None:
        config["sla"] = {"first_response_minutes": sla_minutes}
    return config
