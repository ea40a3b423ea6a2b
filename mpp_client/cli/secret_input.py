"""Reading secrets from the user: a hidden prompt on the terminal, or standard input.

Never from the command line unless the user insists (``--insecure-secret-arg``): argv is
visible to every user of the machine (``ps``) and lands in shell history.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable

from mpp_client.cli.output import prompting
from mpp_client.wallet import Secret

__all__ = [
    "SecretInputError",
    "ask_on_terminal",
    "ask_passphrase",
    "read_new_passphrase",
    "read_secret",
    "terminal_available",
]

# Every prompt below runs inside ``prompting()``: a spinner (``mpp fetch``'s progress) is
# stopped and its line cleared while the question is on the terminal.


class SecretInputError(Exception):
    """No secret could be read (no terminal and nothing on standard input)."""


def terminal_available() -> bool:
    """Whether a controlling terminal can be opened for a prompt (``/dev/tty``)."""
    if os.name == "nt":
        return sys.stdin is not None and sys.stdin.isatty()
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def read_secret(
    prompt: str,
    *,
    argv_value: str | None = None,
    kind: str,
    prompt_function: Callable[[str], str] = getpass.getpass,
) -> Secret:
    """The secret, from (in order): ``argv_value`` (only when the user passed
    ``--insecure-secret-arg``), standard input when it is not a terminal (one line), or a hidden
    prompt on the terminal."""
    if argv_value is not None:
        value = argv_value
    elif sys.stdin is not None and not sys.stdin.isatty():
        value = sys.stdin.readline().rstrip("\r\n")
    elif terminal_available():
        with prompting():
            value = prompt_function(prompt)
    else:
        raise SecretInputError("no terminal to prompt on and nothing on standard input")
    value = value.strip()
    if not value:
        raise SecretInputError("the secret is empty")
    return Secret(value, kind)


def ask_passphrase(path: str) -> str:
    """Ask for the passphrase of the existing key file ``path`` (hidden, on the terminal)."""
    with prompting():
        return getpass.getpass(f"Passphrase for {path}: ")


def read_new_passphrase(path: str) -> str:
    """Ask twice for the passphrase of a new key file (on the terminal)."""
    if not terminal_available():
        raise SecretInputError(
            "no terminal to ask for a key file passphrase: set MPP_KEYSTORE_PASSPHRASE_FILE "
            "(or MPP_KEYSTORE_PASSPHRASE)"
        )
    with prompting():
        first = getpass.getpass(f"New passphrase for the key file {path}: ")
        if not first:
            raise SecretInputError("the passphrase is empty")
        again = getpass.getpass("Repeat the passphrase: ")
    if first != again:
        raise SecretInputError("the passphrases do not match")
    return first


def ask_on_terminal(question: str) -> bool:
    """Ask a yes/no ``question`` on the controlling terminal (not stdin, which may carry data);
    anything but ``y``/``yes`` is no, and so is having no terminal."""
    try:
        with (
            prompting(),
            open("/dev/tty", "w", encoding="utf-8") as out,
            open("/dev/tty", encoding="utf-8") as answer,
        ):
            out.write(f"{question} [y/N] ")
            out.flush()
            reply = answer.readline()
    except OSError:
        return False
    return reply.strip().lower() in ("y", "yes")
