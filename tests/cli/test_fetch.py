"""``mpp fetch`` against a FakeMppServer on 127.0.0.1, run as a subprocess like a user would."""

from __future__ import annotations

import json
import socket

from mpp_client.testing import FakeMppServer

from .conftest import Mpp


def credentials_sent(server: FakeMppServer) -> list[str]:
    return [r.headers["authorization"] for r in server.requests if "authorization" in r.headers]


def journal(mpp: Mpp) -> list[dict]:
    code, entries = mpp.json("journal", "list")
    assert code == 0
    assert isinstance(entries, list)
    return entries


def test_pays_a_402_prints_the_body_and_journals_the_payment(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/paid")

    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"report":"paid content"}'
    assert "paid 0.001 tUSD to merchant via test" in result.stderr
    assert len(server.accepted) == 1
    [entry] = journal(mpp)
    assert entry["state"] == "settled"
    assert entry["amount"] == 1000 and entry["currency"] == "usd-test"
    assert entry["challenge_id"] == server.accepted[0].challenge.id
    assert entry["receipt"]["reference"] == "ref-" + server.accepted[0].challenge.id[:12]


def test_a_free_url_is_fetched_without_paying(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/free")

    assert result.returncode == 0
    assert result.stdout == '{"ok":true}'
    assert server.accepted == [] and journal(mpp) == []


def test_max_amount_below_the_price_refuses_before_signing(mpp, server, base_url):
    result = mpp("fetch", "--max-amount", "0.0009USD", f"{base_url}/paid")

    assert result.returncode == 3
    assert "--max-amount" in result.stderr and "Nothing was paid" in result.stderr
    assert credentials_sent(server) == []
    assert journal(mpp) == []


def test_max_amount_at_the_price_pays(mpp, server, base_url):
    # 0.001 dollars is exactly 1000 base units of the 6-decimal test dollar.
    result = mpp("fetch", "--max-amount", "0.001 USD", f"{base_url}/paid")

    assert result.returncode == 0, result.stderr
    assert len(server.accepted) == 1


def test_max_amount_in_another_currency_refuses(mpp, server, base_url):
    result = mpp("fetch", "--max-amount", "100 sat", f"{base_url}/paid")

    assert result.returncode == 3
    assert "the offer is in tUSD; --max-amount is in sat" in result.stderr
    assert credentials_sent(server) == []


def test_max_amount_with_more_decimals_than_the_currency_refuses(mpp, server, base_url):
    result = mpp("fetch", "--max-amount", "0.0010001USD", f"{base_url}/paid")

    assert result.returncode == 3
    assert "more decimals" in result.stderr
    assert credentials_sent(server) == []


def test_an_unreadable_max_amount_is_a_usage_error(mpp, server, base_url):
    result = mpp("fetch", "--max-amount", "1e-3 USD", f"{base_url}/paid")

    assert result.returncode == 2
    assert server.requests == []


def test_the_spend_policy_refuses_an_offer_above_the_default_cap(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/dear")

    assert result.returncode == 3
    assert "default.usd.payment" in result.stderr
    assert credentials_sent(server) == []
    assert journal(mpp) == []


def test_dry_run_quotes_without_paying(mpp, server, base_url):
    code, data = mpp.json("fetch", "--dry-run", f"{base_url}/paid")

    assert code == 0
    assert data["allowed"] is True and data["payment_required"] is True
    quote = data["quote"]
    assert quote["method"] == "test" and quote["amount"] == 1000 and quote["decimals"] == 6
    assert quote["payees"] == [{"address": "merchant", "amount": 1000}]
    assert quote["expires"] is not None
    assert credentials_sent(server) == []
    assert journal(mpp) == []


def test_dry_run_says_when_the_policy_would_refuse(mpp, server, base_url):
    result = mpp("fetch", "--dry-run", f"{base_url}/dear")

    assert result.returncode == 3
    assert "price    5.00 tUSD" in result.stdout
    assert "REFUSED" in result.stdout and "default.usd.payment" in result.stdout
    assert credentials_sent(server) == []


def test_dry_run_applies_max_amount(mpp, server, base_url):
    code, data = mpp.json("fetch", "--dry-run", "--max-amount", "0.0005USD", f"{base_url}/paid")

    assert code == 3
    assert data["allowed"] is False and data["rule"] == "cli.max_amount"


def test_verbose_shows_challenge_fingerprint_and_receipt_but_never_the_credential(
    mpp, server, base_url
):
    result = mpp("fetch", "-v", "-H", "Authorization: Bearer my-own-token", f"{base_url}/paid")

    assert result.returncode == 0, result.stderr
    [accepted] = server.accepted
    [entry] = journal(mpp)
    assert f"id={accepted.challenge.id}" in result.stderr
    assert f"fingerprint=sha256:{entry['fingerprint']}" in result.stderr
    assert f"reference={entry['receipt']['reference']}" in result.stderr
    # The paid request's credential never shows, nor does the caller's own bearer token.
    paid_request = server.requests[-1]
    credential = paid_request.headers["authorization"]
    assert credential.startswith("Payment ")
    token = credential.split(" ", 1)[1]
    for stream in (result.stdout, result.stderr):
        assert token not in stream
        assert "my-own-token" not in stream
    assert "> authorization: <redacted>" in result.stderr


def test_include_prints_status_and_headers_before_the_body(mpp, server, base_url):
    result = mpp("fetch", "-i", f"{base_url}/paid")

    assert result.returncode == 0
    head, _, body = result.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK")
    assert "payment-receipt:" in head.lower()
    assert body == '{"report":"paid content"}'


def test_output_file_gets_the_body(mpp, server, base_url):
    result = mpp("fetch", "-o", "report.json", f"{base_url}/paid")

    assert result.returncode == 0
    assert result.stdout == ""
    assert (mpp.home / "report.json").read_bytes() == b'{"report":"paid content"}'


def test_post_data_is_replayed_byte_identically_on_the_paid_retry(mpp, server, base_url):
    (mpp.home / "body.bin").write_bytes(b"a=1&b=\xff\x00binary")
    result = mpp("fetch", "-d", "@body.bin", f"{base_url}/paid")

    assert result.returncode == 0, result.stderr
    first, paid = server.requests
    assert first.method == paid.method == "POST"
    assert first.body == paid.body == b"a=1&b=\xff\x00binary"
    assert "idempotency-key" in paid.headers


def test_json_body_sets_content_type(mpp, server, base_url):
    result = mpp("fetch", "--json", '{"q": 1}', f"{base_url}/paid")

    assert result.returncode == 0
    assert server.requests[-1].headers["content-type"] == "application/json"
    assert server.requests[-1].body == b'{"q": 1}'


def test_json_output_is_one_document_with_the_payment(mpp, server, base_url):
    code, data = mpp.json("fetch", f"{base_url}/paid")

    assert code == 0
    assert data["status"] == 200 and data["body"] == '{"report":"paid content"}'
    payment = data["payment"]
    assert payment["status"] == "paid" and payment["amount"] == 1000
    assert payment["receipt"]["challenge_id"] == server.accepted[0].challenge.id
    assert len(payment["fingerprint"]) == 64


def test_a_rejected_payment_exits_5_and_keeps_the_amount_held(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/reject")

    assert result.returncode == 5
    # The server holds a credential it could still settle: nothing proves it void.
    assert "stays held" in result.stderr and "No money moved" not in result.stderr
    assert len(credentials_sent(server)) == 1  # one credential, never a second
    [entry] = journal(mpp)
    assert entry["state"] == "unknown" and entry["held"] is True


def test_a_403_after_paying_exits_5_and_says_money_moved(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/forbidden")

    assert result.returncode == 5
    assert "Money moved" in result.stderr
    [entry] = journal(mpp)
    assert entry["state"] == "failed" and entry["money_moved"] is True


def test_a_server_error_after_paying_is_an_unknown_outcome(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/broken")

    assert result.returncode == 6
    assert "mpp journal reconcile" in result.stderr
    code, unknown = mpp.json("journal", "unknown")
    assert code == 0 and len(unknown) == 1


def test_a_dropped_paid_request_is_an_unknown_outcome_and_not_paid_twice(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/drop")

    assert result.returncode == 6
    sent = credentials_sent(server)
    assert len(sent) == 2 and sent[0] == sent[1]  # the same credential resent once
    assert "outcome unknown" in result.stderr


def test_an_http_error_exits_7(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/missing")

    assert result.returncode == 7


def test_without_a_payment_method_a_402_is_not_payable(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/paid", env={"MPP_TEST_METHOD": "0"})

    assert result.returncode == 4
    assert "no configured method pays test/charge" in result.stderr
    assert credentials_sent(server) == []


def test_a_connection_error_exits_1(mpp):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = mpp("fetch", f"http://127.0.0.1:{port}/paid")

    assert result.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port}" in result.stderr
    assert "nothing was paid" in result.stderr


def test_a_timeout_names_the_host_and_the_timeout(mpp):
    # A listening socket that never answers: the connection is made, the answer never comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = mpp("fetch", "--max-time", "0.5", f"http://127.0.0.1:{port}/paid")
        code, data = mpp.json("fetch", "--max-time", "0.5", f"http://127.0.0.1:{port}/paid")

    assert result.returncode == 1
    assert f"request to 127.0.0.1:{port} timed out after 0.5 s" in result.stderr
    assert "(--max-time 0.5)" in result.stderr
    assert code == 1 and data["error"]["exit_code"] == 1
    assert f"127.0.0.1:{port}" in data["error"]["message"]
    assert data["error"]["money_moved"] is False


def test_no_progress_indicator_when_stderr_is_not_a_terminal(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/paid")

    assert "\r" not in result.stderr and "\x1b[" not in result.stderr


def test_progress_indicator_on_a_terminal(mpp, server, base_url, terminal):
    term = terminal(mpp, "fetch", f"{base_url}/paid")

    assert term.finish() == 0
    text = term.output.decode()
    assert "\r\x1b[2K" in text  # the indicator line is drawn and cleared
    assert "paid 0.001 tUSD to merchant via test" in text
    assert '{"report":"paid content"}' in text


def test_json_mode_from_the_environment(mpp, server, base_url):
    result = mpp("fetch", f"{base_url}/paid", env={"MPP_OUTPUT": "json"})

    assert result.returncode == 0
    assert json.loads(result.stdout)["payment"]["status"] == "paid"
