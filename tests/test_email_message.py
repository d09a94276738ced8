"""Email parsing and composing (channels.email.message): the shared corpus, hand-written
fixtures for what the corpus lacks (replies from common clients, bounces, hostile HTML, broken
parts and headers), and the compose/parse round trip. No network, no database.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.compose import compose_message
from channels.email.message import ParsedEmail, parse_message
from channels.email.quotes import split_quoted_text
from channels.email.threads import MAX_REFERENCES, parse_outbox_id, thread_subject
from core.html import block_remote_content, sanitize_html
from core.validation import check_storable
from tests.conftest import unavailable

REPOSITORY = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "email"


def _corpus_dir() -> Path:
    configured = os.environ.get("OMNICRM_EMAIL_CORPUS")
    return Path(configured) if configured else REPOSITORY.parent / "shared" / "corpus" / "email"


CORPUS = _corpus_dir()
CORPUS_FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.eml"))


def _require_corpus() -> Path:
    if not CORPUS_FILES:
        unavailable(f"the shared email corpus is missing at {CORPUS} (set OMNICRM_EMAIL_CORPUS)")
    return CORPUS


def corpus_message(name: str) -> bytes:
    return (_require_corpus() / name).read_bytes()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_fixture(name: str) -> ParsedEmail:
    return parse_message(fixture(name))


def assert_storable(parsed: ParsedEmail) -> None:
    """What ingest will accept: no NUL, no lone surrogates anywhere."""
    strings = [
        parsed.subject,
        parsed.sender_name,
        parsed.sender_address,
        parsed.text,
        parsed.text_quoted,
        parsed.text_full,
        parsed.html or "",
        parsed.message_id or "",
        parsed.in_reply_to or "",
        parsed.auto_reply_reason or "",
        parsed.bounce_reason or "",
        *parsed.to,
        *parsed.cc,
        *parsed.reply_to,
        *parsed.references,
        *parsed.problems,
        *(attachment.filename for attachment in parsed.attachments),
    ]
    check_storable(strings, "parsed")


# --- the shared corpus

# Where Python's parser itself fails: a line in the header block that is not a header
# ("quite Delivered-To: ...", "__") or obsolete "Name : value" syntax makes it end the headers
# early, so it reports no Subject and no From. We drop the stray lines, read the rest, and
# show what a mail client shows.
PYTHON_FAILS = {
    "plain_emails/raw_email_incorrect_header.eml": (
        "Stop adware/spyware once and for all. ",
        "xxx@xxx.xxx",
    ),
    "rfc2822/example13.eml": ("Saying Hello", "jdoe@machine.example"),
}


def python_subject_and_sender(raw: bytes) -> tuple[str | None, str | None]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    subject = message["subject"]
    sender = message["from"]
    return (
        None if subject is None else str(subject),
        None if sender is None else sender.addresses[0].addr_spec.lower(),
    )


@pytest.mark.parametrize("name", CORPUS_FILES or ["(corpus missing)"])
def test_corpus_message_parses_with_subject_and_sender_as_python_reads_them(name: str) -> None:
    raw = corpus_message(name)
    parsed = parse_message(raw)

    python_subject, python_sender = python_subject_and_sender(raw)
    if name in PYTHON_FAILS:
        assert (python_subject, python_sender) == (None, None)  # still failing in Python
        assert (parsed.subject, parsed.sender_address) == PYTHON_FAILS[name]
        assert any("not a header" in problem for problem in parsed.problems)
    else:
        assert parsed.subject == (python_subject or "")
        assert parsed.sender_address == python_sender
    assert parsed.content_hash == hashlib.sha256(raw).hexdigest()
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert_storable(parsed)


def test_corpus_is_walked_through_every_subfolder() -> None:
    _require_corpus()
    folders = {name.split("/")[0] for name in CORPUS_FILES}
    assert {"attachment_emails", "multi_charset", "plain_emails", "rfc2822"} <= folders


@pytest.mark.parametrize(
    ("name", "filenames"),
    [
        ("attachment_emails/attachment_nonascii_filename.eml", ["ciële.txt"]),
        ("attachment_emails/attachment_with_base64_encoded_name.eml", ["This is a test.pdf"]),
        # RFC 2231 in ISO-2022-JP with a byte (0x8A) that is not valid there: shown replaced.
        (
            "attachment_emails/attachment_with_encoded_name.eml",
            ["01 Quien Te Dij\ufffdat. Pitbull.mp3"],
        ),
        ("attachment_emails/attachment_with_unquoted_name.eml", ["This is a test.txt"]),
        ("attachment_emails/attachment_with_quoted_filename.eml", ["Eelanalüüsi päring.jpg"]),
        ("attachment_emails/attachment_content_location.eml", ["Photo25.jpg"]),
        ("attachment_emails/attachment_message_rfc822.eml", ["ForwardedMessage.eml"]),
        ("multi_charset/japanese_attachment.eml", ["てすと.txt"]),
        ("multi_charset/japanese_attachment_long_name.eml", ["かきくけこ" * 5 + ".txt"]),
    ],
)
def test_corpus_attachment_names_are_decoded_as_a_mail_client_shows_them(
    name: str, filenames: list[str]
) -> None:
    parsed = parse_message(corpus_message(name))

    assert [attachment.filename for attachment in parsed.attachments] == filenames
    for attachment in parsed.attachments:
        assert attachment.content is not None
        assert attachment.size == len(attachment.content)


def test_corpus_attachment_content_and_inline_image_references() -> None:
    parsed = parse_message(corpus_message("multi_charset/japanese_attachment.eml"))
    assert parsed.attachments[0].content == "this is a test\nこれわてすと".encode()

    related = parse_message(
        corpus_message("attachment_emails/attachment_message_rfc822_inline_image.eml")
    )
    image = related.attachments[0]
    assert (image.filename, image.content_type, image.inline) == ("img.png", "image/png", True)
    assert image.content_id == "emedfeb92f-a786-4718-a446-98db8afb53fb@kronos"
    assert f"cid:{image.content_id}" in (related.html or "")


@pytest.mark.parametrize(
    ("name", "subject", "expected_text"),
    [
        ("multi_charset/japanese.eml", "まみむめも", "かきくえこ"),
        ("multi_charset/japanese_iso_2022.eml", "まみむめも", "すみません。"),
        ("multi_charset/japanese_shift_jis.eml", "test", "このメールはテスト用のメールです。"),
        ("multi_charset/ks_c_5601-1987.eml", "test", "스티해"),
        ("plain_emails/raw_email.eml", "NOTE: 한국말로 하는 것", "제 이름은 Jamis입니다."),
    ],
)
def test_corpus_texts_in_other_charsets_are_decoded(
    name: str, subject: str, expected_text: str
) -> None:
    parsed = parse_message(corpus_message(name))

    assert parsed.subject == subject
    assert expected_text in parsed.text


def test_corpus_signature_is_separated_from_the_new_text() -> None:
    parsed = parse_message(corpus_message("multi_charset/japanese.eml"))

    assert parsed.text == "かきくえこ"
    assert parsed.text_quoted.startswith("-- \nhttp://lindsaar.net/")
    assert parsed.text_full.startswith("かきくえこ\n\n-- \n")


def test_corpus_unknown_charset_is_guessed_and_noted() -> None:
    parsed = parse_message(corpus_message("plain_emails/raw_email10.eml"))

    assert "Envoyé par le service de messagerie texte de Bell Mobilité." in parsed.text
    assert any("X-UNKNOWN" in problem for problem in parsed.problems)


def test_corpus_multipart_without_boundary_is_recovered() -> None:
    parsed = parse_message(corpus_message("plain_emails/raw_email_bad_time.eml"))

    assert parsed.text.startswith("Filter2: This message has been scanned for viruses")
    assert parsed.html is not None
    assert "MailScanner" in parsed.html
    assert parsed.sender_name == "\u0410\u0442\u0438\u043a\u043e\u0432a"
    assert any("recovered" in problem for problem in parsed.problems)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("plain_emails/raw_email_with_bad_date.eml", "unreadable Date header"),
        ("plain_emails/raw_email_bad_time.eml", "in the future"),  # the year 3609
    ],
)
def test_corpus_garbage_dates_become_none(name: str, problem: str) -> None:
    parsed = parse_message(corpus_message(name))

    assert parsed.date is None
    assert any(problem in noted for noted in parsed.problems)


def test_corpus_message_id_without_brackets_and_references_are_normalized() -> None:
    no_brackets = parse_message(corpus_message("plain_emails/mix_caps_content_type.eml"))
    assert no_brackets.message_id == "<201002191008.30117.foo.bar@company.com>"

    reply = parse_message(corpus_message("rfc2822/example07.eml"))
    assert reply.in_reply_to == "<3456@example.net>"
    assert reply.references == ("<1234@local.machine.example>", "<3456@example.net>")

    obsolete = parse_message(corpus_message("rfc2822/example13.eml"))
    assert obsolete.message_id == "<1234@local.machine.example>"


# --- dates and headers


def _message(*headers: str, body: str = "Hello.\n") -> bytes:
    base = {
        "From": "Jane Customer <jane@example.com>",
        "To": "support@omnicrm.test",
        "Subject": "Question",
        "Date": "Fri, 5 May 2023 12:00:00 +0200",
        "Message-ID": "<question-1@example.com>",
    }
    extra = [header for header in headers if header.split(":")[0] not in base]
    for header in headers:
        name, _, value = header.partition(":")
        if name in base:
            base[name] = value.strip()
    lines = [f"{name}: {value}" for name, value in base.items()] + extra
    return ("\n".join(lines) + "\n\n" + body).encode()


def test_an_ordinary_message_is_not_automatic() -> None:
    parsed = parse_message(_message())

    assert (parsed.is_auto_reply, parsed.auto_reply_reason, parsed.is_bounce) == (
        False,
        None,
        False,
    )
    assert parsed.date == datetime(2023, 5, 5, 10, 0, tzinfo=UTC)
    assert parsed.problems == ()


def test_a_date_without_zone_is_read_as_utc() -> None:
    parsed = parse_message(_message("Date: Fri, 5 May 2023 12:00:00 -0000"))

    assert parsed.date == datetime(2023, 5, 5, 12, 0, tzinfo=UTC)


def test_missing_message_id_leaves_the_content_hash_to_tell_messages_apart() -> None:
    first = parse_message(_message("Message-ID: ", body="one\n"))
    second = parse_message(_message("Message-ID: ", body="two\n"))

    assert first.message_id is None
    assert second.message_id is None
    assert first.content_hash != second.content_hash


def test_headers_the_modern_parser_cannot_read_fall_back_to_their_raw_value() -> None:
    parsed = parse_fixture("broken_headers.eml")

    assert (parsed.sender_address, parsed.sender_name) == ("jane@example.com", "Jane Customer")
    assert parsed.to == ("support@omnicrm.test",)
    assert parsed.cc == ()
    assert parsed.message_id == "<[broken@example.com>"
    assert parsed.text == "The headers of this message are broken."
    assert "unreadable from header; read it the old way" in parsed.problems


def test_text_right_after_the_headers_without_a_blank_line_is_kept() -> None:
    parsed = parse_message(b"From: a@example.com\nSubject: Hi\nthis is body text\n\nmore\n")

    assert (parsed.subject, parsed.sender_address) == ("Hi", "a@example.com")
    assert parsed.text == "this is body text\n\nmore"


def test_undecodable_8bit_header_bytes_become_text() -> None:
    raw = _message().replace(b"Jane Customer", "Ren\u00e9 M\u00fcller".encode())

    parsed = parse_message(raw)

    assert parsed.sender_name == "René Müller"
    assert_storable(parsed)


def test_nul_characters_are_removed_from_the_text() -> None:
    parsed = parse_message(_message(body="Hel\x00lo\n"))

    assert parsed.text == "Hello"
    assert "NUL characters removed from text/plain" in parsed.problems


# --- attachments


def test_parts_that_cannot_be_decoded_are_kept_raw_and_flagged() -> None:
    parsed = parse_fixture("broken_parts.eml")
    by_name = {attachment.filename: attachment for attachment in parsed.attachments}

    assert parsed.text == "Here are the files."
    assert by_name["good.pdf"].content == b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n"
    assert not by_name["good.pdf"].undecodable
    # base64 of impossible length, an unknown transfer encoding, uuencode that is not
    assert by_name["truncated.bin"].content == b"QUJDREVGR0hJQ\n"
    assert by_name["strange.dat"].content == b"c29tZSBkYXRh\n"
    assert by_name["notes.txt"].content == b"this is not uuencoded at all\n"
    assert all(by_name[name].undecodable for name in ("truncated.bin", "strange.dat", "notes.txt"))
    assert "could not decode strange.dat (application/octet-stream); kept raw" in parsed.problems


def test_attachments_above_the_limit_keep_only_their_metadata() -> None:
    parsed = parse_message(fixture("broken_parts.eml"), max_attachment_bytes=14)
    by_name = {attachment.filename: attachment for attachment in parsed.attachments}

    large = by_name["good.pdf"]
    assert (large.too_large, large.content, large.size) == (True, None, 15)
    assert by_name["strange.dat"].content == b"c29tZSBkYXRh\n"  # 13 bytes: kept


def test_inline_images_keep_their_content_id_for_cid_references() -> None:
    parsed = parse_fixture("hostile_html.eml")

    [logo] = parsed.attachments
    assert (logo.filename, logo.content_type) == ("logo.png", "image/png")
    assert (logo.content_id, logo.inline) == ("logo@example.com", True)
    assert logo.content is not None
    assert logo.content.startswith(b"\x89PNG")


def test_hostile_attachment_names_lose_paths_and_control_characters() -> None:
    raw = (
        b"From: a@example.com\nSubject: x\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        b"Content-Type: application/octet-stream\n"
        b'Content-Disposition: attachment; filename="..\\\\..\\\\evil\xe2\x80\xaetxt.exe"\n\n'
        b"data\n--b--\n"
    )

    [attachment] = parse_message(raw).attachments

    assert attachment.filename == "eviltxt.exe"


def _nested(depth: int) -> bytes:
    opening = b"".join(
        f"Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n".encode()
        for level in range(depth)
    )
    return b"From: a@example.com\nSubject: Nested\n" + opening + b"Content-Type: text/plain\n\nhi\n"


@pytest.mark.parametrize("depth", [60, 3000])
def test_parts_nested_too_deep_are_kept_raw_instead_of_failing(depth: int) -> None:
    parsed = parse_message(_nested(depth))

    assert (parsed.subject, parsed.sender_address) == ("Nested", "a@example.com")
    assert any("nested" in problem for problem in parsed.problems)
    assert_storable(parsed)


# --- HTML


class _Elements(HTMLParser):
    """Every start tag with its attributes, to assert on what a browser would see."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


LOADING = {"src", "srcset", "background", "poster", "style", "href", "data", "action"}


def test_hostile_html_is_sanitized_and_loads_nothing_remote() -> None:
    parsed = parse_fixture("hostile_html.eml")
    assert parsed.html is not None

    shown = block_remote_content(sanitize_html(parsed.html))
    elements = _Elements(shown).tags

    tags = {tag for tag, _ in elements}
    assert not tags & {"script", "style", "svg", "iframe", "object", "form", "link", "meta"}
    for tag, attributes in elements:
        assert not [name for name in attributes if name.startswith("on")]
        for name, value in attributes.items():
            assert not value.strip().lower().startswith(("javascript:", "data:"))
            if name in LOADING and not (tag == "a" and name == "href"):
                assert value.startswith("cid:"), (tag, name, value)
    assert "alert(" not in shown
    links = [attributes["href"] for tag, attributes in elements if "href" in attributes]
    assert links == ["https://shop.example/orders/1234"]


def test_blocked_images_keep_their_address_for_loading_on_request() -> None:
    parsed = parse_fixture("hostile_html.eml")
    assert parsed.html is not None

    elements = _Elements(block_remote_content(sanitize_html(parsed.html))).tags

    images = [attributes for tag, attributes in elements if tag == "img"]
    assert images[0]["data-omnicrm-src"] == "https://tracker.example/pixel.gif?id=42"
    assert "src" not in images[0]
    # A relative address would load from omnicrm itself, with the operator's cookies.
    assert images[1]["data-omnicrm-src"] == "/api/v1/operators"
    assert images[2]["src"] == "cid:logo@example.com"


def test_remote_srcset_background_and_css_urls_are_neutralized() -> None:
    html = (
        '<img src="cid:a@b" srcset="https://x.example/1.png 1x" alt="a &amp; b">'
        '<div style="background:url(https://x.example/2.png)" title="t">text &lt;b&gt;</div>'
        '<img src="https://x.example/3.png" />'
    )

    shown = block_remote_content(html)

    assert shown == (
        '<img src="cid:a@b" data-omnicrm-srcset="https://x.example/1.png 1x" alt="a &amp; b">'
        '<div data-omnicrm-style="background:url(https://x.example/2.png)" title="t">'
        "text &lt;b&gt;</div>"
        '<img data-omnicrm-src="https://x.example/3.png">'
    )


def test_text_is_derived_from_html_without_scripts_when_there_is_no_text_part() -> None:
    parsed = parse_fixture("hostile_html.eml")

    assert parsed.text.startswith("My order number is 1234.")
    assert "alert" not in parsed.text_full
    assert "color: red" not in parsed.text_full


# --- quoted replies


@pytest.mark.parametrize(
    ("name", "new_text", "quote_starts"),
    [
        (
            "gmail_reply.eml",
            "Thanks, the parcel arrived today. The box was a bit dented but everything\n"
            "inside is fine.\n\nJane",
            "On Tue, May 2, 2023 at 9:00 AM Omnicrm Support <support@omnicrm.test>\nwrote:",
        ),
        (
            "outlook_reply.eml",
            "Vielen Dank, das hat das Problem gelöst.\n\nMit freundlichen Grüßen\nHans Müller",
            "________________________________\nFrom: Omnicrm Support",
        ),
        (
            "outlook_original_message.eml",
            "Please send the invoice to accounts@example.org instead.\n\nRobert",
            "-----Original Message-----\nFrom: Omnicrm Support",
        ),
        (
            "apple_mail_reply.eml",
            "Yes, please deliver to 12 rue de la Paix, à Paris.",
            "-- \nChloé Martin",
        ),
        (
            "html_only_reply.eml",
            "Yes, Thursday works for me.\n\nPat",
            "On Wed, 3 May 2023 at 10:00, Omnicrm Support wrote:",
        ),
    ],
)
def test_quoted_reply_and_signature_are_separated(
    name: str, new_text: str, quote_starts: str
) -> None:
    parsed = parse_fixture(name)

    assert parsed.text == new_text
    assert parsed.text_quoted.startswith(quote_starts)
    assert parsed.text in parsed.text_full
    assert parsed.text_quoted in parsed.text_full


def test_apple_mail_quote_without_signature_starts_at_the_quoted_attribution() -> None:
    text = (
        "Sounds good.\n\n> On 2 May 2023, at 09:00, Support <support@omnicrm.test> wrote:\n"
        ">\n> Shall we?\n"
    )

    assert split_quoted_text(text) == (
        "Sounds good.",
        "> On 2 May 2023, at 09:00, Support <support@omnicrm.test> wrote:\n>\n> Shall we?",
    )


def test_answers_between_quoted_lines_are_not_hidden() -> None:
    text = "> Which colour?\nBlue.\n> Which size?\nLarge.\n"

    assert split_quoted_text(text) == (text.strip("\n"), "")


def test_a_message_that_is_all_quote_is_kept_whole() -> None:
    text = "> forwarded words\n> more\n"

    assert split_quoted_text(text) == (text.strip("\n"), "")


# --- auto-replies and bounces


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        (
            "Auto-Submitted: auto-generated; owner-email=x@example.com",
            "Auto-Submitted: auto-generated",
        ),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: list", "Precedence: list"),
        ("Precedence: junk", "Precedence: junk"),
        ("X-Autoreply: yes", "X-Autoreply"),
        ("X-Autorespond: Out of office", "X-Autorespond"),
        ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply", "X-Auto-Response-Suppress"),
        ("X-Loop: support@omnicrm.test", "X-Loop"),
        ("Return-Path: <>", "empty Return-Path"),
        ("From: MAILER-DAEMON@mx.example.com", "bounce from a mailer daemon"),
        ("From: postmaster@example.com", "bounce from a mailer daemon"),
    ],
)
def test_automatic_messages_are_recognized(header: str, reason: str) -> None:
    parsed = parse_message(_message(header))

    assert parsed.is_auto_reply
    assert parsed.auto_reply_reason == reason


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: no",
        "Precedence: first-class",
        "X-Auto-Response-Suppress: DR, RN",
        "Return-Path: <jane@example.com>",
    ],
)
def test_headers_that_do_not_mean_automatic_are_ignored(header: str) -> None:
    parsed = parse_message(_message(header))

    assert not parsed.is_auto_reply
    assert parsed.auto_reply_reason is None


@pytest.mark.parametrize(
    ("name", "outbox_id", "reason"),
    [
        (
            "dsn_failed.eml",
            12,
            "nobody@example.com: 550 5.1.1 <nobody@example.com>: Recipient address rejected: "
            "User unknown",
        ),
        (
            "dsn_headers_only.eml",
            31,
            "ghost@example.org: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found "
            "by SMTP address lookup",
        ),
        ("qmail_bounce.eml", 77, "Remote host said: 550 5.7.1 Mailbox disabled for this recipient"),
    ],
)
def test_bounces_name_our_original_message_and_the_reason(
    name: str, outbox_id: int, reason: str
) -> None:
    parsed = parse_fixture(name)

    assert parsed.is_bounce
    assert parsed.is_auto_reply
    assert parse_outbox_id(parsed.bounce_original_message_id) == outbox_id
    assert parsed.bounce_reason == reason


def test_delay_reports_are_automatic_but_not_bounces() -> None:
    parsed = parse_fixture("dsn_delayed.eml")

    assert parsed.is_auto_reply
    assert not parsed.is_bounce
    assert parsed.auto_reply_reason == "delivery status (delayed)"
    assert parse_outbox_id(parsed.bounce_original_message_id) == 13
    assert parsed.bounce_reason is None


def test_a_forwarded_bounce_is_not_a_bounce() -> None:
    outer = EmailMessage()
    outer["From"] = "jane@example.com"
    outer["Subject"] = "Fwd: your mail bounced"
    outer.set_content("Why did this bounce?")
    bounce = email.message_from_bytes(fixture("dsn_failed.eml"), policy=email.policy.default)
    outer.add_attachment(bounce)

    parsed = parse_message(outer.as_bytes())

    assert not parsed.is_bounce
    assert not parsed.is_auto_reply
    assert parsed.attachments[0].content_type == "message/rfc822"


# --- threading


@pytest.mark.parametrize(
    ("subject", "normalized"),
    [
        ("Your order 1234", "your order 1234"),
        ("Re: Your order 1234", "your order 1234"),
        ("RE: re: Fwd: Your   order\t1234 ", "your order 1234"),
        ("AW: WG: Your order 1234", "your order 1234"),
        ("SV: Antw: Your order 1234", "your order 1234"),
        ("Re[2]: Your order 1234", "your order 1234"),
        ("[support] Re: [Ticket #88] Your order 1234", "your order 1234"),
        ("\uff32\uff45\uff1a Your order 1234", "your order 1234"),  # full-width
        ("Re: Réponse: ÉTÉ", "réponse: été"),
        ("Regarding your order", "regarding your order"),
    ],
)
def test_thread_subject_strips_reply_prefixes_and_list_tags(subject: str, normalized: str) -> None:
    assert thread_subject(subject) == normalized


# --- composing


def compose_reply(**overrides: object) -> EmailMessage:
    arguments: dict[str, object] = {
        "from_address": "support@omnicrm.test",
        "from_name": "Omnicrm Support",
        "to": "jane@example.com",
        "subject": "Re: Your order 1234",
        "text": "Hello Jane,\n\nit ships today. Grüße\n",
        "message_id_domain": "omnicrm.test",
        "in_reply_to": "<CAJ2x8Fq1=reply@mail.gmail.com>",
        "references": ["<CAJ0root=thread@mail.gmail.com> <omnicrm.41.0123@omnicrm.test>"],
        "outbox_id": 57,
    }
    arguments.update(overrides)
    return compose_message(**arguments)  # type: ignore[arg-type]


def test_a_composed_reply_parses_back_threaded_under_the_customer_message() -> None:
    parsed = parse_message(compose_reply(html="<p>Hello Jane</p>").as_bytes())

    assert re.fullmatch(r"<omnicrm\.57\.[0-9a-f]{16}@omnicrm\.test>", parsed.message_id or "")
    assert parse_outbox_id(parsed.message_id) == 57
    assert parsed.in_reply_to == "<CAJ2x8Fq1=reply@mail.gmail.com>"
    assert parsed.references == (
        "<CAJ0root=thread@mail.gmail.com>",
        "<omnicrm.41.0123@omnicrm.test>",
        "<CAJ2x8Fq1=reply@mail.gmail.com>",
    )
    assert not parsed.is_auto_reply
    assert (parsed.sender_address, parsed.sender_name) == (
        "support@omnicrm.test",
        "Omnicrm Support",
    )
    assert parsed.to == ("jane@example.com",)
    assert parsed.subject == "Re: Your order 1234"
    assert parsed.text == "Hello Jane,\n\nit ships today. Grüße"
    assert parsed.html == "<p>Hello Jane</p>\n"
    assert parsed.date is not None


def test_a_composed_message_has_our_headers_and_mime_structure() -> None:
    plain = compose_reply()
    with_html = compose_reply(html="<p>Hi</p>")

    assert plain["X-Omnicrm-Outbox-Id"] == "57"
    assert plain["Auto-Submitted"] is None
    assert plain.get_content_type() == "text/plain"
    assert with_html.get_content_type() == "multipart/alternative"
    # 7-bit clean, so no server needs 8BITMIME
    assert plain.as_bytes().isascii()
    assert with_html.as_bytes().isascii()


def test_automatic_messages_say_so_and_are_recognized_as_automatic() -> None:
    message = compose_reply(automatic=True)

    assert message["Auto-Submitted"] == "auto-replied"
    assert parse_message(message.as_bytes()).is_auto_reply


def test_a_retry_reuses_the_message_id_of_the_first_attempt() -> None:
    first = compose_reply()
    retry = compose_reply(message_id=str(first["Message-ID"]))
    fresh = compose_reply()

    assert retry["Message-ID"] == first["Message-ID"]
    assert fresh["Message-ID"] != first["Message-ID"]


def test_references_are_deduplicated_and_bounded_keeping_the_root_and_the_latest() -> None:
    chain = [f"<m{i}@example.com>" for i in range(40)]

    message = compose_reply(references=[*chain, chain[5]], in_reply_to="<m39@example.com>")

    references = str(message["References"]).split()
    assert len(references) == MAX_REFERENCES
    assert references[0] == "<m0@example.com>"
    assert references[1:] == chain[40 - MAX_REFERENCES + 1 :]


def test_line_breaks_in_subject_and_name_cannot_inject_headers() -> None:
    message = compose_reply(subject="Hi\r\nBcc: victim@example.com", from_name="Ops\nX-Evil: 1")

    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None
    assert str(parsed["Subject"]) == "Hi Bcc: victim@example.com"


def test_internationalized_domains_go_out_in_ascii() -> None:
    message = compose_reply(to="juergen@bücher.example")

    assert str(message["To"]) == "juergen@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": "not an address"},
        {"to": "jürgen@example.com"},  # would need SMTPUTF8
        {"to": []},
        {"to": "jane@example.com\r\nBcc: x@example.com"},
        {"from_address": "support"},
        {"message_id_domain": "bad domain"},
        {"message_id": "<>"},
    ],
)
def test_unusable_addresses_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        compose_reply(**overrides)


@pytest.mark.parametrize(
    ("message_id", "outbox_id"),
    [
        ("<omnicrm.42.0a1b2c3d4e5f6071@omnicrm.test>", 42),
        (" omnicrm.42.0a1b2c3d4e5f6071@omnicrm.test ", 42),
        ("<omnicrm.x.0a1b@omnicrm.test>", None),
        ("<CAJ2x8Fq1=reply@mail.gmail.com>", None),
        ("<omnicrm.42.0a1b@omnicrm.test> trailing", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_outbox_id_recognizes_only_our_message_ids(
    message_id: str | None, outbox_id: int | None
) -> None:
    assert parse_outbox_id(message_id) == outbox_id


# --- robustness


def _all_fixtures() -> list[bytes]:
    return [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    source=st.sampled_from(_all_fixtures()),
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=0, max_size=8)),
        max_size=6,
    ),
    cut=st.floats(0.05, 1),
)
def test_mangled_messages_never_raise_and_stay_storable(
    source: bytes, edits: list[tuple[float, bytes]], cut: float
) -> None:
    raw = bytearray(source[: max(1, int(len(source) * cut))])
    for position, replacement in edits:
        index = int(position * len(raw))
        raw[index : index + len(replacement)] = replacement

    parsed = parse_message(bytes(raw))

    assert_storable(parsed)
