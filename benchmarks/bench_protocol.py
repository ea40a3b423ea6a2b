"""Wire-format speed: mpp_client.protocol vs pympp 0.16's client-side codec, in one run.

    python benchmarks/bench_protocol.py [--repeat 5] [--budget 0.1]

Each case is timed with ``timeit`` (``--repeat`` runs, each sized to take about ``--budget``
seconds); the table shows the median time per call and pympp's time divided by ours.

Cases (the inputs are built once, before timing):

- one tempo challenge (~600 chars, shaped like pympp's own server's: HMAC id, JCS request with
  ``methodDetails`` and a route scope, ``expires`` with microseconds, an ``opaque`` nonce):
  ours ``parse_challenges([value])``; pympp ``Challenge.from_www_authenticate`` alone, and its
  transport's path (quote-aware splitter, then ``from_www_authenticate`` per challenge);
- four such challenges folded into one field value;
- both again with a description holding quoted-pairs and a ``\\u`` escape
  (``Pay \\"fast\\" caf\\u00e9 \\\\ now`` on the wire);
- writing a tempo-sized credential (a ~300-byte signed transaction): ours ``to_header()``,
  pympp ``Credential.to_authorization()``;
- reading it back (server side): ``parse_credential`` vs ``Credential.from_authorization``;
- reading a receipt: ``parse_receipt`` vs ``Receipt.from_payment_receipt``;
- hostile 12,000-character field values (ours; pympp's path too where it finishes quickly).

Targets for ours: one challenge <= 15 us, four folded <= 50 us.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mpp_client.protocol import (  # noqa: E402
    Challenge,
    Credential,
    Receipt,
    b64url_encode,
    canonical_json,
    compute_challenge_id,
    parse_challenges,
    parse_credential,
    parse_receipt,
)

# pympp is a benchmark peer, not a dependency (and has no type information): Any, or None.
pympp: Any
pympp_split: Any
try:
    pympp = importlib.import_module("mpp")
    pympp_split = importlib.import_module("mpp.client.transport")._payment_challenges
except ImportError:
    pympp = pympp_split = None

SECRET = b"bench-secret-at-least-thirty-two-bytes!!"
SIGNED_TX = "0x76" + "f8" + "a1b2c3d4e5f60718" * 38  # ~300 bytes, like a signed 0x76 transfer
SOURCE = "did:pkh:eip155:42431:0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"


def tempo_challenge(index: int = 0) -> Challenge:
    request = {
        "amount": str(1_000_000 + index),
        "currency": "0x20C000000000000000000000b9537d11c60E8b50",
        "methodDetails": {"chainId": 42431, "feePayer": True},
        "recipient": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
        "_mppx_scope": {"http_method": "GET", "route": "/paid/tempo"},
    }
    encoded = b64url_encode(canonical_json(request))
    opaque = b64url_encode(canonical_json({"_mpp_nonce": f"{index:064x}"}))
    expires = "2026-11-22T02:28:58.780709Z"
    challenge_id = compute_challenge_id(
        SECRET,
        realm="127.0.0.1",
        method="tempo",
        intent="charge",
        request=encoded,
        expires=expires,
        opaque=opaque,
    )
    return Challenge.create(
        id=challenge_id,
        realm="127.0.0.1",
        method="tempo",
        intent="charge",
        request=request,
        expires=expires,
        opaque=opaque,
    )


def escaped_challenge(index: int = 0) -> Challenge:
    """The tempo challenge with a description holding quoted-pairs and a ``\\u`` escape."""
    return dataclasses.replace(tempo_challenge(index), description='Pay "fast" caf\u00e9 \\ now')


def per_call(func: Callable[[], object], repeat: int, budget: float) -> float:
    """Median seconds per call over ``repeat`` runs of about ``budget`` seconds each."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    single = timer.timeit(number) / number
    number = max(1, int(budget / max(single, 1e-9)))
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def hostile_inputs() -> dict[str, str]:
    size = 12_000
    valid = 'Payment id="a", realm="r", method="tempo", intent="charge", request="e30"'
    return {
        "backslashes": 'Payment id="' + "\\" * size,
        "quotes": '"' * size,
        "commas": "Payment " + "," * size,
        "'Payment ' repeats": "Payment " * (size // 8),
        "'Payment id=\"' repeats": 'Payment id="' * (size // 12),
        "unterminated tail": valid + ', x="' + "\\a" * (size // 2),
        "stray quotes": "Payment " + 'a="b"c"' * (size // 7),
        "valid x160": ", ".join([valid] * (size // len(valid))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.1)
    args = parser.parse_args()

    one = tempo_challenge().to_header()
    four = ", ".join(tempo_challenge(i).to_header() for i in range(4))
    one_escaped = escaped_challenge().to_header()
    four_escaped = ", ".join(escaped_challenge(i).to_header() for i in range(4))
    ours_challenge = parse_challenges([one])[0]
    credential = Credential(ours_challenge, {"type": "transaction", "signature": SIGNED_TX}, SOURCE)
    authorization = credential.to_header()
    receipt = Receipt("success", "tempo", "2026-11-22T02:28:31Z", "0x" + "ab" * 32).encode()
    assert len(parse_challenges([four])) == 4

    rows: list[tuple[str, float, float | None]] = []

    def case(name: str, ours: Callable[[], object], theirs: Callable[[], object] | None) -> None:
        mine = per_call(ours, args.repeat, args.budget)
        other = per_call(theirs, args.repeat, args.budget) if theirs is not None else None
        rows.append((name, mine, other))

    if pympp is not None:
        their_challenge = pympp.Challenge.from_www_authenticate(one)
        their_credential = pympp.Credential(
            challenge=their_challenge.to_echo(),
            payload={"type": "transaction", "signature": SIGNED_TX},
            source=SOURCE,
        )
        their_authorization = their_credential.to_authorization()

        def pympp_path(value: str) -> Callable[[], object]:
            return lambda: [pympp.Challenge.from_www_authenticate(f) for f in pympp_split(value)]

        case(
            f"parse 1 challenge ({len(one)} chars) vs from_www_authenticate",
            lambda: parse_challenges([one]),
            lambda: pympp.Challenge.from_www_authenticate(one),
        )
        case(
            "parse 1 challenge vs splitter + parse",
            lambda: parse_challenges([one]),
            pympp_path(one),
        )
        case(
            f"parse 4 folded ({len(four)} chars) vs splitter + parse",
            lambda: parse_challenges([four]),
            pympp_path(four),
        )
        case(
            "parse 1 challenge with escapes vs splitter + parse",
            lambda: parse_challenges([one_escaped]),
            pympp_path(one_escaped),
        )
        case(
            "parse 4 folded with escapes vs splitter + parse",
            lambda: parse_challenges([four_escaped]),
            pympp_path(four_escaped),
        )
        case(
            f"write credential ({len(authorization)} chars)",
            credential.to_header,
            their_credential.to_authorization,
        )
        case(
            "read credential (server side)",
            lambda: parse_credential(authorization),
            lambda: pympp.Credential.from_authorization(their_authorization),
        )
        case(
            "read receipt",
            lambda: parse_receipt(receipt),
            lambda: pympp.Receipt.from_payment_receipt(receipt),
        )
    else:
        print("pympp is not installed: timing mpp_client only\n")
        case(f"parse 1 challenge ({len(one)} chars)", lambda: parse_challenges([one]), None)
        case(f"parse 4 folded ({len(four)} chars)", lambda: parse_challenges([four]), None)
        case("write credential", credential.to_header, None)
        case("read credential", lambda: parse_credential(authorization), None)
        case("read receipt", lambda: parse_receipt(receipt), None)

    for name, value in hostile_inputs().items():

        def theirs(value: str = value) -> object:
            found = []
            for field in pympp_split(value):
                # pympp raises its own ParseError (and, on some inputs, others).
                with contextlib.suppress(Exception):
                    found.append(pympp.Challenge.from_www_authenticate(field))
            return found

        # pympp's path is timed once first and skipped when a single call takes over 50 ms.
        other = theirs if pympp is not None and per_call(theirs, 1, 0.0) < 0.05 else None
        case(f"hostile 12k: {name}", functools.partial(parse_challenges, [value]), other)

    width = max(len(name) for name, _, _ in rows)
    print(f"{'case':<{width}}  {'mpp_client':>12}  {'pympp 0.16':>12}  {'pympp/ours':>10}")
    for name, mine, their_time in rows:
        theirs_text = f"{their_time * 1e6:10.1f} us" if their_time is not None else f"{'-':>12}"
        ratio = f"{their_time / mine:9.1f}x" if their_time is not None else f"{'-':>10}"
        print(f"{name:<{width}}  {mine * 1e6:10.1f} us  {theirs_text}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
