"""The ``Accept-Payment`` request header: which method/intent pairs the client can pay (§11).

``Accept-Payment: tempo/charge, tempo/session;q=0.5, stripe/*;q=0.2, */session;q=0``
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mpp_client.errors import FormatError, ParseError
from mpp_client.protocol.auth_params import is_token

__all__ = ["AcceptPaymentEntry", "format_accept_payment", "parse_accept_payment"]

_METHOD = re.compile(r"[a-z][a-z0-9:_-]*").fullmatch
_QVALUE = re.compile(r"0(?:\.([0-9]{0,3}))?|1(?:\.0{0,3})?").fullmatch


@dataclass(frozen=True, slots=True)
class AcceptPaymentEntry:
    """One ``method/intent`` pair the client accepts; either side may be ``"*"``.

    ``weight`` is the q-value in thousandths (1000 = ``q=1``, the default; 0 = not acceptable).
    """

    method: str
    intent: str
    weight: int = 1000


def _qvalue(weight: int) -> str:
    if weight == 0:
        return "0"
    return "0." + f"{weight:03d}".rstrip("0")


def format_accept_payment(entries: Iterable[AcceptPaymentEntry]) -> str:
    """Write entries as an ``Accept-Payment`` value (``q`` omitted for weight 1000).

    Raises :class:`~mpp_client.errors.FormatError` for a method outside
    ``^[a-z][a-z0-9:_-]*$``, an intent that is not a token, or a weight outside 0..1000.
    """
    items: list[str] = []
    for entry in entries:
        if entry.method != "*" and _METHOD(entry.method) is None:
            raise FormatError("Accept-Payment method must match ^[a-z][a-z0-9:_-]*$ or be *")
        if entry.intent != "*" and not is_token(entry.intent):
            raise FormatError("Accept-Payment intent must be a token or *")
        weight = entry.weight
        if type(weight) is not int or not 0 <= weight <= 1000:
            raise FormatError("Accept-Payment weight must be an integer from 0 to 1000")
        item = f"{entry.method}/{entry.intent}"
        if weight != 1000:
            item += ";q=" + _qvalue(weight)
        items.append(item)
    return ", ".join(items)


def _weight(text: str) -> int:
    match = _QVALUE(text)
    if match is None:
        raise ParseError("Accept-Payment q-value must be 0..1 with at most three decimals")
    if text[0] == "1":
        return 1000
    return int((match.group(1) or "").ljust(3, "0"))


def parse_accept_payment(value: str) -> list[AcceptPaymentEntry]:
    """Parse an ``Accept-Payment`` value into entries, in the order written.

    Empty list elements and parameters other than ``q`` are ignored. Raises
    :class:`~mpp_client.errors.ParseError` for an element that is not ``method/intent`` or a
    malformed q-value.
    """
    entries: list[AcceptPaymentEntry] = []
    for element in value.split(","):
        pair, *params = element.split(";")
        pair = pair.strip(" \t")
        if not pair and not params:
            continue
        method, slash, intent = pair.partition("/")
        if not slash:
            raise ParseError("Accept-Payment element is not method/intent")
        if method != "*" and _METHOD(method) is None:
            raise ParseError("Accept-Payment method must match ^[a-z][a-z0-9:_-]*$ or be *")
        if intent != "*" and not is_token(intent):
            raise ParseError("Accept-Payment intent must be a token or *")
        weight = 1000
        for param in params:
            name, equals, text = param.partition("=")
            if name.strip(" \t").lower() == "q":
                if not equals:
                    raise ParseError("Accept-Payment q parameter has no value")
                weight = _weight(text.strip(" \t"))
        entries.append(AcceptPaymentEntry(method, intent, weight))
    return entries
