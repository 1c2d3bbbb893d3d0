"""Every PII detector: values it must find, and look-alikes it must leave alone."""

from __future__ import annotations

import pytest

from router.guard.checksums import card_ok, es_dni_ok, iban_ok, luhn_ok, us_ssn_ok, verhoeff_ok
from router.guard.pii import find_pii
from router.policy.sections.guard import ALL_KINDS, PiiKind

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def kinds(text: str, only: tuple[PiiKind, ...] = ALL_KINDS) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in find_pii(text, only)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("mail john.doe+x@example.co.uk now", "email", "john.doe+x@example.co.uk"),
        ("<a.b@sub.example.org>", "email", "a.b@sub.example.org"),
        ("call +44 20 7946 0958 today", "phone", "+44 20 7946 0958"),
        ("call +1-415-555-2671", "phone", "+1-415-555-2671"),
        ("ring (415) 555-2671", "phone", "(415) 555-2671"),
        ("ring 415.555.2671", "phone", "415.555.2671"),
        ("Handy 030/12345678", "phone", "030/12345678"),
        ("tél 06 12 34 56 78", "phone", "06 12 34 56 78"),
        ("card 4111 1111 1111 1111 ok", "credit_card", "4111 1111 1111 1111"),
        ("amex 378282246310005", "credit_card", "378282246310005"),
        ("mc 5555-5555-5555-4444", "credit_card", "5555-5555-5555-4444"),
        ("iban DE89 3704 0044 0532 0130 00 thanks", "iban", "DE89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
        ("ssn 123-45-6788", "national_id", "123-45-6788"),
        ("SSN: 219451234", "national_id", "219451234"),
        ("NINO AB 12 34 56 C", "national_id", "AB 12 34 56 C"),
        ("dni 12345678Z", "national_id", "12345678Z"),
        ("nie X1234567L", "national_id", "X1234567L"),
        ("SIN 130-692-544", "national_id", "130-692-544"),
        ("aadhaar 2341 2341 2346", "national_id", "2341 2341 2346"),
        ("key sk-proj-abcdefghijklmnopqrstuvwx12", "secret", "sk-proj-abcdefghijklmnopqrstuvwx12"),
        ("AKIAIOSFODNN7EXAMPLE", "secret", "AKIAIOSFODNN7EXAMPLE"),
        (
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "secret",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        ("xoxb-1234567890-abcdefghij", "secret", "xoxb-1234567890-abcdefghij"),
        ("api_key = 'A8f3kLm2Qz9xV7pR4tY6'", "secret", "A8f3kLm2Qz9xV7pR4tY6"),
        ("password: hunter22", "secret", "hunter22"),
        (f"jwt {JWT}", "secret", JWT),
        ("host 10.0.0.12 down", "ip_address", "10.0.0.12"),
        ("peer 2001:db8::8a2e:370:7334", "ip_address", "2001:db8::8a2e:370:7334"),
    ],
)
def test_finds(text: str, kind: str, value: str) -> None:
    assert (kind, value) in kinds(text)


def test_private_key_block_whole_and_unterminated() -> None:
    block = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc+/=\n-----END RSA PRIVATE KEY-----"
    )
    assert kinds(f"here:\n{block}\nthanks") == [("secret", block)]
    cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA"
    assert kinds(cut) == [("secret", cut)]


@pytest.mark.parametrize(
    "text",
    [
        "npm i lodash@4.17.21",  # package versions are not emails
        "ssh user@localhost",
        "@handle on social media",
        "meeting on 2024-01-15 at 12:30:45",
        "release v1.2.3.4 and version 10.2.0.1",
        "std::vector<int> and a::b::c",
        "order 1234567890 shipped",
        "card 4111-1111-1111-1112",  # Luhn fails
        "0000 0000 0000 0000",  # Luhn passes but no network
        "ticket 1234 5678 9012 3456",
        "DE89 3704 0044 0532 0130 01",  # mod-97 fails
        "XX12 3456 7890 1234 56",  # unknown country
        "ssn 000-12-3456, 666-12-3456, 900-12-3456, 123-00-4567, 123-45-0000",
        "QQ 12 34 56 C and GB 12 34 56 A",  # invalid NINO prefixes
        "12345678A",  # wrong DNI letter
        "loopback 127.0.0.1 and 0.0.0.0 and mask 255.255.255.0 and ::1",
        "MAC 00:1A:2B:3C:4D:5E",
        "pi is 3.14159265, e is 2.718281828",
        "sk-short and AKIA123",
        "token=abc and password: null and api_key=${API_KEY}",
        "token = aaaaaaaaaaaaaaaaaaaaaaaa",  # low entropy
        "eyJub3QiOiJqd3QifQ.eyJ4IjoxfQ",  # two segments only
        "The total is $45.67, qty 3, RFC 2616 section 14.9, ISO 8601",
    ],
)
def test_leaves_look_alikes_alone(text: str) -> None:
    assert kinds(text) == []


def test_overlap_goes_to_the_higher_priority_kind() -> None:
    # A card number is also a run of digit groups a phone pattern could see.
    assert kinds("4111 1111 1111 1111") == [("credit_card", "4111 1111 1111 1111")]
    # An email inside a generic assignment: the secret wins the overlapping span.
    found = find_pii("secret=Zx9kQ2mLp7Vt4Rw8Yb3N and bob@example.com")
    assert [f.kind for f in found] == ["secret", "email"]


def test_only_requested_kinds_run() -> None:
    text = "bob@example.com 10.0.0.12"
    assert kinds(text, ("ip_address",)) == [("ip_address", "10.0.0.12")]
    assert kinds("", ALL_KINDS) == []


def test_findings_are_ordered_and_labelled() -> None:
    found = find_pii("a@example.com then 123-45-6788")
    assert [f.start for f in found] == sorted(f.start for f in found)
    assert found[1].label == "US SSN"


def test_checksums() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710") and not luhn_ok("7a")
    assert card_ok("4111111111111111") and not card_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82WEST1234569876543")  # wrong length for GB
    assert us_ssn_ok("123", "45", "6788") and not us_ssn_ok("078", "05", "1120")
    assert verhoeff_ok("234123412346") and not verhoeff_ok("234123412345")
    assert es_dni_ok("12345678Z") and es_dni_ok("X1234567L") and not es_dni_ok("12345678A")


@pytest.mark.parametrize(
    "text",
    [
        ("+1" + "1" * 40 + "a ") * 200,  # many ways to split a digit run into phone groups
        "12-" * 3000,
        "1234-" * 2000,
        "a_b-" * 3000,
        "x_token=" * 2000,
        "a." * 5000 + "@",
        "1:" * 5000,
    ],
)
def test_adversarial_inputs_take_linear_time(text: str) -> None:
    import time

    started = time.perf_counter()
    find_pii(text)
    assert time.perf_counter() - started < 1.0  # catastrophic backtracking takes seconds
