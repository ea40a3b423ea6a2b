"""``mpp demo``: the README demo, and a local playground to try ``mpp fetch`` on.

``mpp demo`` runs ``mpp_client.demo`` (a local Tempo chain and a real MPP server, a funded
throwaway wallet, paid requests under a spending cap, then what was paid and what is left;
everything is stopped at the end and nothing touches your own wallets or journal).

``mpp demo serve`` starts the same chain and server and keeps them running, with a
configuration of its own in a new temporary directory: one wallet named ``demo`` (a new key in
your key store, funded with 1.00 pathUSD on the local chain), its own journal and the default
spend policy. It prints the ``export MPP_CONFIG=... MPP_JOURNAL=...`` line that points another
terminal at it, so ``mpp fetch URL`` pays the local server and ``mpp journal list`` or
``mpp report`` show the demo's payments, never your own. Your configuration and journal are
not touched. Ctrl-C stops everything, deletes the demo's key from the key store (it is
worthless off the local chain) and removes the directory.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import shlex
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpp_client.cli.accounts import open_store, secret_entry
from mpp_client.cli.config import Config, WalletEntry
from mpp_client.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from types import ModuleType

    from mpp_client.cli.invocation import Invocation

__all__ = ["register"]

DEMO_WALLET = "demo"
FUNDING = 1_000_000  # 1.00 pathUSD (6 decimals)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the README demo on a local Tempo chain (`mpp demo serve` to keep it up)",
        description="Without arguments: runs mpp_client.demo (local Tempo chain, mppx server, "
        "paid requests within a budget; stops everything at the end). `mpp demo serve` keeps "
        "a local chain and server running with a funded `demo` wallet and a configuration "
        "and journal of its own (never yours) for `mpp fetch`. "
        "Needs the tempo extra, anvil (scripts/install-anvil.sh) and mppx "
        "(scripts/install-mppx.sh).",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["run", "serve"],
        default="run",
        help="run (default): the scripted demo; serve: keep a local chain and server up",
    )
    parser.add_argument("demo_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def _demo_module(inv: Invocation) -> ModuleType | None:
    try:
        return importlib.import_module("mpp_client.demo")
    except ImportError as exc:
        inv.output.error(
            f"the demo is not available ({exc}); install the tempo extra: "
            "pip install 'mpp-client[tempo]'"
        )
        return None


def run(inv: Invocation) -> int:
    demo = _demo_module(inv)
    if demo is None:
        return ExitCode.ERROR
    if inv.args.action == "serve":
        return _serve(inv, demo)
    entry = demo.main
    extra = list(inv.args.demo_args)
    try:
        if inspect.signature(entry).parameters:
            return int(entry(extra) or 0)
        if extra:
            inv.output.error("the demo takes no arguments")
            return ExitCode.USAGE
        return int(entry() or 0)
    except SystemExit as stop:
        # The demo exits with a message when a tool is missing.
        if isinstance(stop.code, str):
            inv.output.error(stop.code)
            return ExitCode.ERROR
        return int(stop.code or 0)


def _serve(inv: Invocation, demo: ModuleType) -> int:
    from mpp_client.methods.tempo import LocalKeySigner
    from mpp_client.wallet import Secret, SecretKind

    out = inv.output
    config = inv.config
    try:
        node = demo.check_tools()
    except SystemExit as stop:
        out.error(str(stop.code))
        return ExitCode.ERROR
    chain: Any = None
    server: Any = None
    entry: WalletEntry | None = None
    store = open_store(config)
    # The demo's own configuration and journal: payments to the local chain never land in the
    # owner's journal (or count against their caps), and their config is never rewritten. The
    # key store is the owner's (where the key goes is their choice).
    home = Path(tempfile.mkdtemp(prefix="mpp-demo-"))
    journal = home / "journal.sqlite3"
    # The key file would otherwise be looked for next to the demo's journal: name the one used.
    from mpp_client.wallet import EncryptedFileKeyStore

    key_file = store.path if isinstance(store, EncryptedFileKeyStore) else None
    own = Config(
        path=home / "config.toml",
        journal=str(journal),
        keystore="keyring" if key_file is None else "file",
        keystore_file=None if key_file is None else str(Path(key_file).resolve()),
    )
    env = {"MPP_CONFIG": str(own.path), "MPP_JOURNAL": str(journal)}
    try:
        out.info("Starting a local Tempo chain (anvil --network tempo) ...")
        # Mining every second keeps the chain clock with the wall clock while the demo idles.
        chain = demo.AnvilChain.start(block_time=1)
        merchant = LocalKeySigner.generate().address
        partner = LocalKeySigner.generate().address
        out.info("Starting an mppx 0.11 MPP server ...")
        server, url = demo.start_server(node, chain, merchant, partner)
        key = LocalKeySigner.generate()
        chain.fund(key.address, FUNDING)
        entry = WalletEntry(
            DEMO_WALLET,
            "tempo",
            f"tempo/{DEMO_WALLET}",  # where examples/tempo_charge.py looks for it
            {"chain_id": chain.chain_id, "rpc_url": chain.rpc_url, "address": key.address},
        )
        store.set(
            secret_entry(entry, "private-key"),
            Secret(key.export_private_key(), SecretKind.TEMPO_PRIVATE_KEY),
        )
        own.wallets[DEMO_WALLET] = entry
        own.default_wallet = DEMO_WALLET
        own.save()
        data = {
            "url": url,
            "wallet": DEMO_WALLET,
            "address": key.address,
            "rpc_url": chain.rpc_url,
            "merchant": merchant,
            "partner": partner,
            "config": str(own.path),
            "journal": str(journal),
            "env": env,
        }
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        out.result(
            data,
            f"""
A local Tempo chain and an MPP server are running. Wallet `{DEMO_WALLET}` ({key.address})
holds 1.00 pathUSD on the local chain. It has its own configuration and journal (your own
wallets, policy and journal are not used). In another terminal:

  export {exports}
  mpp fetch --dry-run {url}/paid     # what it costs, nothing paid
  mpp fetch {url}/paid               # pays 0.01 pathUSD to the merchant
  mpp fetch -v {url}/split           # refused: a second payee (payee pinning)
  mpp fetch --accept-payee -v {url}/split   # asks you, then pays both
  mpp wallet show {DEMO_WALLET} --balance
  mpp journal list --today
  mpp report

(Without a terminal, trust the second payee with
  mpp budget trust {url} --method tempo --payee {partner.lower()} --yes)

From Python (a checkout of the repository):

  python examples/tempo_charge.py {url}/paid --rpc-url {chain.rpc_url}

Press Ctrl-C to stop the chain and the server (the demo's key and directory are removed).""",
        )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            while not stopped.wait(0.5):
                if server.poll() is not None:
                    out.error("the MPP server stopped")
                    return ExitCode.ERROR
        except KeyboardInterrupt:
            pass
        return ExitCode.OK
    finally:
        demo.stop_server(server)
        if chain is not None:
            chain.stop()
        if entry is not None:
            with contextlib.suppress(KeyError):
                store.delete(secret_entry(entry, "private-key"))
        shutil.rmtree(home, ignore_errors=True)
        out.info("Stopped the server and the chain; removed the demo wallet and its journal.")
