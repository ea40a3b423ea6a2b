"""`import mpp_client` and the drivers load nothing a request that is never answered 402 needs.

Behavioural, not timed (the timing is in benchmarks/bench_summary.py): a fresh interpreter
imports the public names and asks a response for its payment, then ``sys.modules`` says what
got loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What only a 402 needs: the flow and everything behind it (protocol parser, methods, wallet,
# journal), the effect runners and their retry and asyncio machinery.
HEAVY = (
    "asyncio",
    "mpp_client.effects",
    "mpp_client.flow",
    "mpp_client.guard",
    "mpp_client.methods",
    "mpp_client.protocol",
    "mpp_client.runner",
    "mpp_client.trampoline",
    "mpp_client.wallet",
    "sqlite3",
    "tenacity",
)

PROGRAM = """
import json, sys
import httpx
import mpp_client
from mpp_client import AsyncPaymentTransport, PaymentTransport, payment_of
import requests
from mpp_client import PaymentSession
from mpp_client.errors import PaymentRefused
after_import = sorted(sys.modules)

response = httpx.Response(200, text="free")
assert payment_of(response) is None
print(json.dumps({"after_import": after_import, "after_use": sorted(sys.modules)}))
"""


def _loaded() -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], check=True, capture_output=True, text=True
    )
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_importing_the_package_and_its_drivers_loads_no_payment_machinery() -> None:
    loaded = _loaded()
    assert _heavy(loaded["after_import"]) == []
    assert "mpp_client.transport" in loaded["after_import"]  # the import really happened
    assert _heavy(loaded["after_use"]) == []


def test_the_first_402_loads_the_flow_and_the_runner() -> None:
    program = """
import json, sys
import httpx
from mpp_client import PaymentTransport
from mpp_client.guard import OpenGuard
from mpp_client.testing import TestMethod
from mpp_client.testing.server import FakeMppServer, Offer, Route

server = FakeMppServer({"/paid": Route(offers=(Offer(amount="1000"),))})
transport = PaymentTransport(server.mock_transport(), methods=[TestMethod()], guard=OpenGuard())
before = "mpp_client.runner" in sys.modules or "tenacity" in sys.modules
with httpx.Client(transport=transport) as client:
    assert client.get("https://fake.test/paid").status_code == 200
print(json.dumps([before, "mpp_client.runner" in sys.modules]))
"""
    done = subprocess.run(
        [sys.executable, "-c", program], check=True, capture_output=True, text=True
    )
    # Constructing the transport did not make the runner; paying did.
    assert json.loads(done.stdout) == [False, True]
