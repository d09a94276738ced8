"""Public web forms: /forms/{slug} (the web-form channel's HTTP side).

The page is plain HTML without scripts, so it works anywhere, in an iframe on the customer's
website too; the handler accepts urlencoded, multipart and JSON posts, decodes them into
fields and hands them to the web-form channel (`channels/webform.py`, found in the
application's registry), which checks, parses and ingests.

The pages speak the visitor's language (`?lang=` on the form's address, carried through the
post as the `lang` field; else Accept-Language; else English). A browser whose post has
errors gets the form back (400) with each error beside its field and what they typed kept;
JSON clients (and posts that do not ask for HTML) get the API's JSON error.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy
from pydantic import BaseModel, ConfigDict, Field

from channels import webform
from channels.webform import SubmissionInvalid, WebFormChannel
from core.errors import InvalidInput, NotFound
from core.i18n import Translator, parse_accept_language, translator
from core.models import WebForm
from web.api import PUBLIC, ApiRoutes, Call, NoBody, error_body, json_response
from web.error_pages import prefers_html, visitor_locale
from web.keys import FORMS, INGEST_POLICY, REGISTRY, SETTINGS
from web.ratelimit import enforce_shared
from web.schemas import ReceivedOut

routes = ApiRoutes(tag="forms")

BROWSER_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
JSON_CONTENT_TYPE = "application/json"


class FormSubmission(BaseModel):
    """A web-form submission; also accepted urlencoded or multipart. Other fields are kept."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    message: str | None = Field(default=None, max_length=20_000)
    submission_id: str | None = Field(
        default=None, description="random id per rendered form; a repeated id is stored once"
    )
    website: str | None = Field(default=None, description="honeypot: must stay empty")
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    referrer: str | None = None


@routes.post(
    "/forms/{slug}",
    summary="Submit a web form (JSON answers 201/200 with ids; a browser post gets a 303, or "
    "the form again with its errors, 400, when it asks for HTML)",
    roles=PUBLIC,
    documented_body=FormSubmission,
    response=ReceivedOut,
    status=201,
    errors=(415, 429),
)
async def submit(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    channel = webform_channel(request)
    await enforce_shared(request, "forms", call.settings.form_rate_limit_per_minute)
    wants_json = request.content_type == JSON_CONTENT_TYPE
    # A browser posting the page: its errors are shown on the page, not as JSON.
    wants_page = request.content_type in BROWSER_CONTENT_TYPES and prefers_html(request)
    fields: dict[str, Any] = {}
    try:
        fields = await _read_fields(request)
        async with call.sessions() as session, session.begin():
            form = await request.app[FORMS].get(session, request.match_info["slug"])
            result = await channel.receive(
                session,
                form,
                fields,
                policy=request.app[INGEST_POLICY],
                referer_header=request.headers.get("Referer"),
                language=_contact_language(request, fields),
            )
    except InvalidInput as exc:
        if not wants_page:
            raise
        return await _form_again(call, fields, exc)
    lang = _explicit_locale(request, fields)
    if result is None:  # spam: answered as if received, nothing stored
        return _received(form, None, created=True, wants_json=wants_json, lang=lang)
    ids = ReceivedOut(
        interaction_id=result.interaction_id,
        conversation_id=result.conversation_id,
        contact_id=result.contact_id,
    )
    return _received(form, ids, created=result.created, wants_json=wants_json, lang=lang)


async def _form_again(
    call: Call[NoBody, NoBody], fields: Mapping[str, Any], error: InvalidInput
) -> web.Response:
    """The form with what the visitor typed and each error beside its field (400)."""
    request = call.request
    async with call.sessions() as session:
        form = await request.app[FORMS].get(session, request.match_info["slug"])
    tr = translator(visitor_locale(request, _text(fields.get(webform.LANGUAGE_FIELD))))
    typed = {name: _text(value) for name, value in fields.items()}
    hidden = {
        name: typed[name]
        for name in (webform.SUBMISSION_FIELD, webform.LANGUAGE_FIELD, *webform.MARKETING_FIELDS)
        if typed.get(name) and len(typed[name]) <= webform.MAX_FIELD_VALUE
    }
    hidden.setdefault(webform.SUBMISSION_FIELD, webform.new_submission_id())
    problems = error.problems if isinstance(error, SubmissionInvalid) else {}
    shown = {name: problem for name, problem in problems.items() if name in KNOWN_INPUTS}
    errors = {name: tr.gettext(problem.text, **problem.values) for name, problem in shown.items()}
    general = tr.gettext("Please correct the marked fields and send the form again.")
    if not errors:
        general = tr.gettext("The form could not be sent. Please check it and try again.")
    body = _form_body(form, hidden, tr, typed, errors, general)
    response = _html_page(form.title, body, form, tr, status=400)
    response.headers["Cache-Control"] = "no-store"
    return response


def _text(value: Any) -> str:
    """A posted value as text for showing it again (lists joined, anything else dropped)."""
    if isinstance(value, list):
        return ", ".join(part for part in (_text(item) for item in value) if part)
    return str(value) if isinstance(value, str | int | float) else ""


def _explicit_locale(request: web.Request, fields: Mapping[str, Any]) -> str | None:
    """The language the visitor chose explicitly (the form's `lang` field or `?lang=`)."""
    wanted = _text(fields.get(webform.LANGUAGE_FIELD)) or request.query.get("lang")
    return visitor_locale(request, wanted) if wanted else None


def _contact_language(request: web.Request, fields: Mapping[str, Any]) -> str | None:
    """The visitor's language for their contact record: their explicit choice, else the
    first language their browser asks for (whether or not the pages speak it)."""
    explicit = _explicit_locale(request, fields)
    if explicit:
        return explicit
    ranges = parse_accept_language(request.headers.get("Accept-Language"))
    return next((tag[:16] for tag in ranges if tag != "*"), None)


def webform_channel(request: web.Request) -> WebFormChannel:
    """The web-form channel this application runs; 404 when it runs without one."""
    channel = request.app[REGISTRY].get(webform.CHANNEL)
    if not isinstance(channel, WebFormChannel):
        raise NotFound("web forms are not enabled on this server")
    return channel


@routes.get("/forms/{slug}", summary="The form as an HTML page", roles=PUBLIC)
async def form_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    webform_channel(request)
    async with call.sessions() as session:
        form = await request.app[FORMS].get(session, request.match_info["slug"])
    hidden = {webform.SUBMISSION_FIELD: webform.new_submission_id()}
    explicit = _explicit_locale(request, {})
    if explicit:
        hidden[webform.LANGUAGE_FIELD] = explicit
    # Carry the visit's campaign and the page the form is embedded in into the submission.
    for name in webform.MARKETING_FIELDS:
        value = request.query.get(name)
        if name == "referrer" and not value:
            value = request.headers.get("Referer")
        if value and len(value) <= webform.MAX_FIELD_VALUE:
            hidden[name] = value
    tr = translator(visitor_locale(request))
    response = _html_page(form.title, _form_body(form, hidden, tr), form, tr)
    # Each render carries a fresh submission id; a cached copy would merge two people's posts.
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get(
    "/forms/{slug}/embed",
    summary="A snippet to paste into a website to show the form",
    roles=PUBLIC,
)
async def embed_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    webform_channel(request)
    async with call.sessions() as session:
        form = await request.app[FORMS].get(session, request.match_info["slug"])
    url = public_url(request, form)
    snippet = embed_snippet(url, form.title)
    body = (
        f"<h1>Embed “{escape(form.title)}”</h1>\n"
        "<p>Paste this snippet into the HTML of your website where the form should appear.</p>\n"
        f'<p><label for="snippet">Snippet</label></p>\n<textarea id="snippet" readonly rows="4" '
        f'cols="80">{escape(snippet)}</textarea>\n'
        f'<p>The form itself: <a href="{escape(url)}">{escape(url)}</a></p>'
    )
    return _html_page(f"Embed {form.title}", body, form, translator("en"))


@routes.get("/forms/{slug}/thanks", summary="The page shown after a submission", roles=PUBLIC)
async def thanks_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    webform_channel(call.request)
    async with call.sessions() as session:
        form = await call.request.app[FORMS].get(session, call.request.match_info["slug"])
    tr = translator(visitor_locale(call.request))
    title = tr.gettext("Thank you")
    text = tr.gettext(
        "We received your message ({form}) and will get back to you soon.", form=form.title
    )
    body = f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>"
    return _html_page(title, body, form, tr)


def embed_snippet(url: str, title: str) -> str:
    """The HTML to paste into a website to show the form at `url`."""
    return (
        f'<iframe src="{escape(url)}" title="{escape(title)}" loading="lazy" '
        'style="width:100%;min-height:40rem;border:0"></iframe>'
    )


def public_url(request: web.Request, form: WebForm) -> str:
    """The absolute address of the form: under the `public_url` setting when it is set (its
    path prefix included), so a forged Host header cannot change what is handed out; else as
    the client reached this server."""
    base = request.app[SETTINGS].public_url or str(request.url.origin())
    return f"{base}/forms/{quote(form.slug)}"


async def _read_fields(request: web.Request) -> dict[str, Any]:
    """The submitted fields by name; 400 if the body cannot be read, 415 for other types."""
    if request.content_type == JSON_CONTENT_TYPE:
        raw = await request.read()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            raise InvalidInput("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("body must be a JSON object of fields")
        return data
    if request.content_type in BROWSER_CONTENT_TYPES:
        try:
            posted = await request.post()
        except (HttpProcessingError, ValueError, LookupError):
            # Malformed multipart, undecodable text or an unknown charset.
            raise InvalidInput("the form data could not be read") from None
        return _by_name(posted)
    raise web.HTTPUnsupportedMediaType(
        text=json.dumps(
            error_body(
                "unsupported_media_type",
                "send the form as application/x-www-form-urlencoded, multipart/form-data "
                "or application/json",
            )
        ),
        content_type="application/json",
    )


def _by_name(posted: MultiDictProxy[Any]) -> dict[str, Any]:
    """One value per field name; a name sent several times (checkboxes) gives a list."""
    fields: dict[str, Any] = {}
    for name in posted:
        if name not in fields:
            values = posted.getall(name)
            fields[name] = values[0] if len(values) == 1 else values
    return fields


def _received(
    form: WebForm,
    ids: ReceivedOut | None,
    *,
    created: bool,
    wants_json: bool,
    lang: str | None = None,
) -> web.StreamResponse:
    if wants_json:
        body = ids or ReceivedOut(interaction_id=None, conversation_id=None, contact_id=None)
        return json_response(body, status=201 if created else 200)
    thanks = f"/forms/{quote(form.slug)}/thanks" + (f"?lang={quote(lang)}" if lang else "")
    raise web.HTTPSeeOther(form.thank_you_url or thanks)


# The inputs the page shows: name, label (a message id) and the opening of the element.
INPUTS = (
    ("name", "Your name", '<input type="text" autocomplete="name"'),
    ("email", "Email", '<input type="email" autocomplete="email"'),
    ("phone", "Phone", '<input type="tel" autocomplete="tel"'),
    ("message", "Message", '<textarea rows="6"'),
)
KNOWN_INPUTS = frozenset(name for name, _, _ in INPUTS)


def _labels(tr: Translator) -> dict[str, str]:
    return {
        "name": tr.gettext("Your name"),
        "email": tr.gettext("Email"),
        "phone": tr.gettext("Phone"),
        "message": tr.gettext("Message"),
    }


def _form_body(
    form: WebForm,
    hidden: Mapping[str, str],
    tr: Translator,
    typed: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    general: str | None = None,
) -> str:
    required = set(form.required_fields)
    labels = _labels(tr)
    rows = [
        _input(name, labels[name], opening, required, (typed or {}).get(name, ""), errors or {})
        for name, _, opening in INPUTS
    ]
    notes = [
        escape(tr.gettext("Fields marked {mark} (required) must be filled in.", mark="\0")).replace(
            "\0", '<span aria-hidden="true">*</span>'
        )
    ]
    if not {"email", "phone"} & required:
        notes.append(escape(tr.gettext(webform.NO_ADDRESS)))
    leave_empty = escape(tr.gettext("Leave this empty"))
    send = escape(tr.gettext("Send"))
    summary = f'<p class="error-summary" role="alert">{escape(general)}</p>\n' if general else ""
    hidden_inputs = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">\n'
        for name, value in hidden.items()
    )
    return (
        f"<h1>{escape(form.title)}</h1>\n"
        + summary
        + f'<form method="post" action="/forms/{quote(form.slug)}" '
        'enctype="application/x-www-form-urlencoded">\n'
        + "".join(f'<p class="note">{note}</p>\n' for note in notes)
        + "".join(rows)
        + hidden_inputs
        # The honeypot: off screen, out of the tab order and hidden from screen readers.
        + f'<div class="hp" aria-hidden="true"><label for="f-{webform.HONEYPOT_FIELD}">'
        f"{leave_empty}</label>"
        f'<input type="text" id="f-{webform.HONEYPOT_FIELD}" '
        f'name="{webform.HONEYPOT_FIELD}" tabindex="-1" autocomplete="off"></div>\n'
        f'<p><button type="submit">{send}</button></p>\n</form>'
    )


def _input(
    name: str,
    label: str,
    opening: str,
    required: set[str],
    value: str,
    errors: Mapping[str, str],
) -> str:
    is_required = name in required
    marker = ' <span class="required" aria-hidden="true">*</span>' if is_required else ""
    attributes = f' id="f-{name}" name="{name}"'
    attributes += f' maxlength="{webform.MAX_LENGTHS[name]}"'
    if is_required:
        attributes += " required"
    error = ""
    if name in errors:
        attributes += f' aria-invalid="true" aria-describedby="e-{name}"'
        error = f'<br>\n<span class="error" id="e-{name}">{escape(errors[name])}</span>'
    if opening.startswith("<textarea"):
        element = f"{opening}{attributes}>{escape(value)}</textarea>"
    else:
        element = f"{opening}{attributes}" + (f' value="{escape(value)}"' if value else "") + ">"
    return f'<p><label for="f-{name}">{escape(label)}{marker}</label><br>\n{element}{error}</p>\n'


STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:1.5rem auto;padding:0 1rem}"
    "input,textarea{width:100%;box-sizing:border-box;font:inherit;padding:.4rem}"
    "textarea#snippet{font-family:monospace}"
    ".required{color:#b00020}.note{color:#444}"
    ".error{color:#b00020;font-weight:600}"
    ".error-summary{color:#b00020;border:2px solid #b00020;padding:.5rem}"
    "[aria-invalid=true]{border:2px solid #b00020}"
    ".hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}"
    "button{font:inherit;padding:.4rem 1.2rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()


def _html_page(
    title: str, body: str, form: WebForm, tr: Translator, status: int = 200
) -> web.Response:
    page = (
        f'<!doctype html>\n<html lang="{escape(tr.locale)}"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
    response = web.Response(text=page, content_type="text/html", status=status)
    response.headers["Content-Security-Policy"] = _content_security_policy(form)
    response.headers["Content-Language"] = tr.locale
    response.headers["Vary"] = "Accept-Language"
    return response


def _content_security_policy(form: WebForm) -> str:
    """No scripts at all; the form may post here and redirect to its thank-you page."""
    form_action = "'self'"
    if form.thank_you_url:
        # validate_thank_you_url admits only a plain host[:port], safe to place here.
        parts = urlsplit(form.thank_you_url)
        form_action += f" {parts.scheme}://{parts.netloc}"
    # No frame-ancestors: the customer's website may frame the form.
    return (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
        f"form-action {form_action}; base-uri 'none'"
    )
