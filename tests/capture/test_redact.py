"""PII redaction: each detector, the three policies, and clean text left alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedbackloop.capture.redact import PIIFound, Redactor, iban_valid, luhn_valid


def test_luhn_matches_published_examples() -> None:
    # Wikipedia "Luhn algorithm": 79927398713 is the worked example of a valid number.
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    # Card networks' documented test numbers.
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5555555555554444")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


def test_iban_matches_published_examples() -> None:
    # Wikipedia "International Bank Account Number": GB82 WEST 1234 5698 7654 32 is the
    # worked example (valid); changing one letter breaks the mod-97 check.
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("GB82 TEST 1234 5698 7654 32")
    assert not iban_valid("GB82")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+x@mail.example.co.uk now", "write to <EMAIL> now"),
        ("card 4111 1111 1111 1111, thanks", "card <CREDIT_CARD>, thanks"),
        ("card 4111-1111-1111-1111", "card <CREDIT_CARD>"),
        ("server 10.0.0.254 is down", "server <IP_ADDRESS> is down"),
        ("v6 2001:db8::8a2e:370:7334 ok", "v6 <IP_ADDRESS> ok"),
        ("iban GB82 WEST 1234 5698 7654 32.", "iban <IBAN>."),
        ("call +44 20 7946 0958 today", "call <PHONE> today"),
        ("call (555) 123-4567", "call <PHONE>"),
        ("call 555-123-4567", "call <PHONE>"),
        ("ruf 030 1234 5678 an", "ruf <PHONE> an"),
    ],
)
def test_each_detector_replaces_with_a_typed_placeholder(text: str, expected: str) -> None:
    assert Redactor("redact").redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The order of 2026-11-23 shipped 1,000 units at 12.50 each",
        "version 1.2.3 and build 20261123",
        "card 4111 1111 1111 1112 fails Luhn",
        "order #123456 is on its way",
        "ratio 3:2 and time 12:30",
        "no digits and no at-sign here",
    ],
)
def test_text_without_pii_is_left_alone(text: str) -> None:
    assert Redactor("redact").redact(text) == text


def test_hash_policy_is_keyed_and_stable() -> None:
    a = Redactor("hash", b"key-1")
    b = Redactor("hash", b"key-2")
    first = a.redact("mail bob@example.com")
    assert first.startswith("mail <EMAIL:") and first.endswith(">")
    assert a.redact("bob@example.com again") == first[5:] + " again"
    assert b.redact("mail bob@example.com") != first  # another key, another hash
    assert "bob" not in first


def test_drop_policy_raises_with_the_kind() -> None:
    with pytest.raises(PIIFound) as info:
        Redactor("drop").redact("my card is 4111111111111111")
    assert info.value.kind == "CREDIT_CARD"
    assert Redactor("drop").redact("nothing to see") == "nothing to see"


def test_redact_json_walks_nested_values() -> None:
    value = {"docs": [{"text": "ask ann@example.org"}, 3, None], "n": 1.5}
    assert Redactor().redact_json(value) == {"docs": [{"text": "ask <EMAIL>"}, 3, None],
                                            "n": 1.5}


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown redaction policy"):
        Redactor("shred")


@given(st.text(st.characters(blacklist_categories=("Nd",), blacklist_characters="@")))
def test_text_without_digits_or_at_sign_is_never_changed(text: str) -> None:
    assert Redactor().redact(text) == text


@given(st.emails())
def test_every_generated_email_is_found(email: str) -> None:
    out = Redactor().redact(f"contact {email} please")
    assert email not in out
    assert "<EMAIL>" in out
