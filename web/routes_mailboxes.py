"""Mailbox administration: the email accounts omnicrm reads and sends with (admins only)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.mailboxes import (
    DEFAULTS,
    SECRET_FIELDS,
    create_mailbox,
    deactivate_mailbox,
    get_mailbox,
    list_mailboxes,
    update_mailbox,
)
from core.models import Mailbox
from web.api import ADMINS, ApiRoutes, Call, NoBody, RecordId
from web.keys import CREDENTIALS
from web.schemas import MailboxOut

routes = ApiRoutes(tag="mailboxes")

TlsChoice = Literal["ssl", "starttls", "none"]
AfterImportChoice = Literal["leave", "seen", "move"]


class MailboxCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, description="unique; how admins tell mailboxes apart")
    address: str = Field(max_length=320, description="the From address of replies")
    display_name: str = Field(default=DEFAULTS["display_name"], max_length=200)
    imap_host: str = Field(max_length=255)
    imap_port: int = DEFAULTS["imap_port"]
    imap_tls: TlsChoice = Field(
        default=DEFAULTS["imap_tls"], description="ssl: implicit TLS; starttls; none"
    )
    imap_user: str = Field(max_length=320)
    imap_password: str = Field(
        default=DEFAULTS["imap_password"], max_length=1000, description="write-only"
    )
    imap_folder: str = Field(default=DEFAULTS["imap_folder"], max_length=200)
    smtp_host: str = Field(max_length=255)
    smtp_port: int = DEFAULTS["smtp_port"]
    smtp_tls: TlsChoice = DEFAULTS["smtp_tls"]
    smtp_user: str = Field(
        default=DEFAULTS["smtp_user"], max_length=320, description="empty: send without AUTH"
    )
    smtp_password: str = Field(
        default=DEFAULTS["smtp_password"], max_length=1000, description="write-only"
    )
    queue_id: RecordId | None = Field(
        default=DEFAULTS["queue_id"], description="the queue its conversations go to"
    )
    after_import: AfterImportChoice = Field(
        default=DEFAULTS["after_import"],
        description="what happens on the server to an imported message: leave, mark seen, move",
    )
    move_to_folder: str | None = Field(
        default=DEFAULTS["move_to_folder"], max_length=200, description="for after_import move"
    )
    use_idle: bool = Field(
        default=DEFAULTS["use_idle"], description="IMAP IDLE where the server supports it"
    )
    poll_seconds: int = Field(
        default=DEFAULTS["poll_seconds"], description="how often to look without IDLE"
    )
    backfill_days: int = Field(
        default=DEFAULTS["backfill_days"], description="how far back the first connection reads"
    )


class MailboxUpdateBody(BaseModel):
    """Only the settings sent change; a password left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)
    imap_host: str | None = Field(default=None, max_length=255)
    imap_port: int | None = None
    imap_tls: TlsChoice | None = None
    imap_user: str | None = Field(default=None, max_length=320)
    imap_password: str | None = Field(default=None, max_length=1000)
    imap_folder: str | None = Field(default=None, max_length=200)
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int | None = None
    smtp_tls: TlsChoice | None = None
    smtp_user: str | None = Field(default=None, max_length=320)
    smtp_password: str | None = Field(default=None, max_length=1000)
    queue_id: RecordId | None = Field(default=None, description="null: no queue")
    after_import: AfterImportChoice | None = None
    move_to_folder: str | None = Field(default=None, max_length=200)
    use_idle: bool | None = None
    poll_seconds: int | None = None
    backfill_days: int | None = None
    active: bool | None = Field(default=None, description="true reactivates a mailbox")

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        # Runs only for values actually sent; only these two may be cleared with null.
        if value is None and info.field_name not in ("queue_id", "move_to_folder"):
            raise ValueError("may not be null")
        return value


def mailbox_out(mailbox: Mailbox) -> MailboxOut:
    shown = {
        name: getattr(mailbox, name)
        for name in MailboxOut.model_fields
        if name.removesuffix("_set") not in SECRET_FIELDS
    }
    return MailboxOut(
        **shown,
        imap_password_set=bool(mailbox.imap_password),
        smtp_password_set=bool(mailbox.smtp_password),
    )


@routes.get(
    "/api/v1/mailboxes",
    summary="Every mailbox, active or not, oldest first; passwords are never shown",
    roles=ADMINS,
    response=list[MailboxOut],
)
async def list_all(call: Call[NoBody, NoBody]) -> list[MailboxOut]:
    async with call.sessions() as session:
        mailboxes = await list_mailboxes(session)
    return [mailbox_out(mailbox) for mailbox in mailboxes]


@routes.post(
    "/api/v1/mailboxes",
    summary="Add a mailbox; its poller starts at once",
    roles=ADMINS,
    body=MailboxCreateBody,
    response=MailboxOut,
    status=201,
    errors=(409,),
)
async def create(call: Call[MailboxCreateBody, NoBody]) -> MailboxOut:
    async with call.sessions() as session, session.begin():
        mailbox = await create_mailbox(
            session, call.actor, call.body.model_dump(), cipher=call.request.app[CREDENTIALS]
        )
    return mailbox_out(mailbox)


@routes.get("/api/v1/mailboxes/{id}", summary="One mailbox", roles=ADMINS, response=MailboxOut)
async def get_one(call: Call[NoBody, NoBody]) -> MailboxOut:
    async with call.sessions() as session:
        mailbox = await get_mailbox(session, call.path_int("id"))
    return mailbox_out(mailbox)


@routes.patch(
    "/api/v1/mailboxes/{id}",
    summary="Change a mailbox's settings (not one declared in the config file: 409)",
    roles=ADMINS,
    body=MailboxUpdateBody,
    response=MailboxOut,
    errors=(409,),
)
async def update(call: Call[MailboxUpdateBody, NoBody]) -> MailboxOut:
    async with call.sessions() as session, session.begin():
        mailbox = await update_mailbox(
            session,
            call.actor,
            call.path_int("id"),
            call.body.model_dump(exclude_unset=True),
            cipher=call.request.app[CREDENTIALS],
        )
    return mailbox_out(mailbox)


@routes.delete(
    "/api/v1/mailboxes/{id}",
    summary="Deactivate a mailbox: it stops reading and sending; what it imported stays",
    roles=ADMINS,
    status=204,
    errors=(409,),
)
async def deactivate(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await deactivate_mailbox(session, call.actor, call.path_int("id"))
    return web.Response(status=204)
