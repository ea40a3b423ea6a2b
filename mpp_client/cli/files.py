"""The files ``mpp`` writes (the config file, the spend policy): replaced whole, atomically,
and only once the new text has been read back and accepted.

A write goes to a temporary file in the same directory (so the rename cannot cross file
systems), is flushed and fsynced, checked by the caller's ``check`` (which parses the temporary
file exactly as the next ``mpp`` command will), and only then renamed over the old file with
``os.replace``; the directory is fsynced so the rename survives a crash. When anything fails,
the temporary file is removed and the old file is untouched: a failed ``mpp budget set`` can
never leave a policy that no longer loads.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, text: str, *, check: Callable[[Path], None]) -> None:
    """Replace ``path`` with ``text`` (UTF-8, mode 0600; the directory is created 0700).

    ``check(temporary_path)`` must raise when the written file is not what was meant; then
    ``path`` is left as it was and the exception propagates.
    """
    # Encode first: text that cannot be UTF-8 (a lone surrogate from an undecodable argument)
    # fails here, before any file is touched.
    data = text.encode("utf-8")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0600 with a unique name, so two concurrent writers never share
    # a temporary file.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        check(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk. Not every platform can
    # open a directory (Windows cannot); there the rename is as durable as the OS makes it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
