"""The web-form channel: a form submission becomes an inbound interaction.

`parse_submission` is pure (no HTTP, no database); `WebFormChannel.receive` is the channel's
intake: spam check, parse, ingest, in the caller's transaction. The web layer
(`web/webforms.py`) serves the form pages, decodes the body (urlencoded, multipart or JSON)
into a mapping of field names to values and hands it to `receive` with the form's definition.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Channel
from core.channels import ChannelFacts
from core.errors import InvalidInput
from core.forms import KNOWN_FIELDS
from core.i18n import N_
from core.identity import Address, normalize_email, normalize_phone
from core.ingest import InboundEvent, IngestPolicy, IngestResult, LeadRequest, ingest
from core.models import IdentityKind, InteractionKind, WebForm
from core.validation import check_storable

CHANNEL = "webform"
# Bots fill in every input; humans never see this one.
HONEYPOT_FIELD = "website"
# A random id rendered into each form, so a double submit is stored once.
SUBMISSION_FIELD = "submission_id"
# The visitor's language when the page was asked for in one (`/forms/{slug}?lang=de`).
LANGUAGE_FIELD = "lang"
MARKETING_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "referrer")
RESERVED_FIELDS = frozenset(
    {*KNOWN_FIELDS, HONEYPOT_FIELD, SUBMISSION_FIELD, LANGUAGE_FIELD, *MARKETING_FIELDS}
)

MAX_CUSTOM_FIELDS = 50
MAX_FIELD_NAME = 100
MAX_FIELD_VALUE = 2000
MAX_LENGTHS = {"name": 200, "email": 320, "phone": 50, "message": 20_000}
_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")

# A field's value as decoded from the body: text, a JSON scalar, a list of those (a field sent
# several times, e.g. checkboxes), or anything else a client may send (rejected).
FieldValue = object


@dataclass(frozen=True)
class Problem:
    """What is wrong with a field: `message` for the API (English, stable), `text` (a message
    id with `{placeholders}` filled from `values`) for the visitor, in their language."""

    message: str
    text: str
    values: dict[str, object] = field(default_factory=dict)


REQUIRED = N_("Please fill in this field.")
TOO_LONG = N_("Please use at most {limit} characters.")
NOT_ACCEPTED = N_("This value cannot be accepted.")
BAD_EMAIL = N_("This is not a valid email address.")
BAD_PHONE = N_("This is not a valid phone number.")
NO_ADDRESS = N_("Give an email address or a phone number so we can answer you.")


class SubmissionInvalid(InvalidInput):
    """The fields at fault: `fields` (the API's messages) and `problems` (the visitor's)."""

    def __init__(self, problems: Mapping[str, Problem]) -> None:
        super().__init__("the form has invalid fields")
        self.problems = dict(problems)
        self.fields.update({name: problem.message for name, problem in problems.items()})


def new_submission_id() -> str:
    return secrets.token_urlsafe(16)


def is_spam(fields: Mapping[str, FieldValue]) -> bool:
    """The honeypot is filled in: answer as if received, store nothing."""
    value = fields.get(HONEYPOT_FIELD)
    return value not in (None, "", [])


def parse_submission(
    form: WebForm,
    fields: Mapping[str, FieldValue],
    *,
    referer_header: str | None,
    default_region: str | None,
    language: str | None = None,
) -> InboundEvent:
    """The inbound event for a submission of `form`; SubmissionInvalid names the fields at
    fault (InvalidInput for a submission with too many fields). `language` is the visitor's,
    kept on a contact that has none."""
    if len([name for name in fields if name not in RESERVED_FIELDS]) > MAX_CUSTOM_FIELDS:
        raise InvalidInput(
            f"too many fields: at most {MAX_CUSTOM_FIELDS} besides {', '.join(KNOWN_FIELDS)}"
        )
    errors: dict[str, Problem] = {}
    values: dict[str, str] = {}
    for name, raw in fields.items():
        if not name or len(name) > MAX_FIELD_NAME or not _is_storable(name):
            message = "field names must be 1 to 100 characters of text"
            errors[name[:MAX_FIELD_NAME] or "field"] = Problem(message, NOT_ACCEPTED)
            continue
        try:
            value = _as_text(raw, name)
        except InvalidInput as exc:
            errors[name] = Problem(exc.message, NOT_ACCEPTED)
            continue
        limit = MAX_LENGTHS.get(name, MAX_FIELD_VALUE)
        if len(value) > limit:
            errors[name] = Problem(f"at most {limit} characters", TOO_LONG, {"limit": limit})
        elif value:
            values[name] = value
    custom = {name: value for name, value in values.items() if name not in RESERVED_FIELDS}
    for name in form.required_fields:
        if name not in values and name not in errors:
            errors[name] = Problem("this field is required", REQUIRED)
    addresses = _addresses(values, errors, default_region)
    submission_id = values.get(SUBMISSION_FIELD)
    if submission_id is not None and not _SUBMISSION_ID.fullmatch(submission_id):
        message = "letters, digits and ._:- only, up to 200"
        errors[SUBMISSION_FIELD] = Problem(message, NOT_ACCEPTED)
    if errors:
        raise SubmissionInvalid(errors)
    marketing = {name: values[name] for name in MARKETING_FIELDS if name in values}
    if "referrer" not in marketing and referer_header:
        referrer = referer_header.strip()[:MAX_FIELD_VALUE]
        if _is_storable(referrer):
            marketing["referrer"] = referrer
    return InboundEvent(
        channel=CHANNEL,
        # Namespaced by form, so an id sent to one form can never answer for another's.
        external_id=f"{form.slug}:{submission_id or new_submission_id()}",
        addresses=addresses,
        kind=InteractionKind.FORM,
        display_name=values.get("name", ""),
        subject=form.title,
        text=values.get("message", ""),
        meta={
            "form": {"id": form.id, "slug": form.slug},
            "fields": custom,
            "marketing": marketing,
        },
        # One conversation per form and contact: a sales form and a support form do not mix.
        thread_key=f"form:{form.slug}",
        queue_id=form.queue_id,
        language=language,
        contact_fields=custom,
        marketing={"channel": CHANNEL, "form": form.slug, **marketing},
        lead=LeadRequest(source=f"form:{form.slug}", marketing=marketing)
        if form.create_lead
        else None,
    )


def _as_text(raw: FieldValue, name: str) -> str:
    """A field's value as one trimmed string; a list (a repeated field) is joined."""
    if raw is None:
        return ""
    if isinstance(raw, list):
        return ", ".join(part for part in (_scalar_text(item, name) for item in raw) if part)
    return _scalar_text(raw, name)


def _scalar_text(raw: FieldValue, name: str) -> str:
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if isinstance(raw, str | int | float):
        text = str(raw).strip()
        check_storable(text, name)
        return text
    if raw is None:
        return ""
    raise InvalidInput("must be text (files and nested values are not accepted)", field=name)


def _addresses(
    values: dict[str, str], errors: dict[str, Problem], default_region: str | None
) -> list[Address]:
    addresses = []
    if "email" in values and "email" not in errors:
        try:
            addresses.append(Address(IdentityKind.EMAIL, normalize_email(values["email"])))
        except InvalidInput as exc:
            errors["email"] = Problem(exc.message, BAD_EMAIL)
    if "phone" in values and "phone" not in errors:
        try:
            phone = normalize_phone(values["phone"], default_region)
            addresses.append(Address(IdentityKind.PHONE, phone))
        except InvalidInput as exc:
            errors["phone"] = Problem(exc.message, BAD_PHONE)
    if not addresses and not ({"email", "phone"} & errors.keys()):
        problem = Problem("give an email address or a phone number so we can answer", NO_ADDRESS)
        errors["email"] = problem
        errors["phone"] = problem
    return addresses


def _is_storable(text: str) -> bool:
    try:
        check_storable(text, "field")
    except InvalidInput:
        return False
    return True


class WebFormChannel(Channel):
    """Web forms: no accounts (each form is its own record) and no sender; email answers."""

    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=CHANNEL,
        label=N_("Web form"),  # translated where shown (the console)
        icon="webform",
        identity_kind=None,
        answered_by="email",
        description="forms on your website, answered by email",
    )

    async def receive(
        self,
        session: AsyncSession,
        form: WebForm,
        fields: Mapping[str, FieldValue],
        *,
        policy: IngestPolicy,
        referer_header: str | None = None,
        language: str | None = None,
    ) -> IngestResult | None:
        """Store a submission of `form` in the caller's transaction; None for spam (the
        honeypot is filled: answer as if received, store nothing). InvalidInput names the
        fields at fault; a repeated submission id answers the first one's ids."""
        if is_spam(fields):
            return None
        event = parse_submission(
            form,
            fields,
            referer_header=referer_header,
            default_region=policy.default_region,
            language=language,
        )
        return await ingest(session, event, policy)
