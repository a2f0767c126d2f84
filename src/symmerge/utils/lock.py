"""Exclusive locks on output directories (a zoo's shard folder, a training run).

One process at a time may build a zoo into ``<out>.shards/`` or train into a run
directory. :class:`DirectoryLock` takes an advisory ``flock`` on a lock file
inside the directory; the kernel releases it when the holding process dies,
whatever the signal, so a killed run never leaves a stale lock. A second
process gets one :class:`~symmerge.errors.SymmergeError` naming the holder
(its PID, host, command and start time, which the holder writes into the file).

Forked children inherit the lock's file description, so the lock stays held
while any of them lives: a builder's leftover workers keep out a new run
until they are gone.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from symmerge.errors import SymmergeError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".symmerge.lock"


def _try_lock(f: IO[str]) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows

    try:  # pragma: no cover - Windows
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:  # pragma: no cover - Windows
        return False
    return True  # pragma: no cover - Windows


def lock_holder(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the holder of ``directory``'s lock wrote about itself (None if unknown)."""
    try:
        data = json.loads((Path(directory) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    started = holder.get("started")
    when = (time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started))
            if isinstance(started, int | float) else "")
    cmd = holder.get("command")
    return (f"process {holder.get('pid', '?')} on {holder.get('host', '?')}{when}"
            + (f" ({cmd})" if cmd else ""))


class DirectoryLock:
    """Exclusive lock on ``directory`` (created if missing), as a context manager.

    ``what`` names the directory in the error, e.g. ``"run directory runs/a"``.
    """

    def __init__(self, directory: str | os.PathLike[str], what: str | None = None) -> None:
        self.directory = Path(directory)
        self.what = what or str(self.directory)
        self._file: IO[str] | None = None

    @property
    def path(self) -> Path:
        return self.directory / LOCK_NAME

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> DirectoryLock:
        if self._file is not None:
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while held
        except OSError as exc:
            raise SymmergeError(f"cannot lock {self.what}: {exc.strerror or exc}") from exc
        if not _try_lock(f):
            f.close()
            raise SymmergeError(
                f"{self.what} is in use by {_describe(lock_holder(self.directory))}; "
                "wait for it to finish or stop it first"
            )
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "command": " ".join(os.path.basename(a) if i == 0 else a
                                      for i, a in enumerate(sys.argv))[:200]}
        f.seek(0)
        f.truncate()
        f.write(json.dumps(holder))
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
