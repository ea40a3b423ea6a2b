"""Smoke test of an installed wheel, run by scripts/check-wheels.sh inside a clean venv that
holds only the wheel and one set of extras (never by pytest, never from the checkout).

    python wheel_smoke.py EXTRA[,EXTRA...]     # "" for none

It checks that the package imported is the installed one, pays the fake server through the
drivers the extras allow, that each feature whose extra is missing raises ``MissingExtra``
naming it, and that the command line runs (``mpp``, ``python -m mpp_client``, ``mpp demo``
saying what it needs).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"wheel smoke test failed: {what}")
    print(f"ok  {what}")


def main() -> None:
    extras = set(filter(None, sys.argv[1].split(","))) if len(sys.argv) > 1 else set()
    if "all" in extras:
        extras |= {"requests", "tempo", "lightning", "nwc", "handcash", "keyring", "mcp"}

    import httpx

    import mpp_client
    from mpp_client import AsyncPaymentTransport, MissingExtra, PaymentTransport, Wallet, payment_of
    from mpp_client.testing import FakeMppServer, TestMethod

    installed = Path(mpp_client.__file__).resolve()
    check("site-packages" in installed.parts, f"mpp_client comes from the wheel ({installed})")
    dist = metadata.distribution("mpp-client")
    check(dist.version == mpp_client.__version__, f"version {dist.version}")
    names = {Path(str(f)).name for f in dist.files or ()}
    check("LICENSE" in names, "the wheel ships LICENSE")
    check("py.typed" in names, "the wheel ships py.typed")

    server = FakeMppServer()
    wallet = Wallet([TestMethod()], journal=":memory:")
    with server.serve() as base:
        with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
            sync = payment_of(client.get(f"{base}/paid"))
        check(sync is not None and sync.status == "paid", "paid through httpx.Client")

        async def pay_async() -> str | None:
            async with httpx.AsyncClient(transport=AsyncPaymentTransport(wallet=wallet)) as c:
                found = payment_of(await c.get(f"{base}/paid"))
                return None if found is None else found.status

        check(asyncio.run(pay_async()) == "paid", "paid through httpx.AsyncClient")
        try:
            from mpp_client import PaymentSession

            with PaymentSession(wallet=wallet) as session:
                paid = session.get(f"{base}/paid").mpp_payment
            check("requests" in extras, "PaymentSession needs [requests]")
            check(paid is not None and paid.status == "paid", "paid through requests")
        except MissingExtra as missing:
            check("requests" not in extras and missing.extra == "requests", str(missing))
    check(len(server.accepted) == 2 + ("requests" in extras), "the server took every payment")

    key = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    try:
        from mpp_client.methods.tempo import LocalKeySigner, TempoCharge

        signer = LocalKeySigner(key)
        TempoCharge(signer, chain_id=31337, rpc_url="http://127.0.0.1:8545")
        check("tempo" in extras and len(signer.sign_hash(b"\1" * 32)) == 65, "Tempo signs")
    except MissingExtra as missing:
        check("tempo" not in extras and missing.extra == "tempo", str(missing))
    try:
        from mpp_client.methods.lightning import LightningCharge, LnbitsPayer

        LightningCharge(LnbitsPayer("http://127.0.0.1:5000", "admin-key"), network="regtest")
        check("lightning" in extras, "LightningCharge builds with [lightning]")
    except MissingExtra as missing:
        check("lightning" not in extras and missing.extra == "lightning", str(missing))

    for argv in (["mpp", "--version"], [sys.executable, "-m", "mpp_client", "--help"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        check(done.returncode == 0, f"{' '.join(argv[-3:])} runs")
    demo = subprocess.run(["mpp", "demo"], capture_output=True, text=True, timeout=60, check=False)
    said = demo.stdout + demo.stderr
    check(demo.returncode != 0 and "checkout" in said, f"mpp demo says what it needs: {said!r}")


if __name__ == "__main__":
    main()
