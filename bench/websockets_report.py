"""bench/websockets.py's figures and its report: what one run measured, and how it is printed
(kept apart from how the run is made, as bench/routing_report.py is for bench/routing.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.common import percentile

TARGET_P99_MS = 100.0


@dataclass
class Delivery:
    """One kind of event, timed at every console: latencies in ms from the trigger's send."""

    name: str
    events: int
    consoles: int
    latencies_ms: list[float]  # every (event, console) pair that arrived
    per_event_p99_ms: list[float]  # each event's p99 over the consoles
    missed: int  # (event, console) pairs that never arrived
    trigger_ms: list[float]  # each trigger request's round trip
    # every (event, console) pair that arrived, from the trigger's answer instead
    after_answer_ms: list[float] = field(default_factory=list)
    trigger_errors: int = 0
    late_triggers: int = 0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms, default=float("nan"))

    @property
    def after_answer_p99_ms(self) -> float:
        """p99 of the arrivals after the trigger's answer (negative: before it)."""
        return percentile(self.after_answer_ms, 0.99)

    @property
    def expected(self) -> int:
        return self.events * self.consoles


@dataclass
class Clients:
    """How the consoles' processes fared during the events."""

    processes: int
    opened: int
    connect_seconds: float
    messages: int  # text messages the consoles got, all types
    duplicates: int
    resyncs: int
    closed: int  # sockets the server closed during the run
    lag_p99_ms: float  # the worst process's
    lag_max_ms: float
    cpu_share: list[float]  # of a core, each process, over the events
    failures: list[str] = field(default_factory=list)


@dataclass
class ServerProcess:
    """One process of a server: its resident memory (VmRSS, KiB) and its CPU time."""

    process: str
    pid: int
    idle_kib: int | None  # started and quiet, no console open
    loaded_kib: int | None = None  # the consoles open, after the events
    cpu_seconds: float | None = None  # over the events
    idle_cpu_share: float | None = None  # of a core, the consoles open, no events

    def above_idle(self, seconds: float) -> float | None:
        """CPU seconds over `seconds` of events beyond its rate with no events."""
        if self.cpu_seconds is None or self.idle_cpu_share is None:
            return None
        return self.cpu_seconds - self.idle_cpu_share * seconds


@dataclass
class Target:
    """One server under the consoles: the bare ceiling or omnicrm."""

    name: str
    deliveries: list[Delivery]
    clients: Clients
    processes: list[ServerProcess]
    seconds: float  # from the first trigger to the last arrival
    cpu_seconds: float | None  # the server's processes over that span
    idle_cpu_share: float | None = None  # of a core, the consoles open, no events

    @property
    def overall(self) -> Delivery:
        if len(self.deliveries) == 1:
            return self.deliveries[0]
        return Delivery(
            "all events",
            sum(item.events for item in self.deliveries),
            self.clients.opened,
            [value for item in self.deliveries for value in item.latencies_ms],
            [value for item in self.deliveries for value in item.per_event_p99_ms],
            sum(item.missed for item in self.deliveries),
            [value for item in self.deliveries for value in item.trigger_ms],
            [value for item in self.deliveries for value in item.after_answer_ms],
            sum(item.trigger_errors for item in self.deliveries),
            sum(item.late_triggers for item in self.deliveries),
        )

    @property
    def cpu_ms_per_event(self) -> float | None:
        events = self.overall.events
        return None if self.cpu_seconds is None or not events else self.cpu_seconds * 1000 / events

    @property
    def cpu_ms_per_event_above_idle(self) -> float | None:
        """What the events cost beyond the consoles' own upkeep (measured before them)."""
        events = self.overall.events
        if self.cpu_seconds is None or self.idle_cpu_share is None or not events:
            return None
        return (self.cpu_seconds - self.idle_cpu_share * self.seconds) * 1000 / events

    @property
    def cpu_us_per_message(self) -> float | None:
        messages = self.clients.messages
        return (
            None if self.cpu_seconds is None or not messages else self.cpu_seconds * 1e6 / messages
        )

    @property
    def errors(self) -> list[str]:
        found = list(self.clients.failures)
        overall = self.overall
        if overall.missed:
            found.append(f"{overall.missed} deliveries missed")
        if overall.trigger_errors:
            found.append(f"{overall.trigger_errors} triggers answered wrongly")
        if self.clients.closed:
            found.append(f"{self.clients.closed} websockets closed by the server")
        if self.clients.duplicates:
            found.append(f"{self.clients.duplicates} events delivered twice to a console")
        return found


@dataclass
class Run:
    """One backend's run: the bare ceiling and omnicrm, under the same consoles."""

    backend: str
    web_processes: int
    consoles: int
    rate: float
    ceiling: Target
    omnicrm: Target

    @property
    def ok(self) -> bool:
        return not self.ceiling.errors and not self.omnicrm.errors

    @property
    def meets_target(self) -> bool:
        return self.omnicrm.overall.p99_ms <= TARGET_P99_MS and not self.omnicrm.errors


# --- the report -----------------------------------------------------------------------------

HEADER = (
    f"{'target':<46}{'events':>7}{'p50':>10}{'p99':>10}{'max':>10}"
    f"{'event p99 med':>15}{'worst':>10}{'missed':>8}{'trigger p50/p99':>18}"
    f"{'p99 after answer':>18}"
)


def delivery_row(name: str, delivery: Delivery) -> str:
    trigger = (
        f"{percentile(delivery.trigger_ms, 0.5):.1f}/{percentile(delivery.trigger_ms, 0.99):.1f}"
    )
    return (
        f"{name:<46}{delivery.events:>7}{delivery.p50_ms:>7.1f} ms{delivery.p99_ms:>7.1f} ms"
        f"{delivery.max_ms:>7.1f} ms{percentile(delivery.per_event_p99_ms, 0.5):>12.1f} ms"
        f"{max(delivery.per_event_p99_ms, default=float('nan')):>7.1f} ms"
        f"{delivery.missed:>8}{trigger:>15} ms{delivery.after_answer_p99_ms:>15.1f} ms"
    )


def mib(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f} MiB"


def print_target(target: Target) -> None:
    clients = target.clients
    shares = ", ".join(f"{share:.0%}" for share in target.clients.cpu_share)
    per_event = target.cpu_ms_per_event
    per_message = target.cpu_us_per_message
    above_idle = target.cpu_ms_per_event_above_idle
    cpu = (
        "—"
        if per_event is None or per_message is None
        else f"{per_event:.1f} ms per event"
        + ("" if above_idle is None else f" ({above_idle:.1f} ms above the idle rate)")
        + f", {per_message:.0f} µs per message sent"
    )
    print(
        f"  {target.name}: {clients.opened} consoles opened in {clients.connect_seconds:.1f} s; "
        f"{clients.messages} messages reached them ({clients.resyncs} resyncs)"
        + (
            ""
            if target.idle_cpu_share is None
            else f"; server CPU {target.idle_cpu_share:.0%} of a core with the consoles open "
            "and no events"
        )
    )
    if len(target.processes) > 1:
        split = ", ".join(
            f"{item.process} {item.cpu_seconds:.1f} s"
            + (
                ""
                if (beyond := item.above_idle(target.seconds)) is None
                else f" ({beyond:.1f} s above idle)"
            )
            for item in target.processes
            if item.cpu_seconds is not None
        )
        cpu += f"; by process: {split}"
    print(f"    server CPU over the events ({target.seconds:.0f} s): {cpu}")
    late = target.overall.late_triggers
    print(
        f"    client processes: loop lag p99 {clients.lag_p99_ms:.1f} ms, max "
        f"{clients.lag_max_ms:.1f} ms; CPU {shares} of a core; triggers sent late: {late}"
    )
    for error in target.errors:
        print(f"    ERROR: {error}")


def print_run(run: Run) -> None:
    web = (
        "1 process (web and background work)"
        if run.backend == "sqlite"
        else f"{run.web_processes} web processes and the worker"
    )
    print()
    print(
        f"{run.backend}: omnicrm serves from {web}; {run.consoles} consoles over "
        f"{run.omnicrm.clients.processes} client processes; {run.rate:g} triggers/s"
    )
    print(HEADER)
    print(delivery_row(run.ceiling.name, run.ceiling.overall))
    for delivery in run.omnicrm.deliveries:
        print(delivery_row(f"omnicrm {delivery.name}", delivery))
    print(delivery_row(f"omnicrm ({run.backend}), all events", run.omnicrm.overall))
    print_target(run.ceiling)
    print_target(run.omnicrm)
    print(f"  RSS (VmRSS){'':<30}{'no console':>12}{f'{run.consoles} consoles':>16}")
    for item in (*run.ceiling.processes, *run.omnicrm.processes):
        print(f"    {item.process:<38}{mib(item.idle_kib):>12}{mib(item.loaded_kib):>16}")
    if len(run.omnicrm.processes) > 1:
        idle = sum(item.idle_kib or 0 for item in run.omnicrm.processes)
        loaded = sum(item.loaded_kib or 0 for item in run.omnicrm.processes)
        print(f"    {'omnicrm, all processes':<38}{mib(idle):>12}{mib(loaded):>16}")
    overall = run.omnicrm.overall
    print(
        f"verdict ({run.backend}): p99 {overall.p99_ms:.1f} ms from the trigger to each of "
        f"{overall.consoles} consoles over {overall.events} events: "
        f"{'PASS' if run.meets_target else 'MISS'} (target ≤ {TARGET_P99_MS:g} ms; "
        f"the bare ceiling's p99 {run.ceiling.overall.p99_ms:.1f} ms)"
    )
    if not run.ok:
        print(f"  ERRORS in the {run.backend} run: see above")
