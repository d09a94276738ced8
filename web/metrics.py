"""Prometheus metrics, one registry per application (so tests can run several apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from channels.pollers import PollerSupervisor
from core.events import Event
from erp_bridge.service import ErpStatus


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
        self.erp_requests = Counter(
            "omnicrm_erp_requests_total",
            "Calls to the ERP bridge by ERP kind, operation (customer, orders, order, invoices, "
            "stock, products, check) and outcome (ok, unavailable, auth, circuit_open, error).",
            ["erp", "operation", "outcome"],
            registry=self.registry,
        )
        self.erp_latency = Histogram(
            "omnicrm_erp_request_duration_seconds",
            "How long the ERP took to answer the bridge's calls that reached it.",
            ["erp", "operation"],
            registry=self.registry,
        )
        self.suggestion_latency = Histogram(
            "omnicrm_suggestion_search_seconds",
            "How long a suggestion engine took to find the answers for one question.",
            ["engine"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

    def observe_suggestions(self, engine: str, seconds: float) -> None:
        """The suggestion engines' observer (`core.suggestions.base.SearchObserver`)."""
        self.suggestion_latency.labels(engine).observe(seconds)

    def observe(self, kind: str, operation: str, outcome: str, seconds: float) -> None:
        """The ERP bridge's observer (`erp_bridge.base.ErpObserver`)."""
        self.erp_requests.labels(kind, operation, outcome).inc()
        if outcome != "circuit_open":
            self.erp_latency.labels(kind, operation).observe(seconds)

    def watch_erp(self, status: Callable[[], ErpStatus]) -> None:
        """Report the ERP's state (`ErpService.health`) at every scrape."""
        self.registry.register(_ErpCollector(status))

    def watch_pollers(self, supervisor: PollerSupervisor) -> None:
        """Report the channels' pollers' counters and states at every scrape."""
        self.registry.register(_PollerCollector(supervisor))

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


class _PollerCollector(Collector):
    """Reads the pollers' own counters when Prometheus scrapes, so nothing is counted twice.

    Labelled by channel and account name (unique within a channel); the outcomes are the
    channel's (email: stored, duplicate, quarantined; cursor pollers: stored, unsupported).
    """

    def __init__(self, supervisor: PollerSupervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        items = CounterMetricFamily(
            "omnicrm_channel_items",
            "Items a channel's poller handled, per account and outcome (email: stored, "
            "duplicate, quarantined).",
            labels=["channel", "account", "outcome"],
        )
        errors = CounterMetricFamily(
            "omnicrm_channel_poller_errors",
            "Poller rounds that failed (connection, provider, credentials, database).",
            labels=["channel", "account"],
        )
        failing = GaugeMetricFamily(
            "omnicrm_channel_poller_failing",
            "1 while the account's poller is failing (its last attempt was an error).",
            labels=["channel", "account"],
        )
        for status in self._supervisor.statuses():
            account = [status.channel, status.account]
            for outcome, count in sorted(status.counters.items()):
                items.add_metric([*account, outcome], count)
            errors.add_metric(account, status.errors)
            failing.add_metric(account, 1.0 if status.failing else 0.0)
        yield items
        yield errors
        yield failing


class _ErpCollector(Collector):
    """The ERP's state as the process's adapter last found it, read when Prometheus scrapes
    (labelled by the ERP's kind; `none` when not even the kind is known)."""

    def __init__(self, status: Callable[[], ErpStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        erp = self._status()
        labels = [erp.kind or "none"]
        up = GaugeMetricFamily(
            "omnicrm_erp_up",
            "1 while the ERP answers the bridge's calls (its last call was answered, or none "
            "was made yet); 0 while it is degraded (cached answers served) or down.",
            labels=["erp"],
        )
        up.add_metric(labels, 1.0 if erp.state == "ok" else 0.0)
        degraded = GaugeMetricFamily(
            "omnicrm_erp_degraded",
            "1 while the ERP does not answer and cached answers are served instead.",
            labels=["erp"],
        )
        degraded.add_metric(labels, 1.0 if erp.state == "degraded" else 0.0)
        circuit = GaugeMetricFamily(
            "omnicrm_erp_circuit_open",
            "1 while the ERP's circuit breaker is not closed (open: the ERP is not asked, it "
            "kept failing; half open: one call tries it again).",
            labels=["erp"],
        )
        circuit.add_metric(labels, 0.0 if erp.breaker in (None, "closed") else 1.0)
        yield up
        yield degraded
        yield circuit
        if erp.latency_ms is not None:
            latency = GaugeMetricFamily(
                "omnicrm_erp_last_latency_seconds",
                "How long the ERP took for the last call it answered.",
                labels=["erp"],
            )
            latency.add_metric(labels, erp.latency_ms / 1000)
            yield latency
