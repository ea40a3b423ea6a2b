"""A fake NWC wallet service on a real Nostr relay, written with nostr-sdk (an independent
Nostr implementation) so our own NWC client is checked against another one.

Runs under .tools/nostr/bin/python (scripts/install-nostr-relay.sh), NOT in the project venv:

    python nwc_wallet_service.py PORT WALLET_SECRET_HEX LEDGER.json LOG.jsonl ENCRYPTION_TAG

It starts nostr-sdk's LocalRelay on 127.0.0.1:PORT, publishes the wallet's info event
(kind 13194, ``encryption`` tag = ENCRYPTION_TAG, or none when it is "-"), then answers kind
23194 requests addressed to it. LEDGER maps an invoice (pay_invoice) or payment hash
(lookup_invoice) to the answer: {"preimage": hex} | {"error": CODE} | {"silent": true} |
{"state": "failed" | "pending"} (lookup_invoice: an outgoing payment without preimage). Every
request is appended to LOG as JSON (method, params, encryption, tags, signature check).
Prints "READY <relay url>" when it accepts connections.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import nostr_sdk as n
import websockets


async def main() -> None:
    port, secret_hex, ledger_path, log_path, encryption_tag = sys.argv[1:6]
    relay = n.LocalRelay(n.RelayBuilder().addr("127.0.0.1").port(int(port)))
    await relay.run()
    url = f"ws://127.0.0.1:{port}"
    keys = n.Keys.parse(secret_hex)
    wallet = keys.public_key()

    async with websockets.connect(url) as socket:
        tags = [] if encryption_tag == "-" else [n.Tag.parse(["encryption", encryption_tag])]
        info = (
            n.EventBuilder(n.Kind(13194), "pay_invoice lookup_invoice")
            .tags(tags)
            .sign_with_keys(keys)
        )
        await socket.send(json.dumps(["EVENT", json.loads(info.as_json())]))
        await socket.recv()  # OK for the info event
        await socket.send(
            json.dumps(["REQ", "requests", {"kinds": [23194], "#p": [wallet.to_hex()]}])
        )
        print(f"READY {url}", flush=True)
        while True:
            frame = json.loads(await socket.recv())
            if frame[0] != "EVENT" or frame[1] != "requests":
                continue
            raw = frame[2]
            event = n.Event.from_json(json.dumps(raw))
            client = event.author()
            uses_nip44 = ["encryption", "nip44_v2"] in raw["tags"]
            if uses_nip44:
                plaintext = n.nip44_decrypt(keys.secret_key(), client, raw["content"])
            else:
                plaintext = n.nip04_decrypt(keys.secret_key(), client, raw["content"])
            request = json.loads(plaintext)
            with open(log_path, "a") as log:
                log.write(
                    json.dumps(
                        {
                            "method": request["method"],
                            "params": request["params"],
                            "nip44": uses_nip44,
                            "tags": raw["tags"],
                            "signature_valid": event.verify(),
                            "received_at": int(time.time()),
                        }
                    )
                    + "\n"
                )
            with open(ledger_path) as handle:
                ledger = json.load(handle)
            key = request["params"].get("invoice") or request["params"].get("payment_hash")
            entry = ledger.get(key, {"error": "NOT_FOUND"})
            if entry.get("silent"):
                continue
            if "state" in entry:
                answer = {
                    "result_type": request["method"],
                    "error": None,
                    "result": {
                        "type": "outgoing",
                        "payment_hash": key,
                        "amount": 100000,
                        "state": entry["state"],
                    },
                }
            elif "preimage" in entry:
                answer = {
                    "result_type": request["method"],
                    "error": None,
                    "result": {"preimage": entry["preimage"], "fees_paid": 1000}
                    if request["method"] == "pay_invoice"
                    else {
                        "type": "outgoing",
                        "payment_hash": key,
                        "preimage": entry["preimage"],
                        "amount": 100000,
                        "settled_at": 1700000000,
                        "state": "settled",
                    },
                }
            else:
                answer = {
                    "result_type": request["method"],
                    "error": {"code": entry["error"], "message": "fake wallet says no"},
                    "result": None,
                }
            text = json.dumps(answer)
            content = (
                n.nip44_encrypt(keys.secret_key(), client, text, n.Nip44Version.V2)
                if uses_nip44
                else n.nip04_encrypt(keys.secret_key(), client, text)
            )
            reply = (
                n.EventBuilder(n.Kind(23195), content)
                .tags([n.Tag.parse(["p", client.to_hex()]), n.Tag.parse(["e", raw["id"]])])
                .sign_with_keys(keys)
            )
            await socket.send(json.dumps(["EVENT", json.loads(reply.as_json())]))


if __name__ == "__main__":
    asyncio.run(main())
