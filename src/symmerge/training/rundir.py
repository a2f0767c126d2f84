"""A training call's hold on its run directory: the lock, and no half-made run left behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

from symmerge.errors import SymmergeError
from symmerge.utils.io import check_output_path
from symmerge.utils.lock import DirectoryLock


def last_checkpoint(run: str | os.PathLike[str]) -> Path:
    """Where a run keeps the checkpoint it resumes from (a run with one resumes)."""
    return Path(run) / "checkpoints" / "last.ckpt"


def check_run_dir(run: Path) -> None:
    """Raise unless ``run`` is a directory, or one that can be created, that this process
    can write (checked before any work)."""
    if run.exists() and not run.is_dir():
        raise SymmergeError(f"run directory {run} is an existing file")
    check_output_path(run / "config.yaml")


class RunDirectory:
    """Holds ``run`` for a training call's whole life (a context manager).

    The owner of the run (``owner``: the process that launches it, global rank 0) takes
    the run's :class:`~symmerge.utils.lock.DirectoryLock` on entry, so a second training
    into the same directory fails at once naming the first; the DDP workers of the run
    enter without it. If the call fails before the run has written its first checkpoint
    (nothing to resume from), the owner removes exactly what the call created: the
    directory (and parents) it made, or in a directory that existed, the new entries.
    """

    def __init__(self, run: Path, *, owner: bool) -> None:
        self.run = run
        self.owner = owner
        self._lock: DirectoryLock | None = None
        self._made: list[Path] = []  # missing directories, the run first, then its parents
        self._before: set[str] | None = None  # the entries of a directory that existed

    def __enter__(self) -> RunDirectory:
        if not self.owner:
            return self
        p = self.run
        while not p.exists():
            self._made.append(p)
            p = p.parent
        self._before = None if self._made else set(os.listdir(self.run))
        try:
            self._lock = DirectoryLock(self.run, f"run directory {self.run}").acquire()
        except SymmergeError:
            self._remove_made_dirs()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lock is None:
            return
        try:
            if exc_type is not None and not last_checkpoint(self.run).is_file():
                self._remove_created()
        finally:
            self._lock.release()
            self._lock = None

    def _remove_created(self) -> None:
        if self._before is None:
            shutil.rmtree(self.run, ignore_errors=True)
        else:
            for name in set(os.listdir(self.run)) - self._before:
                path = self.run / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        self._remove_made_dirs()

    def _remove_made_dirs(self) -> None:
        for d in self._made:  # innermost first; a directory someone filled meanwhile stays
            try:
                d.rmdir()
            except OSError:
                if d.exists():
                    break
