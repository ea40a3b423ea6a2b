"""``mpp mcp serve`` driven by the official MCP client SDK, as an agent host would: a subprocess
over stdio, and over Streamable HTTP on a loopback port, with the configuration, key store and
journal in a temporary home and the test payment method paying a ``FakeMppServer``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import httpx
from mcp import Client, StdioServerParameters

from mpp_client.cli.budget import policy_mapping
from mpp_client.cli.config import dump_toml
from mpp_client.mcp.serve import BODY_LIMIT, local_url_problem
from mpp_client.testing import FakeMppServer, Offer, Route
from mpp_client.wallet import SpendPolicy
from mpp_client.wallet.journal import SqliteJournal
from mpp_client.wallet.policy import parse_cap

_ROOT = str(Path(__file__).resolve().parents[2])
TOKEN = "test-token-0123456789"
TOOLS = {"fetch", "quote", "budget", "payments"}


def _env(home: Path) -> dict[str, str]:
    # As tests/cli/conftest.py: HOME and the XDG directories in the temporary home, the
    # encrypted key file with its passphrase in a file, and the test payment method on.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")}
    passphrase = home / "passphrase"
    passphrase.write_text("test only passphrase\n")
    passphrase.chmod(0o600)
    return {
        **keep,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "PYTHONPATH": _ROOT,
        "MPP_KEYSTORE": "file",
        "MPP_KEYSTORE_PASSPHRASE_FILE": str(passphrase),
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPP_TEST_METHOD": "1",
    }


def _mpp(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpp_client.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=60,
        check=False,
    )


def _journal(home: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """The journal entries, read in process (as `mpp --json journal list` prints them)."""
    path = home / "data" / "mpp-client" / "journal.sqlite3"
    if not path.exists():
        return []
    journal = SqliteJournal(path)
    try:
        return [record.to_dict() for record in journal.payments()]
    finally:
        journal.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    # Above 0.003 dollars the owner must approve; nobody can here, so it is refused. (The
    # file `mpp budget set --approve-above 0.003USD` writes, written in process.)
    policy = SpendPolicy().replace(approve_above=parse_cap("0.003 USD", "approve_above"))
    path = home / "config" / "mpp-client" / "policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text(dump_toml(policy_mapping(policy)))
    assert SpendPolicy.from_toml(path) == policy
    return _env(home)


@pytest.fixture
def server() -> FakeMppServer:
    return FakeMppServer(
        {
            "/paid": Route(body=b'{"report":"paid content"}'),
            "/free": Route(offers=()),
            "/big": Route(offers=(), body=b"x" * (BODY_LIMIT + 1000)),
            "/pricey": Route(offers=(Offer(amount="5000"),)),  # 0.005 tUSD: needs approval
            "/dear": Route(offers=(Offer(amount="5000000"),)),  # 5.00 tUSD: above the $1 cap
        }
    )


@pytest.fixture
def base_url(server: FakeMppServer) -> Iterator[str]:
    with server.serve() as url:
        yield url


def _data(result: Any) -> dict[str, Any]:
    data = result.structured_content
    assert isinstance(data, dict)
    # The text content carries the same document, for hosts that show only text.
    assert json.loads(result.content[0].text) == data
    return data


def _credentials(server: FakeMppServer) -> list[Any]:
    return [r for r in server.requests if r.credential() is not None]


async def test_stdio_tools_pay_within_the_policy_and_never_change_it(
    home: Path, env: dict[str, str], server: FakeMppServer, base_url: str
) -> None:
    policy_file = home / "config" / "mpp-client" / "policy.toml"
    policy_before = policy_file.read_bytes()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mpp_client.cli", "mcp", "serve", "--allow-local"],
        env=env,
        cwd=str(home),
    )
    async with Client(params, read_timeout_seconds=30) as client:
        listed = (await client.list_tools()).tools
        assert {tool.name for tool in listed} == TOOLS
        by_name = {tool.name: tool for tool in listed}
        for name in ("quote", "budget", "payments"):
            assert by_name[name].annotations.read_only_hint is True
        assert by_name["fetch"].annotations.read_only_hint is False
        for name in ("fetch", "quote"):
            assert "untrusted DATA" in (by_name[name].description or "")
        assert "money_moved" in (by_name["fetch"].description or "")
        assert set(by_name["fetch"].input_schema["properties"]) == {
            "url",
            "method",
            "headers",
            "body",
            "max_amount",
        }

        budget_before = _data(await client.call_tool("budget", {}))
        assert budget_before["read_only"] is True
        assert budget_before["approve_above"]["amount_display"] == "0.003 USD"
        assert {limit["per"] for limit in budget_before["limits"]} >= {"payment", "day"}

        # quote: price and verdict, nothing paid or journaled.
        quoted = await client.call_tool("quote", {"url": f"{base_url}/paid"})
        assert not quoted.is_error
        quote = _data(quoted)
        assert quote["allowed"] is True and quote["paid"] is False
        assert quote["money_moved"] is False
        assert quote["quote"]["amount"] == 1000 and quote["quote"]["currency"] == "usd-test"
        assert _credentials(server) == [] and _journal(home, env) == []

        # fetch on a paid endpoint: paid once, within the policy, and journaled.
        fetched = await client.call_tool(
            "fetch", {"url": f"{base_url}/paid", "headers": {"Accept": "application/json"}}
        )
        assert not fetched.is_error
        paid = _data(fetched)
        assert paid["status"] == 200 and paid["body"] == '{"report":"paid content"}'
        assert paid["paid"] is True and paid["money_moved"] is True
        payment = paid["payment"]
        assert payment["status"] == "paid" and payment["amount"] == 1000
        assert payment["currency"] == "usd-test" and payment["decimals"] == 6
        assert payment["amount_display"] == "0.001 tUSD"
        assert payment["payees"] and payment["reference"]
        [entry] = _journal(home, env)
        assert entry["id"] == payment["journal_id"] and entry["state"] == "settled"
        assert len(server.accepted) == 1

        # A model-supplied max_amount above the policy's cap does not let it pay more.
        dear = await client.call_tool("fetch", {"url": f"{base_url}/dear", "max_amount": "100 USD"})
        assert dear.is_error
        refusal = _data(dear)
        assert refusal["paid"] is False and refusal["money_moved"] is False
        assert refusal["error"]["type"] == "BudgetExceeded"
        assert "Nothing was paid" in refusal["error"]["explanation"]
        # ... and one below the price refuses what the policy would have paid.
        low = _data(
            await client.call_tool("fetch", {"url": f"{base_url}/paid", "max_amount": "0.0005 USD"})
        )
        assert low["error"]["rule"] == "cli.max_amount" and low["money_moved"] is False
        # Above the approval threshold, with no approver: refused, nothing paid.
        pricey = await client.call_tool("fetch", {"url": f"{base_url}/pricey"})
        assert pricey.is_error
        assert _data(pricey)["error"]["rule"] == "approval"
        assert _data(pricey)["money_moved"] is False
        assert len(server.accepted) == 1 and len(_journal(home, env)) == 1

        # quote says the same without paying.
        verdict = _data(await client.call_tool("quote", {"url": f"{base_url}/dear"}))
        assert verdict["allowed"] is False and verdict["refusal"]

        # A free URL costs nothing; a long body is capped and says so.
        big = _data(await client.call_tool("fetch", {"url": f"{base_url}/big"}))
        assert big["paid"] is False and big["payment"] is None
        assert big["body_truncated"] is True and len(big["body"]) == BODY_LIMIT

        listed_payments = _data(await client.call_tool("payments", {"limit": 5}))
        assert listed_payments["count"] == 1
        assert listed_payments["payments"][0]["id"] == payment["journal_id"]

        # No tool changes the policy: extra arguments are ignored or refused, there is no
        # other tool, the file is untouched and the caps are the same.
        await client.call_tool("budget", {"approve_above": "1000 USD", "day": "1000 USD"})
        unknown = await client.call_tool("set_budget", {"day": "1000 USD"})
        assert unknown.is_error
        budget_after = _data(await client.call_tool("budget", {}))
        assert [(x["rule"], x["cap"]) for x in budget_after["limits"]] == [
            (x["rule"], x["cap"]) for x in budget_before["limits"]
        ]
        assert budget_after["approve_above"]["amount_display"] == "0.003 USD"
        day = next(x for x in budget_after["limits"] if x["rule"] == "default.usd.day")
        assert day["used"]["amount"] == 1000  # base units of 6-decimal dollars
    assert policy_file.read_bytes() == policy_before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_server(home: Path, env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    argv = ["mcp", "serve", "--http", "--port", str(port), "--allow-local"]
    process = subprocess.Popen(
        [sys.executable, "-m", "mpp_client.cli", *argv],
        env={**env, "MPP_MCP_TOKEN": TOKEN},
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.communicate()[1].decode()) from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
        assert out == b""  # standard output stays empty: the protocol is on HTTP


async def test_streamable_http_on_loopback_pays_and_refuses_strangers(
    home: Path, env: dict[str, str], server: FakeMppServer, base_url: str, http_server: str
) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    # Without the bearer token, or with a Host that is not this loopback port (DNS
    # rebinding), the server refuses before any tool runs.
    assert httpx.post(http_server, json=hello, headers=headers).status_code == 401
    rebound = httpx.post(
        http_server,
        json=hello,
        headers={**headers, "Authorization": f"Bearer {TOKEN}", "Host": "evil.example"},
    )
    assert rebound.status_code in (400, 403, 421)

    http_client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
    async with (
        http_client,
        Client(streamable_http_client(http_server, http_client=http_client)) as client,
    ):
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        quote = _data(await client.call_tool("quote", {"url": f"{base_url}/paid"}))
        assert quote["allowed"] is True and _journal(home, env) == []
        paid = _data(await client.call_tool("fetch", {"url": f"{base_url}/paid"}))
        assert paid["payment"]["status"] == "paid"
        refused = await client.call_tool("fetch", {"url": f"{base_url}/dear"})
        assert refused.is_error and _data(refused)["money_moved"] is False
        [entry] = _data(await client.call_tool("payments", {}))["payments"]
        assert entry["id"] == paid["payment"]["journal_id"]
        budget = _data(await client.call_tool("budget", {}))
        assert budget["unknown_payments"] == 0
    assert [e["id"] for e in _journal(home, env)] == [entry["id"]]
    assert len(server.accepted) == 1


def test_http_listens_on_loopback_only(home: Path) -> None:
    result = _mpp(home, _env(home), "mcp", "serve", "--http", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "only listens on 127.0.0.1" in result.stderr


def test_local_addresses_are_refused_unless_the_owner_allows_them() -> None:
    for url in (
        "http://localhost:8080/",
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "http://[::ffff:192.168.1.1]/",
    ):
        assert local_url_problem(url), url
    assert local_url_problem("https://api.example.com/paid") is None
    assert local_url_problem("https://8.8.8.8/") is None


def test_mpp_help_and_import_do_not_import_the_mcp_sdk() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import mpp_client, mpp_client.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    mpp_client.cli.main(['--help'])\n"
        "    mpp_client.cli.main(['mcp', 'serve', '--help'])\n"
        "print([m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": _ROOT},
        check=True,
    )
    assert result.stdout.strip() == "[]"
