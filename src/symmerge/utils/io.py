"""Atomic file writes and path checks."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from symmerge.errors import SymmergeError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A failure (or interrupt) inside the block removes the temporary file, so no
    half-written output is ever visible under the final name. The temporary file is
    ``.NAME.HOST.PID.RANDOM.tmp``: a writer killed before its rename (``kill -9``, power
    loss) leaves it behind, and the next write to ``path`` removes it once no process
    ``PID`` runs on this host (:func:`remove_stale_temps`).
    """
    target = Path(path)
    if target.is_dir():
        raise SymmergeError(f"output path {target} is a directory; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SymmergeError(f"cannot create output directory {parent}: {exc}") from exc
    if not parent.is_dir():
        raise SymmergeError(f"cannot write {target}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise SymmergeError(f"output directory {parent} is not writable")
    remove_stale_temps(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(target)}{os.getpid()}.",
                                   suffix=".tmp", dir=parent)
    except OSError as exc:
        raise SymmergeError(f"cannot write {target}: {exc.strerror or exc}") from exc
    _usual_mode(lambda mode: os.fchmod(fd, mode))  # mkstemp creates 0600
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _host() -> str:
    """This machine's name as it appears in temporary file names (no dots)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{_host()}."


def _process_gone(pid: int) -> bool:
    """True only if no process ``pid`` exists on this machine (POSIX; elsewhere never)."""
    if os.name != "posix" or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but belongs to another user (or cannot be asked): keep
        return False
    return False


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left beside ``path`` when its writer
    died before renaming them; returns the files removed.

    Only files named exactly as :func:`atomic_path` names them for ``path`` on this host
    are considered, and only those whose writer process is gone: another live writer's
    file (this process's included) is never touched.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    stale = re.compile(re.escape(_temp_prefix(target)) + r"(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = stale.fullmatch(entry.name)
        if match and _process_gone(int(match[1])) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):  # gone already, or not ours to remove
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def check_output_path(out: str | os.PathLike[str]) -> Path:
    """Fail early (before any work) if ``out`` cannot be written."""
    path = Path(out)
    if path.is_dir():
        raise SymmergeError(
            f"output {path} is a directory; give a file name such as zoo.safetensors"
        )
    _check_creatable(path.parent if str(path.parent) else Path("."))
    return path


def check_output_dir(out: str | os.PathLike[str]) -> Path:
    """Fail early (before any work) if the directory ``out`` can be neither used nor made:
    it is a file, lies under one, or its nearest existing folder is not writable."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SymmergeError(f"output {path} exists and is not a directory")
    _check_creatable(path)
    return path


def _check_creatable(directory: Path) -> None:
    """Refuse ``directory`` if its nearest existing ancestor (itself included) is a file
    or not writable, so that it can neither be used nor made."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise SymmergeError(
            f"cannot create output directory {directory}: {probe} is not a directory"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SymmergeError(f"output directory {probe} is not writable")


def save_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """``safetensors.torch.save_file`` through :func:`atomic_path`.

    The header's metadata is rewritten in sorted key order (safetensors writes it in
    a per-process hash order), so the same tensors and metadata give the same bytes,
    and the file gets the usual mode (the writer creates it 0600).
    """
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=dict(metadata) if metadata else None)
        _sort_metadata(tmp)
        _usual_mode(lambda mode: os.chmod(tmp, mode))
    return Path(path)


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The metadata of a safetensors file (``{}`` if it has none), or None when ``path``
    cannot be read as one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return None


def _sort_metadata(path: Path) -> None:
    with path.open("r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        meta = header.get("__metadata__")
        if not meta:
            return
        header["__metadata__"] = dict(sorted(meta.items()))
        raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(raw) <= n:  # the same JSON reordered: never longer; pad as the writer does
            f.seek(8)
            f.write(raw.ljust(n))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: lines of torch's weights-only error text that are advice, not the reason
_TORCH_ADVICE = ("(1)", "(2)", "Check the documentation", "Please file an issue",
                 "Re-running `torch.load`")


def error_summary(exc: BaseException) -> str:
    """``Type: first line of the message`` (terminal colour codes removed)."""
    lines = _ANSI.sub("", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def load_weights_only(path: str | os.PathLike[str], what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; an unreadable or unsafe file is one
    :class:`SymmergeError` with torch's reason (without its advice to disable the check)."""
    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles: the error says enough
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for unreadable or unsafe files
        lines = [ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()]
        if lines and lines[0].startswith("Weights only load failed"):
            # torch's first line advises disabling the check; the reason follows it
            reasons = [ln for ln in lines[1:] if not ln.startswith(_TORCH_ADVICE)]
            reason = reasons[0] if reasons else "not a plain tensor file"
            reason = reason.removeprefix("WeightsUnpickler error:").strip()
            msg = f"not loadable with torch.load(weights_only=True): {reason.split('. ')[0]}"
        else:
            msg = error_summary(exc)
        raise SymmergeError(f"cannot read {what} {path}: {msg}") from exc


def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly racy with other threads)
    os.umask(mask)
    return mask


def _usual_mode(chmod: Any) -> None:
    """Give a new output the mode ``open()`` would (0666 less the umask), where the
    platform and filesystem allow it; a refusal leaves the file as it is."""
    with contextlib.suppress(OSError, AttributeError, NotImplementedError):
        chmod(0o666 & ~_umask())


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """The text of a UTF-8 file; a missing, unreadable or binary file is one
    :class:`SymmergeError` naming ``what`` and the path."""
    p = Path(path)
    if not p.is_file():
        raise SymmergeError(f"{what} not found: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SymmergeError(f"cannot read {what} {p}: not a text file (binary content)") from None
    except OSError as exc:
        raise SymmergeError(f"cannot read {what} {p}: {exc.strerror or exc}") from exc


def require_finite(t: Any, what: str) -> None:
    """Raise a :class:`SymmergeError` naming ``what`` if tensor ``t`` holds NaN or Inf
    (for a ``[N, ...]`` tensor, also how many rows and the first)."""
    import torch

    if not isinstance(t, torch.Tensor):  # numbers, arrays: checked on the CPU
        t = torch.as_tensor(t, device="cpu")
    if not (t.is_floating_point() or t.is_complex()):
        return
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        where = ""
        if t.ndim >= 2:
            rows = bad.reshape(t.shape[0], -1).any(1).nonzero().flatten()
            where = f" in {rows.numel()} of {t.shape[0]} rows (first: row {int(rows[0])})"
        raise SymmergeError(f"{what} holds {int(bad.sum())} non-finite values (NaN or Inf)"
                            + where)


def require_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a SymmergeError naming what is missing."""
    p = Path(path)
    if not p.is_file():
        raise SymmergeError(f"{what} not found: {p}")
    return p
