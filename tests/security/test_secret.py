"""``mpp_client.secret``: the redacting ``Secret`` and ``scrub``; the runner's sanitized
transport failures."""

from __future__ import annotations

import base64
import copy
import dataclasses
import pickle
from urllib.parse import quote

import httpx
import pytest

from mpp_client.effects import HttpCall
from mpp_client.errors import EffectFailed
from mpp_client.runner import SyncRunner, TransportFailed
from mpp_client.secret import DETAIL_LIMIT, Secret, Secrets, scrub

KEY = "sk_test_unit" + "Zz9" * 10


def test_a_secret_never_shows_itself():
    secret = Secret(KEY)
    assert repr(secret) == str(secret) == f"{secret}" == f"{secret!r:>20}".strip() == "<secret>"
    assert secret.reveal() == KEY
    assert Secret(secret).reveal() == KEY  # unwrapped, not nested

    @dataclasses.dataclass
    class Holder:
        key: Secret[str]

    assert KEY not in repr(dataclasses.asdict(Holder(secret)))
    assert copy.deepcopy(secret) is secret
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        vars(secret)  # __slots__: no __dict__ to dump


def test_secrets_compare_by_value_in_constant_time():
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) == KEY
    assert Secret(KEY) != Secret(KEY + "x")
    assert hash(Secret(KEY)) == hash(Secret("other"))  # the hash says nothing of the value


def test_scrub_removes_every_form_and_caps():
    raw = KEY.encode()
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    forms = [
        KEY,
        KEY.upper(),
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        quote(KEY, safe=""),
        basic,
    ]
    secrets = Secrets()
    secrets.add(KEY)
    secrets.add(f"Basic {basic}", also=[basic])
    text = " | ".join(forms) + " Rune: someoneelsesrune x-api-key=abc123def"
    out = scrub(text, secrets, limit=10_000)
    for form in forms:
        assert form.lower() not in out.lower()
    assert "someoneelsesrune" not in out and "abc123def" not in out
    assert len(scrub("x" * 5000, secrets)) == DETAIL_LIMIT
    assert repr(secrets) == "<2 secrets>"


def test_hex_secrets_are_also_found_as_base64_of_their_bytes():
    macaroon = "0201036c6e64" + "ab" * 20
    b64 = base64.b64encode(bytes.fromhex(macaroon)).decode()
    assert b64 not in scrub(f"macaroon was {b64}", [Secret(macaroon)])


def _failing(exc: Exception) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("exc", "delivered"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("cut"), True),
    ],
)
def test_transport_failures_carry_no_httpx_error(exc, delivered):
    call = HttpCall("POST", "https://node.test/pay", {"rune": KEY}, b"{}", retry_safe=False)
    runner = SyncRunner(_failing(exc))
    with pytest.raises(EffectFailed) as info:
        runner.http(call)
    failure = info.value
    assert isinstance(failure, TransportFailed)
    assert failure.delivered is delivered  # unchanged semantics
    assert failure.cause_type == type(exc).__name__
    assert failure.status is None
    # Neither cause nor context: the httpx error's .request carries the headers.
    assert failure.__cause__ is None and failure.__context__ is None
    assert KEY not in str(failure)
