"""Fixtures for driving ``mpp`` as a user would: a subprocess with HOME and the XDG directories
pointed at a temporary directory, against a ``FakeMppServer`` on 127.0.0.1 (or the real local
Tempo stack in test_tempo_e2e.py), and a real terminal (pty) where it matters."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mpp_client.testing import FakeMppServer, Offer, Route

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.peers.fixtures import anvil, pympp_merchant, pympp_server  # noqa: E402, F401

PASSPHRASE = "correct horse battery staple (test only)"


@dataclass
class Mpp:
    """Runs ``python -m mpp_client.cli`` in an isolated home directory."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        return self.home / "config" / "mpp-client" / "config.toml"

    @property
    def policy_file(self) -> Path:
        return self.home / "config" / "mpp-client" / "policy.toml"

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / "mpp-client"

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mpp_client.cli", *args]

    def __call__(
        self, *args: str, input: bytes | str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        data = input.encode() if isinstance(input, str) else input
        result = subprocess.run(
            self.argv(*args),
            input=data if data is not None else b"",
            capture_output=True,
            env={**self.env, **(env or {})},
            cwd=self.home,
            timeout=120,
            check=False,
            # No controlling terminal, as under cron or CI: /dev/tty cannot be opened, so a
            # prompt can never hang on the developer's own terminal.
            start_new_session=True,
        )
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode("utf-8", "replace"),
            result.stderr.decode("utf-8", "replace"),
        )

    def json(self, *args: str, **kwargs: object) -> tuple[int, object]:
        import json

        result = self("--json", *args, **kwargs)  # type: ignore[arg-type]
        assert result.stdout, result.stderr
        return result.returncode, json.loads(result.stdout)


def isolated_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")}
    passphrase_file = home / "passphrase"
    if not passphrase_file.exists():
        passphrase_file.write_text(PASSPHRASE + "\n")
        passphrase_file.chmod(0o600)
    return {
        **keep,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "PYTHONPATH": _ROOT,
        # Never the developer's real keyring: the encrypted file, passphrase from a file.
        "MPP_KEYSTORE": "file",
        "MPP_KEYSTORE_PASSPHRASE_FILE": str(passphrase_file),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture
def mpp(tmp_path: Path) -> Mpp:
    """``mpp`` with an empty home and the test payment method on (pays the fake server)."""
    home = tmp_path / "home"
    home.mkdir()
    return Mpp(home, {**isolated_env(home), "MPP_TEST_METHOD": "1"})


@pytest.fixture
def server() -> FakeMppServer:
    return FakeMppServer(
        {
            "/paid": Route(body=b'{"report":"paid content"}'),
            "/free": Route(offers=()),
            "/dear": Route(offers=(Offer(amount="5000000"),)),  # 5.00 tUSD
            "/reject": Route(reject=True),
            "/broken": Route(paid_status=500),
            "/forbidden": Route(paid_status=403),
            "/drop": Route(drop_paid=2),
            "/missing": Route(status=404, offers=()),
            "/sats": Route(offers=(Offer(amount="10", currency="sat"),)),
        }
    )


@pytest.fixture
def base_url(server: FakeMppServer) -> Iterator[str]:
    with server.serve() as url:
        yield url


# --- a real terminal ----------------------------------------------------------------------------


@dataclass
class Terminal:
    """A process on a pty: everything it writes (stdout and stderr) is in ``output``."""

    process: subprocess.Popen[bytes]
    fd: int
    output: bytes = b""

    def read_until(self, marker: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{marker!r} not seen in {self.output!r}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{marker!r} not seen before EOF: {self.output!r}")
                self.output += chunk
        return self.output

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def finish(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if chunk:
                    self.output += chunk
                    continue
                # EOF (EIO on Linux): every writer has gone, the process is ending.
                return self.process.wait(max(0.1, deadline - time.monotonic()))
            code = self.process.poll()
            if code is not None:
                return code
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"timed out; output so far: {self.output!r}")


def _take_terminal() -> None:
    # A new session whose controlling terminal is the pty on stdin, so /dev/tty (prompts,
    # getpass) is this pty, as in a user's shell.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def terminal() -> Iterator[object]:
    """``terminal(mpp, *args)`` starts ``mpp`` on a new pty (its controlling terminal)."""
    started: list[Terminal] = []

    def start(runner: Mpp, *args: str, env: dict[str, str] | None = None) -> Terminal:
        primary, secondary = pty.openpty()
        process = subprocess.Popen(
            runner.argv(*args),
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env={**runner.env, **(env or {}), "TERM": "xterm"},
            cwd=runner.home,
            preexec_fn=_take_terminal,
        )
        os.close(secondary)
        term = Terminal(process, primary)
        started.append(term)
        return term

    yield start
    for term in started:
        if term.process.poll() is None:
            term.process.kill()
            term.process.wait()
        os.close(term.fd)
