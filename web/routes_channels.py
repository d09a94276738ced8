"""Channels: what each can do (for the console), their accounts (admins), and the webhooks
providers call (`/hooks/{channel}/{account}/{hook}`).

Everything here is generic: the registry (`channels/registry.py`) says which channels exist,
each channel's settings model checks its accounts' settings, and each webhook adapter
authenticates, parses and stores its own requests (`channels/base.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from channels.accounts import add_account, change_account
from channels.base import Channel, WebhookRequest
from channels.registry import ChannelRegistry
from core.channel_accounts import (
    get_account,
    health_of,
    list_accounts,
    public_settings,
    update_account,
    view_of,
)
from core.errors import NotFound
from core.models import ChannelAccount
from web.api import ADMINS, ANYONE_SIGNED_IN, PUBLIC, ApiRoutes, Call, NoBody, RecordId
from web.keys import CREDENTIALS, METRICS, REGISTRY, SERVICES, WEBHOOK_ACCOUNTS

routes = ApiRoutes(tag="channels")

AccountName = Field(min_length=1, max_length=100, pattern=r"^[^/]+$")


class ChannelOut(BaseModel):
    name: str
    label: str
    icon: str
    description: str
    address_kind: str | None = Field(description="the kind of customer address replies go to")
    capacity_kind: str = Field(description="the operator capacity its work counts against")
    sends: list[str] = Field(description="what it can send: text, html, media, templates")
    can_send: bool
    answered_by: str | None = Field(description="the channel that answers for it, if it cannot")
    reply_window_seconds: int | None = Field(
        description="how long after the customer's last message free text may be sent"
    )
    has_accounts: bool
    carries_conversations: bool = Field(
        description="false for an entry that only holds accounts for other channels (twilio)"
    )


class AccountOut(BaseModel):
    id: int
    channel: str
    name: str
    settings: dict[str, Any] = Field(description="secrets are shown as <name>_set booleans")
    queue_id: int | None
    enabled: bool
    from_config: bool
    health: str = Field(description='"ok", "starting", "disabled" or "error since …: reason"')
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    webhooks: dict[str, str] = Field(description="the address of each webhook, by hook name")
    embed: str | None = Field(
        default=None, description="HTML to paste into the website (the chat widget's script)"
    )
    created_at: datetime
    updated_at: datetime


class AccountCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=40)
    name: str = AccountName
    settings: dict[str, Any] = Field(default_factory=dict)
    queue_id: RecordId | None = None


class AccountUpdateBody(BaseModel):
    """Fields left out stay as they are; in `settings`, only the keys sent change."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] | None = None
    queue_id: RecordId | None = None
    enabled: bool | None = None


class ChannelSettingsOut(BaseModel):
    channel: str
    label: str
    settings_schema: dict[str, Any] = Field(
        description="the JSON schema of an account's settings (pydantic's)"
    )
    secret_fields: list[str] = Field(description="settings that are write-only secrets")


class CheckOut(BaseModel):
    ok: bool
    message: str


def _registry(call: Call[Any, Any]) -> ChannelRegistry:
    return call.request.app[REGISTRY]


def public_base(request: web.Request) -> str:
    """omnicrm's address as the outside world reaches it (`public_url`, else the request's)."""
    settings = request.app[SERVICES].settings
    return settings.public_url or f"{request.scheme}://{request.host}"


def webhook_urls(request: web.Request, channel: Channel, account: str) -> dict[str, str]:
    """Where a provider must send each webhook of `account` (from `public_url` when set):
    the ones an admin enters at the provider, not those omnicrm hands over itself."""
    base = public_base(request)
    return {
        adapter.hook: f"{base}/hooks/{channel.name}/{account}/{adapter.hook}"
        for adapter in channel.webhooks()
        if adapter.entered_by_admin
    }


def account_out(request: web.Request, registry: ChannelRegistry, row: ChannelAccount) -> AccountOut:
    channel = registry.get(row.channel)
    secrets = channel.secret_fields if channel is not None else frozenset(row.settings)
    return AccountOut(
        id=row.id,
        channel=row.channel,
        name=row.name,
        settings=public_settings(row, secrets),
        queue_id=row.queue_id,
        enabled=row.enabled,
        from_config=row.from_config,
        health=health_of(row),
        last_success_at=row.last_success_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        webhooks=webhook_urls(request, channel, row.name) if channel is not None else {},
        embed=channel.embed(row.name, public_base(request)) if channel is not None else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@routes.get(
    "/api/v1/channels",
    summary="The channels this server runs: labels, icons, what each can send",
    roles=ANYONE_SIGNED_IN,
    response=list[ChannelOut],
)
async def list_channels(call: Call[NoBody, NoBody]) -> list[ChannelOut]:
    return [ChannelOut.model_validate(item) for item in _registry(call).describe()]


@routes.get(
    "/api/v1/channel-settings",
    summary="The settings each channel's accounts take, as JSON schemas (for the admin page)",
    roles=ADMINS,
    response=list[ChannelSettingsOut],
)
async def list_channel_settings(call: Call[NoBody, NoBody]) -> list[ChannelSettingsOut]:
    return [
        ChannelSettingsOut(
            channel=channel.name,
            label=channel.facts.label,
            settings_schema=channel.settings_model.model_json_schema(),
            secret_fields=sorted(channel.secret_fields),
        )
        for channel in _registry(call).with_accounts()
        if channel.settings_model is not None
    ]


@routes.get(
    "/api/v1/channel-accounts",
    summary="Every channel account with its health; secrets are never shown",
    roles=ADMINS,
    response=list[AccountOut],
)
async def list_all(call: Call[NoBody, NoBody]) -> list[AccountOut]:
    async with call.sessions() as session:
        rows = await list_accounts(session)
    return [account_out(call.request, _registry(call), row) for row in rows]


@routes.post(
    "/api/v1/channel-accounts",
    summary="Add an account to a channel; settings are checked by the channel",
    roles=ADMINS,
    body=AccountCreateBody,
    response=AccountOut,
    status=201,
    errors=(409,),
)
async def create(call: Call[AccountCreateBody, NoBody]) -> AccountOut:
    registry = _registry(call)
    async with call.sessions() as session, session.begin():
        row = await add_account(
            session,
            call.actor,
            registry,
            call.request.app[CREDENTIALS],
            channel=call.body.channel,
            name=call.body.name,
            settings=call.body.settings,
            queue_id=call.body.queue_id,
        )
    return account_out(call.request, registry, row)


@routes.get(
    "/api/v1/channel-accounts/{id}",
    summary="One channel account",
    roles=ADMINS,
    response=AccountOut,
)
async def get_one(call: Call[NoBody, NoBody]) -> AccountOut:
    async with call.sessions() as session:
        row = await get_account(session, call.path_int("id"))
    return account_out(call.request, _registry(call), row)


@routes.patch(
    "/api/v1/channel-accounts/{id}",
    summary="Change an account (not one declared in the config file: 409)",
    roles=ADMINS,
    body=AccountUpdateBody,
    response=AccountOut,
    errors=(409,),
)
async def update(call: Call[AccountUpdateBody, NoBody]) -> AccountOut:
    registry = _registry(call)
    sent = call.body.model_fields_set
    async with call.sessions() as session, session.begin():
        row = await get_account(session, call.path_int("id"))
        await change_account(
            session,
            call.actor,
            registry,
            call.request.app[CREDENTIALS],
            row,
            settings=call.body.settings,
            queue_id=call.body.queue_id,
            set_queue="queue_id" in sent,
            enabled=call.body.enabled,
        )
    return account_out(call.request, registry, row)


@routes.delete(
    "/api/v1/channel-accounts/{id}",
    summary="Disable an account (its history stays; PATCH enabled=true brings it back)",
    roles=ADMINS,
    response=AccountOut,
    errors=(409,),
)
async def disable(call: Call[NoBody, NoBody]) -> AccountOut:
    registry = _registry(call)
    async with call.sessions() as session, session.begin():
        row = await get_account(session, call.path_int("id"))
        channel = registry.get(row.channel)
        await update_account(
            session,
            call.actor,
            row,
            settings={},
            secret_fields=channel.secret_fields if channel else (),
            cipher=call.request.app[CREDENTIALS],
            enabled=False,
        )
    return account_out(call.request, registry, row)


@routes.post(
    "/api/v1/channel-accounts/{id}/check",
    summary="Try the account's connection and credentials with its provider",
    roles=ADMINS,
    response=CheckOut,
)
async def check(call: Call[NoBody, NoBody]) -> CheckOut:
    registry = _registry(call)
    services = call.request.app[SERVICES]
    async with call.sessions() as session:
        row = await get_account(session, call.path_int("id"))
    channel = registry.account_channel(row.channel)
    try:
        view = view_of(row, services.cipher, channel.secret_fields)
        message = await channel.check(view, services)
    except Exception as exc:  # the provider's or the network's answer, shown to the admin
        return CheckOut(ok=False, message=f"{type(exc).__name__}: {exc}")
    return CheckOut(ok=True, message=message)


@routes.post(
    "/hooks/{channel}/{account}/{hook}",
    summary="Provider webhooks: authenticated by the channel before anything is parsed",
    roles=PUBLIC,
    errors=(400, 403),
)
async def webhook(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    registry: ChannelRegistry = request.app[REGISTRY]
    services = request.app[SERVICES]
    name, account_name, hook = (request.match_info[key] for key in ("channel", "account", "hook"))
    adapter = registry.webhook(name, hook)
    channel = registry.require(name)
    account = await request.app[WEBHOOK_ACCOUNTS].get(
        call.sessions, name, account_name, channel.secret_fields
    )
    if account is None:
        raise NotFound(f"no enabled {name} account {account_name!r}")
    body = await request.read()
    base = services.settings.public_url or f"{request.scheme}://{request.host}"
    incoming = WebhookRequest(
        method=request.method,
        url=f"{base}{request.rel_url}",
        headers=dict(request.headers),
        body=body,
        remote=request.remote,
    )
    reply = await adapter.handle(incoming, account, services)
    request.app[METRICS].webhooks.labels(name, hook, reply.outcome).inc()
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)
