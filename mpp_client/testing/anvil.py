"""A local Tempo chain for tests and demos: anvil started with ``--network tempo``.

``AnvilChain`` starts the anvil binary from the npm package ``@foundry-rs/anvil-linux-amd64``
(1.7.1; ``scripts/install-anvil.sh`` installs it into ``.tools/anvil``) on 127.0.0.1, mines
one block (a fresh chain rejects expiring-nonce transactions until it has one), and funds
wallets with pathUSD from anvil's well-known dev accounts. Tempo mode has no native coin: every
balance and fee is in TIP-20 stablecoins (6 decimals, base units).

    with AnvilChain.start() as chain:
        wallet = LocalKeySigner.generate()
        chain.fund(wallet.address, 5_000_000)          # 5.00 pathUSD
        print(chain.balance_of(wallet.address))

The dev keys are public test keys: never use them anywhere real.

Time: with the default automine, an idle anvil makes no blocks, so its latest block falls
behind the wall clock (by minutes, for a chain left running). Servers simulate payments at the
latest block, and anvil refuses an expiring nonce more than 30 s past it, while its pool also
wants ``valid_before`` more than 3 s past its own (wall) clock: past ~27 s of lag no
transaction satisfies both. ``TempoCharge`` counts ``valid_before`` from the chain's time,
which covers short lags; a chain left running for people to pay (``mpp demo serve``) should be
started with ``block_time=1`` so that it keeps making blocks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mpp_client.methods.tempo.signer import AccessKeySigner, LocalKeySigner
from mpp_client.methods.tempo.tip20 import PATH_USD, balance_of_data, transfer_data
from mpp_client.methods.tempo.transaction import (
    EXPIRING_NONCE_KEY,
    Call,
    KeyAuthorization,
    SignedKeyAuthorization,
    TempoTransaction,
    TokenLimit,
    address_bytes,
    tx_hash,
)

__all__ = ["DEV_KEYS", "AnvilChain", "AnvilNotFound", "find_anvil"]

#: anvil's dev accounts #0..#2 (public test mnemonic "test test ... junk").
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
)
_PACKAGE_BIN = Path(".tools/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


class AnvilNotFound(RuntimeError):
    """No anvil binary: run ``scripts/install-anvil.sh`` or set ``ANVIL_BIN``."""


def find_anvil() -> str:
    """The anvil binary: ``$ANVIL_BIN``, ``.tools/anvil`` of this checkout or the working
    directory, or ``anvil`` on ``PATH``."""
    explicit = os.environ.get("ANVIL_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise AnvilNotFound(f"ANVIL_BIN={explicit} is not an executable")
        return explicit
    checkout = Path(__file__).resolve().parents[2]
    for base in (checkout, Path.cwd()):
        candidate = base / _PACKAGE_BIN
        if os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    raise AnvilNotFound(
        "anvil not found: run scripts/install-anvil.sh (installs @foundry-rs/anvil-linux-amd64"
        "@1.7.1 into .tools/anvil) or set ANVIL_BIN"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilChain:
    """A running anvil Tempo chain on 127.0.0.1 (use ``start``; stop with ``stop`` or ``with``)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, chain_id: int) -> None:
        self.process = process
        self.port = port
        self.chain_id = chain_id
        self.rpc_url = f"http://127.0.0.1:{port}"
        self._http = httpx.Client(timeout=30.0)
        self._ids = 0

    @classmethod
    def start(
        cls,
        *,
        chain_id: int = 31337,
        port: int | None = None,
        hardfork: str = "t4",
        binary: str | None = None,
        timeout: float = 15.0,
        block_time: float | None = None,
    ) -> AnvilChain:
        """Start anvil (``--network tempo --hardfork t4``), wait until it answers, mine once.

        ``block_time``: seconds between blocks (interval mining, so the chain's clock never
        lags the wall clock by more than that; a transaction then waits for the next block).
        ``None`` (default): a block per transaction, and none while idle.
        """
        exe = binary or find_anvil()
        chosen = port or _free_port()
        command = [
            exe,
            "--network",
            "tempo",
            "--hardfork",
            hardfork,
            "--chain-id",
            str(chain_id),
            "--host",
            "127.0.0.1",
            "--port",
            str(chosen),
            "--silent",
        ]
        if block_time is not None:
            command += ["--block-time", f"{block_time:g}"]
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        chain = cls(process, chosen, chain_id)
        try:
            chain._wait_ready(timeout)
            chain.mine()
        except BaseException:
            chain.stop()
            raise
        return chain

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(f"anvil exited with {self.process.returncode}: {err[-500:]}")
            try:
                if int(self.rpc("eth_chainId"), 16) == self.chain_id:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"anvil did not answer on {self.rpc_url} in {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop anvil (terminate, then kill after 5 s) and close the RPC client."""
        self._http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stderr:
            self.process.stderr.close()

    def __enter__(self) -> AnvilChain:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- RPC ---------------------------------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        """Call a JSON-RPC method; raise ``RuntimeError`` with the node's message on error."""
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        answer = self._http.post(self.rpc_url, json=body).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error'].get('message')}")
        return answer["result"]

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def block_number(self) -> int:
        """The latest block number."""
        return int(self.rpc("eth_blockNumber"), 16)

    def balance_of(self, owner: str, token: str = PATH_USD.address) -> int:
        """``owner``'s balance of ``token`` in base units (6 decimals)."""
        data = "0x" + balance_of_data(owner).hex()
        return int(self.rpc("eth_call", {"to": token, "data": data}, "latest"), 16)

    def chain_time(self) -> int:
        """The latest block's timestamp (Unix seconds): the chain's clock."""
        return int(self.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def gas_price(self) -> int:
        """The chain's gas price in attodollars per gas unit."""
        return int(self.rpc("eth_gasPrice"), 16)

    def receipt(self, tx: str) -> dict[str, Any] | None:
        """The receipt of transaction ``tx``, or ``None`` if it is not mined."""
        result = self.rpc("eth_getTransactionReceipt", tx)
        return result if isinstance(result, dict) else None

    def send(
        self,
        signer: LocalKeySigner | AccessKeySigner,
        calls: list[tuple[str, bytes]],
        *,
        fee_token: str = PATH_USD.address,
        gas_limit: int = 2_000_000,
        key_authorization: SignedKeyAuthorization | None = None,
    ) -> dict[str, Any]:
        """Sign ``calls`` (``(to, calldata)`` pairs) as ``signer`` on the expiring-nonce lane,
        send them and return the receipt. Raises ``RuntimeError`` if it reverts."""
        tx = TempoTransaction(
            key_authorization=key_authorization,
            chain_id=self.chain_id,
            calls=tuple(Call(address_bytes(to), 0, data) for to, data in calls),
            gas_limit=gas_limit,
            max_fee_per_gas=2 * self.gas_price(),
            nonce_key=EXPIRING_NONCE_KEY,
            # anvil's pool judges valid_before by its own clock: this machine's, moved forward
            # by any timestamp a test mined (never back), so the later of the two.
            valid_before=max(int(time.time()), self.chain_time()) + 20,
            fee_token=address_bytes(fee_token),
        )
        raw = tx.encode(signer.sign_hash(tx.signing_hash()))
        receipt: dict[str, Any] = self.rpc("eth_sendRawTransactionSync", "0x" + raw.hex())
        if receipt.get("status") != "0x1":
            raise RuntimeError(f"transaction {tx_hash(raw)} reverted")
        return receipt

    def fund(
        self, address: str, amount: int, *, token: str = PATH_USD.address, dev_account: int = 0
    ) -> dict[str, Any]:
        """Send ``amount`` base units of ``token`` to ``address`` from a dev account.

        A random memo keeps two identical fundings apart (expiring nonces replay by hash)."""
        dev = LocalKeySigner(DEV_KEYS[dev_account])
        data = transfer_data(address, amount, secrets.token_bytes(32))
        return self.send(dev, [(token, data)], fee_token=token)

    def authorize_access_key(
        self,
        root: LocalKeySigner,
        access_key: LocalKeySigner,
        *,
        limit: int | None = None,
        token: str = PATH_USD.address,
        expiry: int | None = None,
    ) -> AccessKeySigner:
        """Authorize ``access_key`` to spend for ``root`` (at most ``limit`` base units of
        ``token``; ``None``: unlimited) and return the ``AccessKeySigner`` that uses it.

        The root signs a key authorization; the access key itself sends it in its first
        transaction (a zero transfer to the root), which is how Tempo provisions keys."""
        authorization = KeyAuthorization(
            chain_id=self.chain_id,
            key_id=address_bytes(access_key.address),
            expiry=expiry
            if expiry is not None
            else max(int(time.time()), self.chain_time()) + 86_400,
            limits=None if limit is None else (TokenLimit(address_bytes(token), limit),),
        )
        signed = SignedKeyAuthorization(authorization, root.sign_hash(authorization.digest()))
        signer = AccessKeySigner(access_key.export_private_key(), root.address)
        self.send(signer, [(token, transfer_data(root.address, 0))], key_authorization=signed)
        return signer
