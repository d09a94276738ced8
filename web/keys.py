"""Typed application state shared by handlers and background tasks."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.base import ChannelServices
from channels.pollers import PollerSupervisor
from channels.registry import ChannelRegistry
from core.calls import CallControls
from core.channel_accounts import DeclaredAccount, EnabledAccounts
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.enrichment import Enricher
from core.events import EventBus
from core.forms import FormCache
from core.ingest import IngestPolicy
from core.outbox import OutboxWorker, Sender
from core.search import OrderSearch
from core.settings import Settings
from core.storage import AttachmentStore
from core.suggestions.service import SuggestionService
from core.tasks import CallPlacer
from erp_bridge.service import ErpService
from routing.engine import RoutingEngine
from web.console_presence import OpenConsoles
from web.live_sockets import LiveSockets
from web.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
# Whether this app runs the background workers (create_app's `background_workers`).
BACKGROUND = web.AppKey("background", bool)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", SessionFactory)
BUS = web.AppKey("bus", EventBus)
# Active web forms by slug, for the public pages and posts (core/forms.py).
FORMS = web.AppKey("forms", FormCache)
WEBHOOK_ACCOUNTS = web.AppKey("webhook_accounts", EnabledAccounts)
METRICS = web.AppKey("metrics", Metrics)
INGEST_POLICY = web.AppKey("ingest_policy", IngestPolicy)
# Channel name -> sender of outbox items; channels add theirs before the app starts.
SENDERS: web.AppKey[dict[str, Sender]] = web.AppKey("senders", dict[str, Sender])
OUTBOX_WORKER = web.AppKey("outbox_worker", OutboxWorker)
ATTACHMENTS = web.AppKey("attachments", AttachmentStore)
# Encrypts and decrypts channel credentials at rest (built from the settings' keys).
CREDENTIALS = web.AppKey("credentials", CredentialCipher)
# Runs the pollers of every channel's enabled accounts (IMAP today).
POLLERS = web.AppKey("pollers", PollerSupervisor)
ROUTING = web.AppKey("routing", RoutingEngine)
# The open live-event websockets and the one fan-out of events to them (web/live_sockets.py).
LIVE = web.AppKey("live_sockets", LiveSockets)
# The operators with a console open in this process (web/console_presence.py).
CONSOLES = web.AppKey("consoles", OpenConsoles)
# The channels this application runs, and what their adapters get to work with.
REGISTRY = web.AppKey("registry", ChannelRegistry)
SERVICES = web.AppKey("channel_services", ChannelServices)
# The config file's channel accounts, checked by their channels; synced at start-up.
DECLARED_ACCOUNTS: web.AppKey[list[DeclaredAccount]] = web.AppKey("declared_accounts")
ENRICHERS: web.AppKey[tuple[Enricher, ...]] = web.AppKey("enrichers", tuple[Enricher, ...])
# Finds orders by number for the search box: the ERP bridge's (erp_bridge/order_search.py),
# set when the app starts. Unset (an app without the bridge), the search answers no orders.
ORDER_SEARCH: web.AppKey[OrderSearch] = web.AppKey("order_search")
# Places a callback task's phone call (`POST /api/v1/tasks/{id}/call`): the voice channel's to
# set. None (no telephony): that route answers 409.
CALL_PLACER: web.AppKey[CallPlacer | None] = web.AppKey("call_placer")
# Hold, resume and hang up a conversation's call (`/api/v1/conversations/{id}/call/...`): the
# voice channel's. None (no telephony): those routes answer 409.
CALL_CONTROLS: web.AppKey[CallControls | None] = web.AppKey("call_controls")
# The ERP this process reads (erp_bridge/service.py), set when the app starts.
ERP = web.AppKey("erp", ErpService)
# The suggestion engines of this process and the one that answers (core/suggestions).
SUGGESTIONS = web.AppKey("suggestions", SuggestionService)
