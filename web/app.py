"""The application factory: composes settings, storage, event bus, outbox and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from channels.accounts import declared_accounts
from channels.base import Channel, ChannelServices
from channels.pollers import PollerSupervisor
from channels.registry import ChannelRegistry, default_channels
from core import language
from core.channel_accounts import (
    DeclaredAccount,
    EnabledAccounts,
    HeardFrom,
    sync_config_accounts,
)
from core.clock import utcnow
from core.credentials import CredentialCipher
from core.db import asyncpg_dsn, make_engine, transaction
from core.enrichment import Enricher
from core.events import EventBus, listen_postgresql, session_info
from core.forms import FormCache
from core.ingest import IngestPolicy
from core.logfields import log_fields
from core.outbox import OutboxWorker, RetrySchedule, Sender
from core.reports import schedule as report_schedule
from core.settings import Settings
from core.storage import FilesystemStore
from core.suggestions.engines import build_service, embed_in_background
from core.workers import stop_task
from erp_bridge.auto_answers import OrderStatusResponder
from erp_bridge.enricher import ErpEnricher
from erp_bridge.order_search import ErpOrderSearch
from erp_bridge.service import ErpService
from routing.availability import queue_open
from routing.engine import RoutingEngine
from routing.service import RoutingOptions
from web import (
    routes_accounts,
    routes_admin,
    routes_attachments,
    routes_auth,
    routes_calls,
    routes_channels,
    routes_console_api,
    routes_contacts,
    routes_context,
    routes_conversations,
    routes_erp,
    routes_erp_console,
    routes_forms,
    routes_help,
    routes_i18n,
    routes_interactions,
    routes_knowledge,
    routes_leads,
    routes_operators,
    routes_pages,
    routes_pipelines,
    routes_privacy,
    routes_quarantine,
    routes_reports,
    routes_routing,
    routes_search,
    routes_status,
    routes_suggestions,
    routes_system,
    routes_tasks,
    routes_webchat,
    webforms,
    ws,
)
from web.api import ApiRoutes, error_body
from web.console_presence import OpenConsoles
from web.error_pages import browser_error_pages
from web.keys import (
    ATTACHMENTS,
    BACKGROUND,
    BUS,
    CALL_CONTROLS,
    CALL_PLACER,
    CONSOLES,
    CREDENTIALS,
    DECLARED_ACCOUNTS,
    ENGINE,
    ENRICHERS,
    ERP,
    FORMS,
    INGEST_POLICY,
    LIVE,
    METRICS,
    ORDER_SEARCH,
    OUTBOX_WORKER,
    POLLERS,
    REGISTRY,
    ROUTING,
    SENDERS,
    SERVICES,
    SESSIONS,
    SETTINGS,
    SUGGESTIONS,
    WEBHOOK_ACCOUNTS,
)
from web.live_sockets import LiveSockets
from web.metrics import Metrics
from web.middleware import dated, errors_as_json, security_headers, timed
from web.openapi import ROUTE_DOCS
from web.webchat_guard import webchat_cors

log = logging.getLogger(__name__)

API_ROUTES: tuple[ApiRoutes, ...] = (
    routes_auth.routes,
    routes_contacts.routes,
    routes_accounts.routes,
    routes_privacy.routes,
    routes_conversations.routes,
    routes_context.routes,
    routes_console_api.routes,
    routes_search.routes,
    routes_attachments.routes,
    routes_leads.routes,
    routes_pipelines.routes,
    routes_reports.routes,
    routes_tasks.routes,
    routes_calls.routes,
    routes_channels.routes,
    routes_quarantine.routes,
    routes_operators.routes,
    routes_admin.routes,
    routes_routing.routes,
    routes_forms.routes,
    routes_interactions.routes,
    routes_system.routes,
    routes_pages.routes,
    routes_i18n.routes,
    routes_webchat.routes,
    routes_erp.routes,
    routes_erp_console.routes,
    routes_status.routes,
    routes_knowledge.routes,
    routes_help.routes,
    routes_suggestions.routes,
)


def create_app(
    settings: Settings,
    *,
    senders: Mapping[str, Sender] | None = None,
    background_workers: bool = True,
    routing: bool | None = None,
    enrichers: Sequence[Enricher] = (),
    channels: Sequence[Channel] | None = None,
) -> web.Application:
    """Build the application; resources open and close with its cleanup contexts.

    `background_workers=False` leaves out the outbox worker and the channels' pollers (tests
    that drive them run their own). `routing` runs the routing engine (by default when the
    background workers run); `enrichers` give it facts from elsewhere (the ERP bridge).
    `channels` are the channels it runs (`default_channels()` unless given); `senders`
    replace their senders by channel name. The config file's channel accounts are checked by
    their channels here (SettingsError) and synced into the database when the app starts."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            timed,
            dated,
            security_headers,
            webchat_cors,
            browser_error_pages,
            errors_as_json,
        ],
    )
    app[SETTINGS] = settings
    app[BUS] = EventBus()
    app[METRICS] = Metrics()
    app[BUS].add_listener(app[METRICS].on_event)
    app[FORMS] = FormCache(app[BUS])
    app[INGEST_POLICY] = IngestPolicy(
        default_region=settings.default_region,
        reopen_window=timedelta(days=settings.reopen_window_days),
    )
    app[REGISTRY] = ChannelRegistry(default_channels() if channels is None else channels)
    app[REGISTRY].install()
    app[DECLARED_ACCOUNTS] = declared_accounts(settings.channel_accounts, app[REGISTRY])
    app[SENDERS] = dict(senders or {})
    app[ATTACHMENTS] = FilesystemStore(settings.attachments_dir)
    app[CREDENTIALS] = CredentialCipher.from_settings(settings)
    app[WEBHOOK_ACCOUNTS] = EnabledAccounts(app[BUS], app[CREDENTIALS])
    app[ROUTE_DOCS] = []
    for api in (*API_ROUTES, webforms.routes, ws.routes):
        app.router.add_routes(api.table)
        app[ROUTE_DOCS].extend(api.docs)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(erp_bridge)
    app[BACKGROUND] = background_workers
    app.cleanup_ctx.append(suggestions)
    if settings.is_postgresql:
        app.cleanup_ctx.append(postgresql_events)
    if background_workers:
        app.cleanup_ctx.append(outbox_worker)
        app.cleanup_ctx.append(pollers)
        app.cleanup_ctx.append(channel_background)
        app.cleanup_ctx.append(order_status_answers)
        app.cleanup_ctx.append(report_emails)
    app.on_shutdown.append(ws.close_sockets)
    app.cleanup_ctx.append(live_sockets)
    app.cleanup_ctx.append(open_consoles)
    app[ENRICHERS] = tuple(enrichers)
    # Until the database is up (the channels' telephony needs it): no calls to place.
    app[CALL_PLACER] = None
    app[CALL_CONTROLS] = None
    if background_workers if routing is None else routing:
        app.cleanup_ctx.append(routing_engine)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


async def open_consoles(app: web.Application) -> AsyncIterator[None]:
    """The operators with a console open here, told to routing every so often (well inside
    the grace after which routing counts a console as gone)."""
    seconds = app[SETTINGS].away_after_disconnect_seconds
    interval = max(1.0, min(15.0, seconds / 4))
    app[CONSOLES] = OpenConsoles(app[SESSIONS], interval, utcnow)
    stop = asyncio.Event()
    task = asyncio.create_task(app[CONSOLES].run(stop))
    yield
    await stop_task(task, stop)
    await app[CONSOLES].settle()


async def live_sockets(app: web.Application) -> AsyncIterator[None]:
    """The open `/ws` sockets, fed by one subscription to the bus (web/live_sockets.py)."""
    app[LIVE] = LiveSockets(app[SESSIONS])
    async with app[BUS].subscribe() as events:
        task = asyncio.create_task(app[LIVE].run(events))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def not_found(request: web.Request) -> web.Response:
    return web.json_response(
        error_body("not_found", f"no route for {request.method} {request.path}"), status=404
    )


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
    app[ENGINE] = engine
    app[SESSIONS] = async_sessionmaker(engine, expire_on_commit=False, info=session_info(app[BUS]))
    app[SERVICES] = ChannelServices(
        sessions=app[SESSIONS],
        bus=app[BUS],
        store=app[ATTACHMENTS],
        policy=app[INGEST_POLICY],
        cipher=app[CREDENTIALS],
        settings=app[SETTINGS],
        queue_hours=queue_open,
        heard=HeardFrom(app[BUS]),
    )
    telephony = app[REGISTRY].telephony(app[SERVICES])
    app[CALL_PLACER] = telephony.placer if telephony is not None else None
    app[CALL_CONTROLS] = telephony.calls if telephony is not None else None
    try:
        await _sync_config_accounts(app)
        yield
    finally:
        await engine.dispose()


async def _sync_config_accounts(app: web.Application) -> None:
    """Channel accounts declared in the config file are created, updated or disabled."""
    declared: list[DeclaredAccount] = app[DECLARED_ACCOUNTS]
    try:
        async with transaction(app[SESSIONS]) as session:
            result = await sync_config_accounts(session, declared, cipher=app[CREDENTIALS])
    except (SQLAlchemyError, OSError) as exc:
        # The server still starts, so /healthz can say what is wrong.
        log.error(
            "cannot sync the config file's channel accounts", extra=log_fields(error=str(exc))
        )
        return
    if result.created or result.updated or result.disabled:
        log.info(
            "config channel accounts synced",
            extra=log_fields(
                created=result.created, updated=result.updated, disabled=result.disabled
            ),
        )


async def postgresql_events(app: web.Application) -> AsyncIterator[None]:
    """Relay other processes' events (LISTEN/NOTIFY) into this process's bus."""
    # The engine's URL: its TLS mode is spelled as asyncpg's DSN parser reads it (sslmode).
    dsn = asyncpg_dsn(app[ENGINE].url)
    stop = asyncio.Event()
    task = asyncio.create_task(listen_postgresql(dsn, app[BUS], stop))
    yield
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def outbox_worker(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # The channels' senders, unless the application was given its own for a channel.
    given: dict[str, Sender] = app[SENDERS]
    senders: dict[str, Sender] = {**app[REGISTRY].senders(app[SERVICES]), **given}
    worker = OutboxWorker(
        app[SESSIONS],
        senders,
        app[BUS],
        poll_seconds=settings.outbox_poll_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        schedule=RetrySchedule(
            base_seconds=settings.outbox_retry_base_seconds,
            cap_seconds=settings.outbox_retry_cap_seconds,
            max_attempts=settings.outbox_max_attempts,
            give_up_after_seconds=settings.outbox_give_up_after_seconds,
        ),
    )
    app[OUTBOX_WORKER] = worker
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    yield
    await stop_task(task, stop)


async def channel_background(app: web.Application) -> AsyncIterator[None]:
    """The channels' own background work (Twilio's media downloads), until shutdown."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(work(stop)) for work in app[REGISTRY].background(app[SERVICES])]
    yield
    await asyncio.gather(*(stop_task(task, stop) for task in tasks))


async def erp_bridge(app: web.Application) -> AsyncIterator[None]:
    """The ERP this process reads (the embedded one unless an admin connected another)."""
    service = ErpService(
        app[SESSIONS],
        app[CREDENTIALS],
        observer=app[METRICS],
        timeout=app[SETTINGS].erp_timeout_seconds,
    )
    await service.refresh(force=True)
    app[ERP] = service
    app[METRICS].watch_erp(service.health)
    app[ORDER_SEARCH] = ErpOrderSearch(service)
    yield
    await service.close()


async def suggestions(app: web.Application) -> AsyncIterator[None]:
    """The suggestion engines; the semantic one's vectors kept up to date in the background
    when this process runs background workers."""
    service = build_service(
        app[SETTINGS].suggestion_engine, observer=app[METRICS].observe_suggestions
    )
    app[SUGGESTIONS] = service
    # Ingest detects every message's language: its model loads here, off the event loop.
    await asyncio.to_thread(language.warm)
    stop = asyncio.Event()
    task = (
        asyncio.create_task(embed_in_background(app[SESSIONS], service, stop))
        if app[BACKGROUND]
        else None
    )
    yield
    if task is not None:
        await stop_task(task, stop)


async def order_status_answers(app: web.Application) -> AsyncIterator[None]:
    """Automatic order-status answers for the queues that turn them on, until shutdown."""
    responder = OrderStatusResponder(app[SESSIONS], app[BUS], app[ERP].adapter)
    stop = asyncio.Event()
    task = asyncio.create_task(responder.run(stop))
    yield
    await stop_task(task, stop)


async def report_emails(app: web.Application) -> AsyncIterator[None]:
    """Weekly report emails (core/reports/schedule.py) as they fall due, until shutdown."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        report_schedule.run(app[SESSIONS], stop, public_url=app[SETTINGS].public_url)
    )
    yield
    await stop_task(task, stop)


async def routing_engine(app: web.Application) -> AsyncIterator[None]:
    """Routing passes on every relevant event and on every persisted deadline."""
    settings = app[SETTINGS]
    erp = ErpEnricher(app[SESSIONS], app[ERP].adapter, lambda: utcnow().date())
    enrichers: tuple[Enricher, ...] = (*app[ENRICHERS], erp)
    engine = RoutingEngine(
        app[SESSIONS],
        app[BUS],
        RoutingOptions(
            away_after_disconnect=timedelta(seconds=settings.away_after_disconnect_seconds),
            offline_after_disconnect=timedelta(seconds=settings.offline_after_disconnect_seconds),
            requeue_after_offline=timedelta(seconds=settings.requeue_after_offline_seconds),
            enricher_timeout=settings.enricher_timeout_seconds,
        ),
        enrichers,
    )
    app[ROUTING] = engine
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    yield
    await stop_task(task, stop)


async def pollers(app: web.Application) -> AsyncIterator[None]:
    """One poller per enabled account of every channel that polls, following the accounts."""
    supervisor = PollerSupervisor(app[REGISTRY], app[SERVICES])
    app[POLLERS] = supervisor
    app[METRICS].watch_pollers(supervisor)
    await supervisor.start()
    yield
    await supervisor.stop()
