"""A number's call flow as an admin configures it, and the TwiML it becomes (pure: no
database, no network). The TwiML is read back with an XML parser as Twilio reads it, and
built again with the `twilio` library's own builders, which must give the same document."""

from __future__ import annotations

import inspect
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from pydantic import ValidationError
from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

from channels.base import Malformed
from channels.twilio.settings import TwilioSettings
from channels.twilio.voice import twiml
from channels.twilio.voice.parse import call_request, gathered, recording
from channels.twilio.voice.settings import Menu, VoiceNumber

SID = "AC" + "0123456789abcdef" * 2
HOOKS = twiml.Hooks("https://crm.example.com/hooks/twilio/main")


def menu(**extra: Any) -> dict[str, Any]:
    return {
        "prompt": "Press 1 for orders, 2 for anything else.",
        "options": [
            {"digit": "1", "speech": ["orders", "order"], "label": "Orders", "queue_id": 4},
            {
                "digit": "2",
                "label": "Other",
                "menu": {
                    "prompt": "Press 1 for German.",
                    "language": "de-DE",
                    "options": [{"digit": "1", "choice": "german", "label": "Deutsch"}],
                },
            },
        ],
        **extra,
    }


def read(document: bytes) -> ET.Element:
    root = ET.fromstring(document)  # noqa: S314 - our own documents
    assert root.tag == "Response"
    return root


def as_the_library_builds(document: bytes | str) -> str:
    """`document` built again, verb by verb, with the `twilio` library's builders: each
    element must be one the builder of its parent makes (`<Dial>` holds `<Queue>`, `<Gather>`
    holds `<Say>`), each attribute a parameter that builder names. The library's XML for the
    same verbs, to compare with `document`."""
    text = document.decode() if isinstance(document, bytes) else document
    response = VoiceResponse()
    _build(read(text.encode()), response)
    return str(response)


def _build(element: ET.Element, built: TwiML) -> None:
    for child in element:
        make = getattr(built, _snake(child.tag), None)
        assert callable(make), f"the library's <{element.tag}> holds no <{child.tag}>"
        named = [
            name
            for name, parameter in inspect.signature(make).parameters.items()
            if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        ]
        attributes = {_snake(name): value for name, value in child.attrib.items()}
        unknown = sorted(set(attributes) - set(named))
        assert not unknown, f"<{child.tag}> has attributes the library does not know: {unknown}"
        _build(child, make(*([child.text] if child.text else []), **attributes))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_a_caller_picks_by_key_or_by_word_and_nested_menus_are_found_by_path() -> None:
    flow = VoiceNumber.model_validate({"number": "+1 500 555 0006", "menu": menu()})
    assert flow.number == "+15005550006"
    assert flow.menu is not None
    assert flow.menu.match("1", None) == 0
    assert flow.menu.match(None, "I have a question about my ORDER please") == 0
    assert flow.menu.match("7", None) is None
    assert flow.menu.match(None, None) is None
    nested = flow.menu.at("1")
    assert nested is not None
    assert nested.language == "de-DE"
    assert flow.menu.at("0") is None  # option 1 leads to a queue, not a menu
    assert flow.menu.at("9") is None
    assert flow.menu.options[0].fact == "orders"  # the label, as a routing fact
    assert nested.options[0].fact == "german"


@pytest.mark.parametrize(
    ("flow", "problem"),
    [
        ({"number": "12345"}, "country code"),
        ({"number": "+15005550006", "menu": menu(options=[])}, "at least 1"),
        (
            {
                "number": "+15005550006",
                "menu": {
                    "prompt": "p",
                    "options": [{"digit": "1"}, {"digit": "1", "speech": ["x"]}],
                },
            },
            "same digit",
        ),
        ({"number": "+15005550006", "menu": {"prompt": "p", "options": [{"label": "x"}]}}, "digit"),
        (
            {"number": "+15005550006", "wait_message": "You are in position 3"},
            "{position}",
        ),
        ({"number": "+15005550006", "hold_music_url": "ftp://x/y.mp3"}, "http"),
    ],
)
def test_a_flow_twilio_could_not_follow_is_refused_with_the_reason(
    flow: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        VoiceNumber.model_validate(flow)
    assert problem in str(caught.value)


def test_menus_nest_at_most_four_deep() -> None:
    leaf: dict[str, Any] = {"prompt": "p", "options": [{"digit": "1", "label": "x"}]}
    for _ in range(4):
        leaf = {"prompt": "p", "options": [{"digit": "1", "menu": leaf}]}
    with pytest.raises(ValidationError, match=r"at most 4 deep"):
        VoiceNumber.model_validate({"number": "+15005550006", "menu": leaf})


def test_a_twilio_account_may_take_calls_only_and_the_cli_gives_bare_numbers() -> None:
    settings = TwilioSettings.model_validate(
        {"account_sid": SID, "auth_token": "t" * 32, "voice_numbers": ["+15005550006"]}
    )
    found = settings.voice_number("+15005550006")
    assert found is not None
    assert found.voicemail
    assert found.queue_id is None
    with pytest.raises(ValidationError, match="listed twice"):
        TwilioSettings.model_validate(
            {
                "account_sid": SID,
                "auth_token": "t" * 32,
                "voice_numbers": ["+15005550006", "+1 500 555 0006"],
            }
        )


def test_the_menu_gathers_keys_and_speech_in_the_menus_language_and_comes_back_to_us() -> None:
    flow = VoiceNumber.model_validate(
        {"number": "+15005550006", "menu": menu(), "record_calls": True}
    )
    assert flow.menu is not None
    start = twiml.welcome(flow)
    root = read(twiml.menu(start, flow, flow.menu.options[1].menu or flow.menu, "1", HOOKS, 7))
    says = [element.text for element in root.iter("Say")]
    assert says[0] == flow.consent_message  # consent before anything else
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("input") == "dtmf speech"
    assert gather.get("language") == "de-DE"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("action") == f"{HOOKS.base}/voice-menu?call=7&menu=1"


def test_each_call_waits_in_its_own_twilio_queue_and_the_operator_dials_exactly_that_one() -> None:
    flow = VoiceNumber(number="+15005550006", record_calls=True)
    waiting = read(twiml.enqueue(twiml.welcome(flow), flow, HOOKS, 42))
    enqueue = waiting.find("Enqueue")
    assert enqueue is not None
    assert enqueue.text == "omnicrm-call-42"
    assert enqueue.get("waitUrl") == f"{HOOKS.base}/voice-wait?call=42"
    assert enqueue.get("action") == f"{HOOKS.base}/voice-left-queue?call=42"
    operator = read(twiml.operator_leg(flow, HOOKS, 42, 3, "Call from Kim."))
    dial = operator.find("Dial")
    assert dial is not None
    assert dial.get("record") == "record-from-answer-dual"
    assert dial.get("action") == f"{HOOKS.base}/voice-agent-end?call=42&leg=3"
    queue = dial.find("Queue")
    assert queue is not None
    assert queue.text == "omnicrm-call-42"
    position = read(twiml.waiting(flow, 3, False))
    assert [element.text for element in position.iter("Say")] == [
        "All our agents are busy. You are number 3 in the queue."
    ]


def test_the_voicemail_records_with_a_status_callback_and_no_voicemail_just_says_goodbye() -> None:
    flow = VoiceNumber(number="+15005550006")
    record = read(twiml.voicemail(flow, HOOKS, 5, before=flow.after_hours_message)).find("Record")
    assert record is not None
    assert (
        record.get("recordingStatusCallback")
        == f"{HOOKS.base}/voice-recording?call=5&kind=voicemail"
    )
    assert record.get("maxLength") == "120"
    silent = VoiceNumber(number="+15005550006", voicemail=False)
    root = read(twiml.voicemail(silent, HOOKS, 5, before="We are closed now."))
    assert root.find("Record") is None
    assert root.find("Hangup") is not None


def test_webhook_parameters_twilio_would_never_send_are_malformed() -> None:
    good = {
        "CallSid": "CA" + "1" * 32,
        "AccountSid": SID,
        "From": "+4915112345678",
        "To": "+15005550006",
        "CallStatus": "ringing",
    }
    url = "https://crm.example.com/hooks/twilio/main/voice-agent?call=3&leg=2"
    request = call_request(good, url, SID)
    assert (request.call_id, request.leg, request.from_number) == (3, 2, "+4915112345678")
    assert call_request({**good, "From": "anonymous"}, url, SID).from_number == "anonymous"
    for broken in (
        {**good, "CallSid": "nope"},
        {**good, "AccountSid": "AC" + "9" * 32},
        {**good, "CallStatus": "exploded"},
        {key: value for key, value in good.items() if key != "To"},
    ):
        with pytest.raises(Malformed):
            call_request(broken, url, SID)
    with pytest.raises(Malformed):
        call_request(good, url.replace("call=3", "call=x"), SID)
    assert gathered({"Digits": "hangup"}).digits is None
    with pytest.raises(Malformed):
        gathered({"Digits": "1; DROP"})
    with pytest.raises(Malformed):
        recording({"RecordingSid": "RE" + "1" * 32, "RecordingUrl": "file:///etc/passwd"})


def test_a_menu_without_options_for_a_path_is_none() -> None:
    top = Menu.model_validate(menu())
    assert top.at("") is top
    assert top.at("x") is None


def menus() -> tuple[Menu, Menu]:
    """The menu and the one nested in its second option."""
    top = Menu.model_validate(menu())
    nested = top.options[1].menu
    assert nested is not None
    return top, nested


TOP, NESTED = menus()
FLOW = VoiceNumber(
    number="+15005550006",
    menu=TOP,
    record_calls=True,
    hold_music_url="https://cdn.example.com/hold-music.mp3",
)


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(
            lambda: twiml.menu(twiml.welcome(FLOW), FLOW, TOP, "", HOOKS, 7), id="welcome"
        ),
        pytest.param(
            lambda: twiml.menu(VoiceResponse(), FLOW, NESTED, "1", HOOKS, 7, "Sorry."),
            id="nested-menu",
        ),
        pytest.param(
            lambda: twiml.enqueue(VoiceResponse(), FLOW, HOOKS, 7, say="One moment."),
            id="enqueue",
        ),
        pytest.param(lambda: twiml.waiting(FLOW, 3, False), id="waiting-with-music"),
        pytest.param(
            lambda: twiml.waiting(VoiceNumber(number="+15005550006"), 3, False),
            id="waiting-in-silence",
        ),
        pytest.param(lambda: twiml.waiting(FLOW, None, True), id="connecting"),
        pytest.param(twiml.leave_queue, id="leave"),
        pytest.param(
            lambda: twiml.voicemail(FLOW, HOOKS, 7, before=FLOW.after_hours_message),
            id="voicemail",
        ),
        pytest.param(
            lambda: twiml.operator_leg(FLOW, HOOKS, 7, 2, "Call from Kim, orders."),
            id="dial-operator",
        ),
        pytest.param(lambda: twiml.operator_on_hold(FLOW, HOOKS, 7, 2), id="operator-on-hold"),
        pytest.param(lambda: twiml.on_hold(FLOW, HOOKS, 7), id="caller-on-hold"),
        pytest.param(
            lambda: twiml.callback_leg(FLOW, HOOKS, 7, "+4915112345678", "Calling Kim."),
            id="callback",
        ),
        pytest.param(lambda: twiml.callee(FLOW), id="callee"),
        pytest.param(lambda: twiml.hang_up("Goodbye.", "de-DE"), id="hang-up"),
        pytest.param(twiml.empty, id="empty"),
    ],
)
def test_every_step_of_a_call_is_twiml_the_twilio_library_builds(step: Any) -> None:
    document = step()
    assert document.decode() == as_the_library_builds(document)


def test_the_library_check_refuses_what_its_builders_would_not_make() -> None:
    # Made with the library's generic add_child, which builds any element and attribute.
    queue_in_enqueue = VoiceResponse()
    queue_in_enqueue.enqueue("x").add_child("Queue", "x")
    with pytest.raises(AssertionError, match="holds no <Queue>"):
        as_the_library_builds(str(queue_in_enqueue))
    misspelled = VoiceResponse()
    misspelled.add_child("Enqueue", "x", wait_uri="/w")
    with pytest.raises(AssertionError, match=r"does not know: \['wait_uri'\]"):
        as_the_library_builds(str(misspelled))
    no_verb = VoiceResponse()
    no_verb.add_child("Speak", "Hello")
    with pytest.raises(AssertionError, match="holds no <Speak>"):
        as_the_library_builds(str(no_verb))
