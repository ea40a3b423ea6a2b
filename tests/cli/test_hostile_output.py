"""A hostile server cannot drive the terminal through ``mpp fetch``.

Every string a server chooses and the CLI prints (challenge fields from the request JSON,
problem title and detail, error reasons, receipt fields, response header values, raw
``WWW-Authenticate`` values) is run through the real CLI, as a subprocess, in ``-v`` (with
``-i``), ``--dry-run`` and error paths, and everything written to stdout and stderr is searched
for control characters (C0 other than LF/TAB, CR outside CRLF, DEL, C1), bidi controls and
invisible format characters.

Cases: 8 hostile strings, each sent in the challenge's ``recipient``, the problem detail and
title, the receipt's reference and a response header, and run three ways (``fetch -v -i`` that
pays, ``fetch --dry-run``, ``fetch`` that is rejected): 24 runs; plus 5 raw
``WWW-Authenticate`` values, each run with ``-v`` and ``--dry-run``: 10 runs. 34 hostile
cases, 0 control characters reached the terminal (``test_the_case_count_in_the_docstring``
keeps these numbers honest).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import pytest

from mpp_client.cli.output import printable
from mpp_client.protocol import b64url_encode, parse_receipt
from mpp_client.testing import FakeMppServer, Offer, Route

from .conftest import Mpp

PROBLEM_BASE = "https://paymentauth.org/problems/"

HOSTILE = {
    "clear screen, red": "\x1b[2J\x1b[31mAPPROVED: pay now",
    "window title (OSC)": "\x1b]0;mpp: all good\x07merchant",
    "8-bit CSI (C1)": "\x9b2J\x9b31mC1 merchant",
    "DCS and NEL (C1)": "\x90+q\x9c\x85merchant",
    "right-to-left override": "evil\u202emoc.elgoog",
    "bidi isolate": "pay\u2066 \u2069@merchant",
    "line injection": "merchant\r\nmpp: paid 0.00 tUSD (refunded)\n",
    "bell, backspace, DEL and invisible": "mer\x07\x08\x7fchant\u200b\ufeff\u2028",
}

# What must never reach a terminal: C0 but LF and TAB, DEL, C1, the bidi controls, the
# invisible format characters and line/paragraph separators the CLI escapes, and U+FFFD (a
# raw byte that was not UTF-8, as an unescaped Latin-1 C1 would be). CR is checked after the
# CRLFs of ``-i`` are taken out.
_LEAKED = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufffd]"
)


def _leaks(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in _LEAKED.findall(text.replace("\r\n", "\n"))]


def _wire_header(text: str) -> str:
    # What a header value can carry on HTTP/1.1 (h11 refuses C0 and DEL): printable ASCII and
    # Latin-1 obs-text, which includes the C1 controls.
    return "".join(c for c in text if " " <= c <= "~" or "\x80" <= c <= "\xff") or "-"


class HostileServer(FakeMppServer):
    """A FakeMppServer whose problem documents, receipts and headers carry hostile text."""

    def __init__(self, routes: dict[str, Route], hostile: dict[str, str]) -> None:
        super().__init__(routes)
        self.hostile = hostile

    def handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        status, out, content = super().handle(method, target, headers, body)
        text = self.hostile.get(urlsplit(target).path)
        if text is None:
            return status, out, content
        paid = any(name.lower() == "authorization" for name, _ in headers)
        if status == 402 and paid:
            # json.dumps escapes the controls, so the body itself stays clean on the wire;
            # the parsed problem holds them.
            problem = {
                "type": PROBLEM_BASE + "verification-failed",
                "title": text,
                "status": 402,
                "detail": text,
            }
            content = json.dumps(problem).encode()
        receipts = [value for name, value in out if name == "payment-receipt"]
        if receipts:
            receipt = dataclasses.replace(parse_receipt(receipts[0]), reference=text)
            out = [(n, v) for n, v in out if n != "payment-receipt"]
            out.append(("payment-receipt", receipt.encode()))
        out.append(("x-merchant-note", _wire_header(text)))
        return status, out, content


def _request(recipient: str = "merchant") -> str:
    data = {"amount": "1000", "currency": "usd-test", "recipient": recipient}
    return b64url_encode(json.dumps(data).encode())


_CHALLENGE = 'Payment id="raw-{n}", method="test", intent="charge", request="{request}", {extra}'
RAW_CHALLENGES = {
    # The realm, as mppx escapes: refused by the parser; -v shows the header as sent.
    "escaped ESC in realm": 'realm="\\u001b[2J\\u001b[31mAPPROVED: pay now"',
    # Latin-1 C1 bytes in a quoted string: refused by the parser; the header line is escaped.
    "raw C1 in realm": 'realm="\x9b2J\x9b31mfake.test"',
    "escaped RLO in description": 'realm="fake.test", description="\\u202etset.ekaf"',
    # Accepted by the parser (invisible, not controls): the CLI shows them as escapes.
    "invisible characters in realm": 'realm="fake\\u200b.test\\ufeff\\u2028"',
    # A raw ESC byte in a field value: the HTTP layer refuses the answer (the error path).
    "raw ESC in a header": 'realm="\x1b[2Jfake.test"',
}


@pytest.fixture
def hostile_url() -> Iterator[str]:
    routes: dict[str, Route] = {}
    hostile: dict[str, str] = {}
    for n, text in enumerate(HOSTILE.values()):
        routes[f"/paid/{n}"] = Route(offers=(Offer(recipient=text),))
        routes[f"/reject/{n}"] = Route(offers=(Offer(recipient=text),), reject=True)
        hostile[f"/paid/{n}"] = hostile[f"/reject/{n}"] = text
    for n, extra in enumerate(RAW_CHALLENGES.values()):
        raw = _CHALLENGE.format(n=n, request=_request(), extra=extra)
        routes[f"/raw/{n}"] = Route(raw_challenges=[raw])
    with HostileServer(routes, hostile).serve() as url:
        yield url


def _assert_clean(result: object, what: str) -> None:
    for stream in ("stdout", "stderr"):
        leaked = _leaks(getattr(result, stream))
        assert leaked == [], f"{what}: {stream} got {leaked}: {getattr(result, stream)!r}"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_paid_fetch_with_v_and_i_shows_hostile_strings_escaped(
    mpp: Mpp, hostile_url: str, name: str
) -> None:
    n = list(HOSTILE).index(name)
    result = mpp("fetch", "-v", "-i", f"{hostile_url}/paid/{n}")

    assert result.returncode == 0, result.stderr
    _assert_clean(result, name)
    # Shown, not dropped: the recipient in the challenge line and the receipt's reference.
    shown = printable(HOSTILE[name])
    assert f"recipient={shown}" in result.stderr
    assert f"reference={shown}" in result.stderr
    assert "x-merchant-note: " in result.stdout


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_dry_run_shows_a_hostile_payee_escaped(mpp: Mpp, hostile_url: str, name: str) -> None:
    n = list(HOSTILE).index(name)
    result = mpp("fetch", "--dry-run", f"{hostile_url}/paid/{n}")

    assert result.returncode == 0, result.stderr
    _assert_clean(result, name)
    assert f"payee    {printable(HOSTILE[name])}" in result.stdout


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_rejected_payment_shows_a_hostile_problem_detail_escaped(
    mpp: Mpp, hostile_url: str, name: str
) -> None:
    n = list(HOSTILE).index(name)
    result = mpp("fetch", f"{hostile_url}/reject/{n}")

    assert result.returncode == 5, result.stderr
    _assert_clean(result, name)
    assert printable(HOSTILE[name]) in result.stderr


@pytest.mark.parametrize("name", list(RAW_CHALLENGES))
@pytest.mark.parametrize("mode", ["-v", "--dry-run"])
def test_raw_hostile_challenges_never_reach_the_terminal(
    mpp: Mpp, hostile_url: str, name: str, mode: str
) -> None:
    n = list(RAW_CHALLENGES).index(name)
    result = mpp("fetch", mode, f"{hostile_url}/raw/{n}")

    _assert_clean(result, f"{name} {mode}")
    if name == "invisible characters in realm" and mode == "--dry-run":
        # The one the parser accepts: quoted, with the realm visible but escaped.
        assert result.returncode == 0, result.stderr
        assert "realm    fake\\u200b.test\\ufeff\\u2028" in result.stdout
    else:
        # Refused (parser or HTTP layer), or paid for and rejected: the ids are not the server's.
        assert result.returncode != 0


def test_json_output_escapes_hostile_strings(mpp: Mpp, hostile_url: str) -> None:
    result = mpp("--json", "fetch", "--dry-run", f"{hostile_url}/paid/0")

    _assert_clean(result, "--json")
    assert (
        json.loads(result.stdout)["quote"]["payees"][0]["address"] == HOSTILE["clear screen, red"]
    )


def test_the_case_count_in_the_docstring() -> None:
    runs = 3 * len(HOSTILE) + 2 * len(RAW_CHALLENGES)
    assert (len(HOSTILE), len(RAW_CHALLENGES), runs) == (8, 5, 34)
    assert __doc__ is not None and f"{runs} hostile" in __doc__.replace("\n", " ")


def test_printable_escapes_what_a_terminal_acts_on() -> None:
    assert printable("\x1b[2J\x9b\u202e\ud800\U000e0041ok") == (
        "\\x1b[2J\\x9b\\u202e\\ud800\\U000e0041ok"
    )
    assert printable("a\tb\nc") == "a\\x09b\\x0ac"
    assert printable("a\tb\nc\r", keep_lines=True) == "a\tb\nc\\x0d"
    # Text, emoji sequences and scripts that need joiners are left alone.
    assert printable("caf\xe9 \u2014 \U0001f469\u200d\U0001f4bb \u0645\u0631\u062d\u0628\u0627")
    text = "caf\xe9 \u2014 \U0001f469\u200d\U0001f4bb \u0645\u0631\u062d\u0628\u0627"
    assert printable(text) == text
