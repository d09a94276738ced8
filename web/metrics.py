"""Prometheus metrics, one registry per application (so tests can run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.events import Event


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.interactions = Counter(
            "omnicrm_interactions_ingested_total",
            "Interactions stored by ingest, per channel.",
            ["channel"],
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

    def on_event(self, event: Event) -> None:
        # Counted from this process's own commits only; other processes count theirs.
        if event.type == "interaction.created" and event.origin_is_local:
            self.interactions.labels(event.labels.get("channel", "unknown")).inc()
