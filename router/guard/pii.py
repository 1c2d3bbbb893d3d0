"""PII and secret detectors: regular expressions narrowed by checksums and context.

Each detector favours precision: a number is a card only with a known network prefix and a
valid Luhn digit, an IBAN only with its country's length and mod-97, an SSN only in an issuable
range. :func:`find_pii` runs the enabled detectors and resolves overlaps by priority (a secret
beats a card beats a phone number), so every character belongs to at most one finding.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from router.guard.checksums import (
    card_ok,
    es_dni_ok,
    iban_ok,
    luhn_ok,
    shannon_bits,
    us_ssn_ok,
    verhoeff_ok,
)
from router.policy.sections.guard import ALL_KINDS, PiiKind

SECRET_KINDS: frozenset[PiiKind] = frozenset({"secret"})

KIND_NAMES: Mapping[PiiKind, str] = MappingProxyType(
    {
        "secret": "a secret or API key",
        "credit_card": "a credit card number",
        "iban": "an IBAN",
        "national_id": "a national ID number",
        "email": "an email address",
        "phone": "a phone number",
        "ip_address": "an IP address",
    }
)
"""How a block message names a kind (never the value)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: its kind, where it is, and a label such as ``US SSN``."""

    kind: PiiKind
    start: int
    end: int
    value: str
    label: str


Detector = Callable[[str], Iterator[Finding]]

# ---- email --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])"
)


def _emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        local = m.group(1)
        if ".." in local or local.endswith("."):
            continue
        yield Finding("email", m.start(), m.end(), m.group(), "email address")


# ---- phone numbers ------------------------------------------------------------------------

_PHONE_INTL = re.compile(  # atomic groups: no backtracking over ways to split a digit run
    r"(?<![\w+])\+[1-9]\d{0,2}(?>(?:[ .-]?\(?\d{1,5}\)?){1,6})(?![\w-]|\.\d)"
)
_PHONE_US = re.compile(
    r"(?<![\w+.-])(?<!\d[ -])(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[-. ])[2-9]\d{2}[-. ]\d{4}"
    r"(?![\w-]|\.\d)"
)
_PHONE_EU = re.compile(  # trunk prefix 0: 020 7946 0958, 030/12345678, 06 12 34 56 78
    r"(?<![\w+.-/])(?<!\d[ -])0[1-9]\d{0,4}(?:[ /-]\d{2,8}){1,4}(?![\w-]|\.\d|/)"
)
_DIGIT = re.compile(r"\d")


def _phones(text: str) -> Iterator[Finding]:
    for rx, label, lo, hi in (
        (_PHONE_INTL, "international phone number", 8, 15),
        (_PHONE_US, "North American phone number", 10, 10),
        (_PHONE_EU, "national phone number", 9, 12),
    ):
        for m in rx.finditer(text):
            value = m.group()
            n = len(_DIGIT.findall(value))
            if not lo <= n <= hi:
                continue
            if rx is _PHONE_EU and _looks_like_date(value):
                continue
            yield Finding("phone", m.start(), m.end(), value, label)


_DATE_LIKE = re.compile(r"^\d{1,4}([-/ ])\d{1,2}\1\d{1,4}$")


def _looks_like_date(value: str) -> bool:
    return _DATE_LIKE.match(value) is not None


# ---- payment cards ------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w.-])\d{4}(?>([ -]?)\d{2,6}(?:\1\d{1,7}){0,4})(?![\w-]|\.\d)")


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if card_ok(digits):
            yield Finding("credit_card", m.start(), m.end(), m.group(), "payment card number")


# ---- IBAN ---------------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?!\w)")


def _ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        value = m.group()
        compact = value.replace(" ", "")
        # a trailing group may belong to the next word: try the longest valid prefix
        while len(compact) >= 15 and not iban_ok(compact):
            if " " not in value:
                break
            value = value[: value.rfind(" ")]
            compact = value.replace(" ", "")
        if iban_ok(compact):
            yield Finding("iban", m.start(), m.start() + len(value), value, "IBAN")


# ---- national IDs -------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_BARE = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*(?:#|no\.?|number)?\s*[:=]?\s*"
    r"(\d{3})(\d{2})(\d{4})\b"
)
_NINO = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])"
    r"(?![A-Za-z0-9])"
)
_NINO_BAD_PREFIX = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_DNI = re.compile(r"(?<![A-Za-z0-9-])([XYZ]\d{7}|\d{8})-?([A-Z])(?![A-Za-z0-9])")
_SIN = re.compile(r"(?<![\w-])([1-79]\d{2})([- ])(\d{3})\2(\d{3})(?![\w-])")
_AADHAAR = re.compile(r"(?<![\w-])([2-9]\d{3}) (\d{4}) (\d{4})(?![\w-])")


def _national_ids(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if us_ssn_ok(m.group(1), m.group(3), m.group(4)):
            yield Finding("national_id", m.start(), m.end(), m.group(), "US SSN")
    for m in _SSN_BARE.finditer(text):
        if us_ssn_ok(m.group(1), m.group(2), m.group(3)):
            yield Finding(
                "national_id", m.start(1), m.end(3), m.group(0)[m.start(1) - m.start() :], "US SSN"
            )
    for m in _NINO.finditer(text):
        if m.group(1) not in _NINO_BAD_PREFIX:
            yield Finding(
                "national_id", m.start(), m.end(), m.group(), "UK National Insurance number"
            )
    for m in _DNI.finditer(text):
        if es_dni_ok(m.group(1) + m.group(2)):
            yield Finding("national_id", m.start(), m.end(), m.group(), "Spanish DNI/NIE")
    for m in _SIN.finditer(text):
        if luhn_ok(m.group(1) + m.group(3) + m.group(4)):
            yield Finding("national_id", m.start(), m.end(), m.group(), "Canadian SIN")
    for m in _AADHAAR.finditer(text):
        if verhoeff_ok(m.group(1) + m.group(2) + m.group(3)):
            yield Finding("national_id", m.start(), m.end(), m.group(), "Aadhaar number")


# ---- secrets ------------------------------------------------------------------------------

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,-]*)"
        ),
        "private key",
    ),
    (re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}"), "Anthropic API key"),
    (
        re.compile(r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}(?![\w-])"),
        "OpenAI API key",
    ),
    (
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        "AWS access key ID",
    ),
    (re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])"), "GitHub token"),
    (re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}"), "GitHub token"),
    (re.compile(r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}"), "Slack token"),
    (
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
        "Slack webhook URL",
    ),
    (re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"), "Google API key"),
    (re.compile(r"(?<![A-Za-z0-9_])[rs]k_live_[0-9A-Za-z]{24,}"), "Stripe secret key"),
)
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{8,})\.(eyJ[A-Za-z0-9_-]{8,})\.([A-Za-z0-9_-]{8,})"
    r"(?![A-Za-z0-9_-])"
)
_ASSIGNMENT = re.compile(
    # an identifier (bounded: linear time) assigned a value; its name is checked in Python
    r"(?<![A-Za-z0-9_-])([A-Za-z][A-Za-z0-9_-]{0,39})[\"']?\s*[:=]\s*[\"']?"
    r"([A-Za-z0-9_\-+/=.~!@#$%^&*]{6,})"
)
_SECRET_NAMES = (
    "apikey",
    "api_key",
    "secret",
    "secret_key",
    "token",
    "access_key",
    "private_key",
    "credential",
    "credentials",
)
_PASSWORD_NAMES = frozenset({"password", "passwd", "pwd"})
_NOT_A_SECRET = frozenset({"null", "none", "true", "false", "undefined", "changeme", "redacted"})


def _jwt_ok(header: str) -> bool:
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except (binascii.Error, ValueError):
        return False
    return decoded.startswith(b"{") and (b'"alg"' in decoded or b'"typ"' in decoded)


def _char_classes(value: str) -> int:
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )


_SECRET_HINT = re.compile(
    r"PRIVATE KEY|sk-|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|xox|hooks\.slack|AIza|k_live_"
)
"""One search for every prefix a pattern of :data:`_SECRET_PATTERNS` needs (a cheap prefilter)."""


def _secrets(text: str) -> Iterator[Finding]:
    if _SECRET_HINT.search(text):
        for rx, label in _SECRET_PATTERNS:
            for m in rx.finditer(text):
                value = m.group().rstrip()
                yield Finding("secret", m.start(), m.start() + len(value), value, label)
    if "eyJ" in text:
        for m in _JWT.finditer(text):
            if _jwt_ok(m.group(1)):
                yield Finding("secret", m.start(), m.end(), m.group(), "JSON Web Token")
    if "=" not in text and ":" not in text:
        return
    for m in _ASSIGNMENT.finditer(text):
        name, value = m.group(1).lower().replace("-", "_"), m.group(2)
        if value.lower() in _NOT_A_SECRET or value.startswith("$"):
            continue
        if name.endswith(tuple(_PASSWORD_NAMES)):
            ok = len(value) >= 6
        elif name.endswith(_SECRET_NAMES):
            ok = len(value) >= 16 and shannon_bits(value) >= 3.5 and _char_classes(value) >= 2
        else:
            continue
        if ok:
            yield Finding("secret", m.start(2), m.end(2), value, f"{name} value")


# ---- IP addresses -------------------------------------------------------------------------

_IPV4 = re.compile(
    r"(?<![\w.])(?<![vV]\s)((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})"
    r"(?![\w]|\.\d)"
)
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def _ips(text: str) -> Iterator[Finding]:
    if "." in text:
        for m in _IPV4.finditer(text):
            v4 = ipaddress.IPv4Address(m.group(1))
            if v4.is_loopback or v4.is_unspecified or m.group(1).startswith("255."):
                continue
            if _preceded_by_version(text, m.start()):
                continue
            yield Finding("ip_address", m.start(), m.end(), m.group(), "IPv4 address")
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            value = m.group()
            if sum(c in "0123456789abcdefABCDEF" for c in value) < 2:
                continue
            try:
                v6 = ipaddress.IPv6Address(value)
            except ValueError:
                continue
            if v6.is_loopback or v6.is_unspecified:
                continue
            yield Finding("ip_address", m.start(), m.end(), value, "IPv6 address")


_VERSION_BEFORE = re.compile(r"(?i)(?:\bversion|\bver\.?|\bv)\s*$")


def _preceded_by_version(text: str, start: int) -> bool:
    return _VERSION_BEFORE.search(text[max(0, start - 10) : start]) is not None


DETECTORS: Mapping[PiiKind, Detector] = MappingProxyType(
    {
        "secret": _secrets,
        "credit_card": _cards,
        "iban": _ibans,
        "national_id": _national_ids,
        "email": _emails,
        "phone": _phones,
        "ip_address": _ips,
    }
)
"""The detector of each kind (read-only; :func:`find_pii` is the entry point)."""


_NEED_DIGITS: frozenset[PiiKind] = frozenset({"credit_card", "iban", "national_id", "phone"})


def find_pii(text: str, kinds: Iterable[PiiKind] = ALL_KINDS) -> list[Finding]:
    """Every finding of ``kinds`` in ``text``, non-overlapping, ordered by position.

    Overlaps go to the kind earlier in :data:`ALL_KINDS`, then to the longer match.
    """
    if not text:
        return []
    wanted = set(kinds)
    if _DIGIT.search(text) is None:  # prose without digits: skip the number detectors
        wanted -= _NEED_DIGITS
    found: list[Finding] = []
    for kind in ALL_KINDS:
        if kind in wanted:
            found.extend(DETECTORS[kind](text))
    if not found:
        return []
    rank = {k: i for i, k in enumerate(ALL_KINDS)}
    found.sort(key=lambda f: (rank[f.kind], -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in found:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept
