"""Address normalization: what makes two spellings one customer."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.identity import normalize_email, normalize_phone


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  Anna@Example.COM ", "anna@example.com"),
        ('"Big Bug BB"@bug.com', '"big bug bb"@bug.com'),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
    ],
)
def test_emails_are_lower_cased_and_trimmed(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw", ["", "no-at-sign", "@example.com", "a@localhost", "a b@example.com", "a@exa mple.com"]
)
def test_malformed_emails_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_email(raw)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+49 30 1234567", None, "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("(415) 555-0100", "US", "+14155550100"),
    ],
)
def test_phones_become_e164(raw: str, region: str | None, e164: str) -> None:
    assert normalize_phone(raw, region) == e164


def test_a_number_without_country_code_needs_a_region() -> None:
    with pytest.raises(InvalidInput):
        normalize_phone("030 1234567", None)
