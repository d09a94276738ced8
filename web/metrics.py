"""Prometheus metrics, one registry per application (so tests can run several apps)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from channels.email.service import EmailChannel
from core.events import Event


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.interactions = Counter(
            "omnicrm_interactions_ingested_total",
            "Inbound interactions stored (customers' messages, forms, API events), per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.sent = Counter(
            "omnicrm_interactions_sent_total",
            "Outbound messages the channel's provider accepted (recorded sent by the outbox), "
            "per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "omnicrm_webhook_requests_total",
            "Provider webhook requests by channel, hook and outcome (stored, unsupported, "
            "malformed, forbidden).",
            ["channel", "hook", "outcome"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "omnicrm_http_request_duration_seconds",
            "HTTP request latency by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "omnicrm_outbox_depth",
            "Outbound messages not yet sent or failed, per channel.",
            ["channel"],
            registry=self.registry,
        )

        self.routing_decisions = Counter(
            "omnicrm_routing_decisions_total",
            "Routing decisions logged, by kind (offer, assign, timed_out, overflow, ...).",
            ["kind"],
            registry=self.registry,
        )
        self.sla_breaches = Counter(
            "omnicrm_sla_breaches_total",
            "SLA targets missed, by kind (first_response, resolution).",
            ["kind"],
            registry=self.registry,
        )

    def watch_email(self, channel: EmailChannel) -> None:
        """Report the mail pollers' counters and states at every scrape."""
        self.registry.register(_EmailCollector(channel))

    def on_event(self, event: Event) -> None:
        """Count what this process committed (other processes count theirs): inbound
        interactions when ingest stores them, outbound messages when the outbox records
        them sent (once per message, however many attempts it took)."""
        if not event.origin_is_local:
            return
        if event.type == "interaction.created":
            # Only ingest's: replies and notes are interactions too, but not ingested.
            if event.labels.get("direction") == "in":
                self.interactions.labels(event.labels.get("channel", "unknown")).inc()
        elif event.type == "outbox.sent":
            self.sent.labels(event.labels.get("channel", "unknown")).inc()
        elif event.type == "routing.decision":
            self.routing_decisions.labels(event.labels.get("kind", "unknown")).inc()
        elif event.type == "sla.breached":
            self.sla_breaches.labels(event.labels.get("kind", "unknown")).inc()


class _EmailCollector(Collector):
    """Reads the pollers' own counters when Prometheus scrapes, so nothing is counted twice."""

    def __init__(self, channel: EmailChannel) -> None:
        self._channel = channel

    def collect(self) -> Iterator[Metric]:
        counters = {
            name: CounterMetricFamily(
                f"omnicrm_email_{name}", f"Messages {text}, per mailbox id.", labels=["mailbox"]
            )
            for name, text in (
                ("imported", "imported"),
                ("duplicates", "seen again and skipped"),
                ("quarantined", "quarantined"),
                ("errors", "polls that failed (connection, server, database)"),
            )
        }
        up = GaugeMetricFamily(
            "omnicrm_email_poller_failing",
            "1 while the mailbox's poller is failing (its last attempt was an error).",
            labels=["mailbox"],
        )
        for mailbox_id, status in self._channel.statuses().items():
            label = [str(mailbox_id)]
            for name, family in counters.items():
                family.add_metric(label, status[name])
            failing = status["last_error_at"] is not None and (
                status["last_success_at"] is None
                or status["last_error_at"] >= status["last_success_at"]
            )
            up.add_metric(label, 1.0 if failing else 0.0)
        yield from counters.values()
        yield up
