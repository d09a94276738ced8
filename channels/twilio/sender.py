"""Sending SMS and WhatsApp messages from the outbox through Twilio.

Each message asks Twilio to call back its status to `/hooks/twilio/{account}/status` with
the outbox id and attempt in the address (the receipt can then find the item even before
the worker recorded Twilio's answer). No status callback without a public address
(`public_url` of the account or of the server): receipts need Twilio to reach us.

Twilio 21610 (the recipient unsubscribed) flags the address as opted out, so later replies
are refused before they are queued (core.reply_rules).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from channels.twilio.accounts import SendingAccount, enabled_accounts, sending_account, serves
from channels.twilio.client import connect, create_message
from channels.twilio.parse import OPTED_OUT, WHATSAPP
from channels.twilio.settings import WHATSAPP_PREFIX
from core.credentials import CredentialCipher
from core.db import SessionFactory, transaction
from core.logfields import log_fields
from core.models import IdentityKind
from core.outbox import Delivery, PermanentSendError, Sender
from core.reply_rules import set_opt_out

log = logging.getLogger(__name__)


class TwilioSender(Sender):
    """The sender of one channel ("sms" or "whatsapp") over the Twilio accounts."""

    timeout_seconds = 30.0

    def __init__(
        self,
        channel: str,
        sessions: SessionFactory,
        cipher: CredentialCipher,
        public_url: str | None,
    ) -> None:
        self.channel = channel
        self._sessions = sessions
        self._cipher = cipher
        self._public_url = public_url

    async def is_ready(self) -> bool:
        """Messages wait in the outbox until an enabled account serves the channel."""
        async with self._sessions() as session:
            accounts = await enabled_accounts(session, self._cipher)
        return any(serves(settings, self.channel) for _view, settings in accounts)

    async def do_send(self, delivery: Delivery) -> str:
        # The session closes before Twilio is called: no connection waits on the network.
        async with self._sessions() as session:
            account = await sending_account(
                session, self._cipher, self.channel, delivery.conversation_id
            )
        if account is None:
            raise PermanentSendError(f"no enabled Twilio account sends {self.channel}")
        payload = delivery.payload
        template = payload.get("template") or {}
        to = (
            f"{WHATSAPP_PREFIX}{delivery.recipient}"
            if self.channel == WHATSAPP
            else delivery.recipient
        )
        settings = account.settings
        try:
            async with connect(
                settings.account_sid, settings.auth_token, settings.api_base_url
            ) as api:
                sent = await create_message(
                    api,
                    to=to,
                    body=str(payload.get("text") or ""),
                    from_=account.from_,
                    messaging_service_sid=account.messaging_service_sid,
                    status_callback=self.status_callback(account, delivery),
                    media_urls=[str(url) for url in payload.get("media_urls") or []],
                    content_sid=template.get("content_sid"),
                    content_variables=template.get("variables") or None,
                )
        except PermanentSendError as exc:
            if exc.code == OPTED_OUT:
                await self._opted_out(delivery)
            raise
        log.info(
            "twilio accepted a message",
            extra=log_fields(
                outbox_id=delivery.outbox_id,
                account=account.view.name,
                message_sid=sent.sid,
                status=sent.status,
            ),
        )
        return sent.sid

    def status_callback(self, account: SendingAccount, delivery: Delivery) -> str | None:
        base = account.settings.public_url or self._public_url
        if not base:
            return None
        name = quote(account.view.name, safe="")
        return (
            f"{base.rstrip('/')}/hooks/twilio/{name}/status"
            f"?outbox={delivery.outbox_id}&attempt={delivery.attempt}"
        )

    async def _opted_out(self, delivery: Delivery) -> None:
        kind = IdentityKind.WHATSAPP if self.channel == WHATSAPP else IdentityKind.PHONE
        async with transaction(self._sessions) as session:
            await set_opt_out(session, kind, delivery.recipient, "Twilio 21610: unsubscribed")
