"""Run documentation blocks as a reader would: in a fresh interpreter, one namespace per group.

Reads JSON from standard input: ``{"blocks": [{"name": ..., "code": ...}], "seed_keystore":
{entry: secret}}``. Top-level ``await`` is allowed (the MCP and async examples use it): such a
block runs in its own event loop. Exits non-zero with the failing block's name on an error.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import sys
import traceback


def main() -> int:
    job = json.load(sys.stdin)
    seed = job.get("seed_keystore") or {}
    if seed:
        from mpp_client.wallet import open_keystore

        store = open_keystore()
        for entry, value in seed.items():
            store.set(entry, value)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in job["blocks"]:
        try:
            code = compile(
                block["code"], block["name"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            if code.co_flags & inspect.CO_COROUTINE:
                asyncio.run(eval(code, namespace))
            else:
                exec(code, namespace)
        except BaseException:
            print(f"--- {block['name']} failed:", file=sys.stderr)
            traceback.print_exc()
            return 1
        print(f"--- {block['name']} ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
