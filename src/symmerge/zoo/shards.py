"""Chunked, resumable and multi-rank zoo building, shared by the INR and CNN builders.

A zoo of ``n`` networks is cut into chunks of ``chunk_size`` consecutive
networks. Every finished chunk is written atomically to
``<out>.shards/chunk-NNNNNN.safetensors``; the folder's ``manifest.json``,
written first, fingerprints the run (data, seed, hyperparameters, chunk size)
and names the folder's random run id, which every chunk carries and every read
checks (:class:`ShardStore`). A run holds the folder's
:class:`~symmerge.utils.lock.DirectoryLock` from start to end, so a second run
into the same ``out`` stops with one error naming the first. A killed run
loses at most the chunks in progress; rerunning the same command skips the
chunks on disk. With several ranks (``torchrun``: ``RANK``/``WORLD_SIZE`` in the
environment, gloo process group), rank ``r`` fits chunks ``r, r + W, ...``; at
the end the chunks are gathered on rank 0 (no shared filesystem needed), the
zoo is written atomically and the shard directory is removed. Within one
machine (or rank), chunks are fitted by single-threaded worker processes
(``workers``), which keep both cores busy without intra-op synchronization;
they die with the process that started them (even on ``kill -9``) and never
write into a folder that no longer holds their run.

Randomness is keyed by the global network index (:func:`derive_seed`), never by
the chunk or the rank, so chunking, resuming and ranks leave every network's
initialization and data order unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import queue as queue_mod
import re
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor
from tqdm.auto import tqdm

from symmerge.errors import SymmergeError
from symmerge.utils.io import atomic_path, check_output_path, read_text, save_safetensors
from symmerge.utils.lock import LOCK_NAME, DirectoryLock, lock_holder

C = TypeVar("C")

SHARD_FORMAT = "symmerge-shards/2"

#: ``progress(n_finished, metric_values_of_the_finished_networks)``; ``n`` may be
#: fractional (partial progress of networks still training, values ``None``)
Progress = Callable[[float, Tensor | None], None]
#: ``fit_chunk(chunk_index, global_item_indices, progress) -> {name: [len(items), ...]}``
FitChunk = Callable[[int, range, Progress], dict[str, Tensor]]


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed from ``seed`` and keys (e.g. ``("inr", network_index)``); platform-stable."""
    text = json.dumps([int(seed), *keys], separators=(",", ":"))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def generator_for(seed: int, *keys: int | str) -> torch.Generator:
    """A CPU generator seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


def tensor_digest(t: Tensor) -> str:
    """Short content hash of a tensor (used to fingerprint the training data)."""
    t = t.detach().contiguous().cpu()
    h = hashlib.blake2b(digest_size=16)
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def zoo_matches_run(path: Path, run: Mapping[str, Any]) -> bool:
    """True if ``path`` is a zoo whose provenance records exactly this ``run``."""
    from symmerge.zoo.io import Zoo

    if not path.is_file():
        return False
    try:
        provenance = Zoo(path).provenance
    except SymmergeError:
        return False
    wanted = json.loads(json.dumps(dict(run), sort_keys=True, default=str))
    return all(provenance.get(k) == v for k, v in wanted.items())


def shard_dir_for(out: str | os.PathLike[str]) -> Path:
    """Where the chunks of the zoo ``out`` are kept while it is being built."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


# ----------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    """This process's place in a multi-rank run (``world_size == 1``: single process)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


@contextlib.contextmanager
def distributed() -> Iterator[DistInfo]:
    """Join (or create) the process group of a ``torchrun`` launch; single process otherwise.

    A gloo group is created from the ``torchrun`` environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and destroyed on exit.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        yield DistInfo(dist.get_rank(), dist.get_world_size())
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield DistInfo()
        return
    if not dist.is_available():  # pragma: no cover - torch builds without distributed
        raise SymmergeError("WORLD_SIZE > 1 but torch.distributed is not available")
    try:
        dist.init_process_group("gloo")
    except (RuntimeError, ValueError) as exc:
        raise SymmergeError(f"cannot join the process group (gloo): {exc}") from exc
    try:
        yield DistInfo(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def _all_ok(info: DistInfo, error: SymmergeError | None) -> None:
    """Raise the first rank's error on every rank (keeps ranks from waiting on a dead peer)."""
    if info.active:
        import torch.distributed as dist

        errors: list[SymmergeError | None] = [None] * info.world_size
        dist.all_gather_object(errors, error)
        error = next((SymmergeError(f"rank {r}: {e}", params=e.params)
                      for r, e in enumerate(errors) if e is not None), None)
    if error is not None:
        raise error


# ----------------------------------------------------------------- shard store
MANIFEST = "manifest.json"
_CHUNK_NAME = re.compile(r"chunk-(\d{6,})\.safetensors")
#: hidden temporary files of ``atomic_path`` writes of chunks and manifests
_TEMP_PREFIXES = (".chunk-", f".{MANIFEST}.")
_FRESH = "rerun with fresh=True to discard the shard folder"
#: the parameter :data:`_FRESH` names (the CLI shows its flag)
_FRESH_PARAM = ("fresh",)


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


class ShardStore:
    """The manifest and chunk files of one zoo build, in ``directory`` (``<out>.shards/``).

    The manifest is written before any chunk. It fingerprints the run (``run``,
    the number of networks, the chunk size) and holds the folder's *run id*, a
    random id drawn when the folder is created. Every chunk file carries the run
    id, the fingerprint, its chunk index and its row count in its safetensors
    metadata; :meth:`open` checks every chunk on disk and :meth:`load` checks them
    again with the rows of every tensor. A chunk of another run or folder, a
    chunk of the wrong size, a folder without a manifest and an unreadable
    manifest are errors (``fresh=True`` discards the folder), never reused.

    The caller holds the folder's :class:`~symmerge.utils.lock.DirectoryLock`
    (:func:`run_chunked` does); :meth:`save` refuses to write once the folder no
    longer holds this run (deleted, or emptied by another run's ``fresh=True``).
    """

    def __init__(self, directory: Path, plan: ChunkPlan, run: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.plan = plan
        self.manifest: dict[str, Any] = _canonical({
            "format": SHARD_FORMAT, "run": dict(run), "n_items": plan.n_items,
            "chunk_size": plan.chunk_size,
        })
        text = json.dumps(self.manifest, sort_keys=True, separators=(",", ":"))
        self.fingerprint = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        self.run_id: str | None = None  # set by open()
        self.lock_pid: int | None = None  # the process holding the folder's lock, if known

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def chunk_path(self, chunk: int) -> Path:
        return self.directory / f"chunk-{chunk:06d}.safetensors"

    # ------------------------------------------------------------- the folder
    def open(self, *, fresh: bool, lock_pid: int | None = None) -> None:
        """Adopt the folder: create it with a new manifest, or check that it holds this run.

        ``fresh`` first empties the folder (except its lock file). Leftover
        temporary files of interrupted writes are removed, and every chunk on
        disk is checked. ``lock_pid``: the process that holds the folder's lock.
        """
        self.lock_pid = lock_pid
        if fresh and self.directory.is_dir():
            for entry in self.directory.iterdir():
                if entry.name != LOCK_NAME:
                    _remove_entry(entry)
        self._remove_temp_leftovers()
        found = self._read_manifest()
        if found is None:
            others = sorted(e.name for e in self._entries() if e.name != LOCK_NAME)
            if others:
                raise SymmergeError(
                    f"{self.directory} holds {', '.join(others[:3])}"
                    f"{' ...' if len(others) > 3 else ''} but no {MANIFEST}, so nothing shows "
                    f"which run wrote them; {_FRESH}", params=_FRESH_PARAM
                )
            self.run_id = secrets.token_hex(8)
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                with atomic_path(self.manifest_path) as tmp:
                    tmp.write_text(json.dumps({**self.manifest, "run_id": self.run_id,
                                               "fingerprint": self.fingerprint},
                                              indent=1, sort_keys=True))
            except OSError as exc:
                raise SymmergeError(f"cannot write {self.manifest_path}: {exc}") from exc
        else:
            self._check_manifest(found)
            self.run_id = found["run_id"]
        for entry in self._entries():
            match = _CHUNK_NAME.fullmatch(entry.name)
            if match is None:
                continue
            chunk = int(match.group(1))
            if chunk >= self.plan.n_chunks:
                raise SymmergeError(
                    f"{entry} is not a chunk of this run ({self.plan.n_chunks} chunks); {_FRESH}",
                    params=_FRESH_PARAM,
                )
            self._read(chunk, tensors=False)

    def _entries(self) -> list[Path]:
        return list(self.directory.iterdir()) if self.directory.is_dir() else []

    def _remove_temp_leftovers(self) -> None:
        """Temporary files of writes killed before their rename (the lock keeps out live ones)."""
        for entry in self._entries():
            if entry.name.startswith(_TEMP_PREFIXES) and entry.name.endswith(".tmp"):
                entry.unlink(missing_ok=True)

    def _read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            found = json.loads(read_text(self.manifest_path, "shard manifest"))
        except SymmergeError as exc:
            raise SymmergeError(f"{exc}; {_FRESH}", params=_FRESH_PARAM) from exc
        except json.JSONDecodeError as exc:
            raise SymmergeError(f"unreadable shard manifest {self.manifest_path}: {exc}; "
                                f"{_FRESH}", params=_FRESH_PARAM) from exc
        if not isinstance(found, dict) or found.get("format") != SHARD_FORMAT or not isinstance(
            found.get("run_id"), str
        ):
            fmt = found.get("format") if isinstance(found, dict) else None
            raise SymmergeError(
                f"{self.manifest_path} is not a shard manifest of this symmerge (format "
                f"{fmt!r}, expected {SHARD_FORMAT!r}); {_FRESH}", params=_FRESH_PARAM
            )
        return found

    def _check_manifest(self, found: dict[str, Any]) -> None:
        wanted = self.manifest
        run_found, run_wanted = found.get("run") or {}, wanted["run"]
        if not isinstance(run_found, dict):
            run_found = {}
        diff = sorted(k for k in set(run_found) | set(run_wanted)
                      if run_found.get(k) != run_wanted.get(k))
        diff += [{"n_items": "number of networks", "chunk_size": "chunk_size"}[k]
                 for k in ("n_items", "chunk_size") if found.get(k) != wanted[k]]
        if diff or found.get("fingerprint") != self.fingerprint:
            raise SymmergeError(
                f"{self.directory} holds chunks of a different run (differs in "
                f"{', '.join(diff) or 'fingerprint'}); rerun with fresh=True to discard them",
                params=(*diff, *_FRESH_PARAM),
            )

    def read_run_id(self) -> str | None:
        """The run id in the folder's manifest, or None if there is no readable manifest."""
        try:
            found = self._read_manifest()
        except SymmergeError:
            return None
        return None if found is None else found["run_id"]

    def check_ours(self) -> None:
        """Raise unless the folder still holds this run (same run id, lock still ours)."""
        holder = lock_holder(self.directory) if self.lock_pid is not None else None
        if self.run_id is None or self.read_run_id() != self.run_id or (
            self.lock_pid is not None and (holder or {}).get("pid") != self.lock_pid
        ):
            raise SymmergeError(
                f"{self.directory} no longer holds this run (removed, or taken over by "
                "another run); stopped without writing to it"
            )

    def remove(self) -> None:
        """Delete the folder: its contents, then the lock file, then the folder itself."""
        entries = self._entries()
        for entry in sorted(entries, key=lambda e: e.name == LOCK_NAME):
            _remove_entry(entry)
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # fails harmlessly if another run has just locked it anew

    # ------------------------------------------------------------- the chunks
    def has(self, chunk: int) -> bool:
        return self.chunk_path(chunk).is_file()

    def save(self, chunk: int, tensors: Mapping[str, Tensor]) -> None:
        """Write a chunk (its rows checked) with its identity in the metadata."""
        rows = len(self.plan.items(chunk))
        bad = [k for k, v in tensors.items() if v.ndim == 0 or v.shape[0] != rows]
        if bad:
            raise RuntimeError(f"chunk {chunk}: tensors {bad} do not have {rows} rows")
        self.check_ours()
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_safetensors(self.chunk_path(chunk), data, {
            "format": SHARD_FORMAT, "run_id": str(self.run_id), "fingerprint": self.fingerprint,
            "chunk": str(chunk), "rows": str(rows),
        })

    def load(self, chunk: int) -> dict[str, Tensor]:
        """A chunk's tensors, after checking that it is this run's chunk ``chunk``, complete."""
        return self._read(chunk, tensors=True)

    def _read(self, chunk: int, *, tensors: bool) -> dict[str, Tensor]:
        path = self.chunk_path(chunk)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118
                data = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            raise SymmergeError(f"corrupt shard {path} ({exc}); delete it and rerun") from exc
        rows = len(self.plan.items(chunk))
        problem = None
        if meta.get("format") != SHARD_FORMAT or "run_id" not in meta:
            problem = "was not written by this symmerge's zoo builder"
        elif meta["run_id"] != self.run_id:
            problem = (f"belongs to another run (run id {meta['run_id']}, this folder's is "
                       f"{self.run_id})")
        elif meta.get("fingerprint") != self.fingerprint:
            problem = "was fitted with a different configuration"
        elif meta.get("chunk") != str(chunk):
            problem = f"holds chunk {meta.get('chunk')}, not {chunk}"
        elif meta.get("rows") != str(rows):
            problem = f"holds {meta.get('rows')} networks, chunk {chunk} has {rows}"
        else:
            short = [f"{k} {shape}" for k, shape in shapes.items() if shape[:1] != [rows]]
            if short or not shapes:
                problem = (f"has tensors without {rows} rows: {', '.join(short)}" if short
                           else "holds no tensors")
        if problem:
            raise SymmergeError(f"shard {path} {problem}; {_FRESH}", params=_FRESH_PARAM)
        return data


def _remove_entry(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _lock_and_open(store: ShardStore, fresh: bool) -> DirectoryLock:
    """Lock the shard folder (one clear error if another process holds it) and open it."""
    existed = store.directory.exists()
    lock = DirectoryLock(store.directory, f"shard folder {store.directory}").acquire()
    try:
        store.open(fresh=fresh, lock_pid=os.getpid())
    except BaseException:
        if not existed:
            store.remove()
        lock.release()
        raise
    return lock


def _open_shards(store: ShardStore, info: DistInfo, fresh: bool) -> DirectoryLock | None:
    """Lock and open the shard folder on every rank; returns this rank's lock (or None).

    Rank 0 goes first (so ``fresh=True`` cannot race the others). A rank that finds
    rank 0's folder (a shared filesystem) uses it under rank 0's lock; a rank with
    a folder of its own locks and opens that.
    """
    lock, error = None, None
    try:
        if info.is_main:
            try:
                lock = _lock_and_open(store, fresh)
            except SymmergeError as exc:
                error = exc
        _all_ok(info, error)
        if info.active:
            import torch.distributed as dist

            main_run = [store.run_id]
            dist.broadcast_object_list(main_run, src=0)
            if not info.is_main:
                try:
                    if store.read_run_id() == main_run[0]:
                        store.open(fresh=False)
                    else:
                        lock = _lock_and_open(store, fresh)
                except SymmergeError as exc:
                    error = exc
            _all_ok(info, error)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return lock


# ----------------------------------------------------------------- local workers
#: ``prctl`` option: the signal a process gets when the thread that forked it dies (Linux)
PR_SET_PDEATHSIG = 1
_WORKER: dict[str, Any] = {}


def die_with_parent(parent: int, interval: float = 0.5) -> None:
    """Make this (worker) process die as soon as ``parent`` dies, however it dies.

    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``,
    effective even for ``kill -9`` of the parent); elsewhere, and as a fallback, a
    daemon thread polls :func:`os.getppid` (an orphan is re-parented) every
    ``interval`` seconds. A parent already gone ends this process at once.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="symmerge-parent-watch", daemon=True).start()


def _worker_init(progress_queue: Any, threads: int, fit_chunk: FitChunk, store: ShardStore,
                 parent: int) -> None:
    die_with_parent(parent)
    _WORKER.update(queue=progress_queue, fit_chunk=fit_chunk, store=store, parent=parent)
    torch.set_num_threads(threads)


def _worker_progress(n: float, values: Tensor | None = None) -> None:
    _WORKER["queue"].put((n, None if values is None else values.detach().cpu().tolist()))


def _worker_fit(chunk: int, items: range) -> int:
    tensors = _WORKER["fit_chunk"](chunk, items, _worker_progress)
    if os.getppid() != _WORKER["parent"]:
        os._exit(1)  # the run is gone: write nothing
    _WORKER["store"].save(chunk, tensors)  # checks that the folder still holds this run
    return chunk


def _fit_in_workers(
    todo: list[int], plan: ChunkPlan, fit_chunk: FitChunk, store: ShardStore, bar: _Bar,
    workers: int,
) -> None:
    """Fit chunks in ``workers`` processes (no intra-op barriers between cores).

    Forked on Linux (fast start; ``fit_chunk`` and its data are inherited, not
    pickled; each worker resets its thread count, as DataLoader workers do),
    spawned elsewhere (``fit_chunk`` must then be picklable). The workers die
    with this process (:func:`die_with_parent`); if fitting fails or is
    interrupted here, they are killed before the error propagates, so no worker
    outlives or writes after its run.
    """
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    progress_queue = ctx.Queue()
    threads = max(1, torch.get_num_threads() // workers)
    others = set(mp.active_children())

    def drain() -> None:
        while True:
            try:
                n, values = progress_queue.get_nowait()
            except queue_mod.Empty:
                return
            bar(n, None if values is None else torch.tensor(values))

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(progress_queue, threads, fit_chunk, store,
                                       os.getpid())) as pool:
        pending: set[Future[int]] = {pool.submit(_worker_fit, c, plan.items(c)) for c in todo}
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                drain()
                for f in finished:
                    f.result()  # re-raise a worker's error
        except BaseException:
            for f in pending:
                f.cancel()
            for proc in set(mp.active_children()) - others:  # this pool's workers
                proc.kill()
            raise
        drain()


# ----------------------------------------------------------------- the driver
@dataclass(frozen=True)
class ChunkPlan:
    """``n_items`` networks in chunks of ``chunk_size`` consecutive indices."""

    n_items: int
    chunk_size: int

    def __post_init__(self) -> None:
        if self.n_items <= 0:
            raise SymmergeError(f"number of networks must be positive, got {self.n_items}")
        if self.chunk_size <= 0:
            raise SymmergeError(f"chunk_size must be positive, got {self.chunk_size}")

    @property
    def n_chunks(self) -> int:
        return -(-self.n_items // self.chunk_size)

    def items(self, chunk: int) -> range:
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.n_items))

    def chunks_of(self, info: DistInfo) -> list[int]:
        return list(range(info.rank, self.n_chunks, info.world_size))


class _Bar:
    """tqdm over networks with a running mean of one metric in the postfix."""

    def __init__(
        self, total: int, desc: str, metric: str | None, enabled: bool, initial: int = 0
    ) -> None:
        fmt = "{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
        # ``initial``: networks of chunks already on disk (not counted in the rate)
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="net",
                        disable=not enabled, smoothing=0.1, dynamic_ncols=True, bar_format=fmt)
        self.metric, self.sum, self.count = metric, 0.0, 0

    def __call__(self, n: float, values: Tensor | None = None) -> None:
        if values is not None and self.metric and values.numel():
            finite = values[torch.isfinite(values)]
            self.sum += float(finite.sum())
            self.count += int(finite.numel())
            if self.count:
                self.bar.set_postfix_str(f"mean {self.metric} {self.sum / self.count:.2f}",
                                         refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def run_chunked(
    out: str | os.PathLike[str],
    plan: ChunkPlan,
    run: Mapping[str, Any],
    fit_chunk: FitChunk,
    assemble: Callable[[dict[str, Tensor]], Path],
    *,
    desc: str = "zoo",
    progress_metric: str | None = None,
    progress: bool = True,
    fresh: bool = False,
    keep_shards: bool = False,
    max_chunks: int | None = None,
    workers: int | None = None,
) -> Path | None:
    """Fit every chunk of ``plan`` not yet on disk, then assemble the zoo on rank 0.

    ``run`` fingerprints everything that determines the result (stored in the
    manifest; a mismatch with an existing shard directory is an error unless
    ``fresh``, which empties it first). The shard directory stays locked from
    start to end, assembling included: a second run into the same ``out`` stops
    with an error naming this one. ``assemble`` gets the concatenated chunk
    tensors and writes the zoo. ``max_chunks`` stops after fitting that many chunks in this call
    (returns ``None`` without assembling), for time-limited jobs. ``workers > 1``
    fits chunks in that many local processes, each with
    ``torch.get_num_threads() // workers`` threads;
    ``None`` means one single-threaded worker per torch thread. If ``out`` is
    already a zoo whose provenance records ``run`` (and ``fresh`` is off),
    nothing is refitted. Returns the zoo path, or ``None`` if the zoo is not
    complete yet.
    """
    if workers is not None and workers <= 0:
        raise SymmergeError(f"workers must be positive, got {workers}")
    if max_chunks is not None and max_chunks <= 0:
        raise SymmergeError(f"max_chunks must be positive, got {max_chunks}")
    out = check_output_path(out)
    if not fresh and not shard_dir_for(out).exists() and zoo_matches_run(out, run):
        return out  # already built by this very run
    with distributed() as info:
        store = ShardStore(shard_dir_for(out), plan, run)
        lock = _open_shards(store, info, fresh)
        try:  # the lock is held until the zoo is written and the shard folder removed
            done = _fit_chunks(store, info, fit_chunk, desc=desc, progress_metric=progress_metric,
                               progress=progress, max_chunks=max_chunks, workers=workers)
            if not done:
                return None
            _gather_and_assemble(store, info, assemble)
            if not keep_shards:
                store.remove()
        finally:
            if lock is not None:
                lock.release()
    return out


def _fit_chunks(store: ShardStore, info: DistInfo, fit_chunk: FitChunk, *, desc: str,
                progress_metric: str | None, progress: bool, max_chunks: int | None,
                workers: int | None) -> bool:
    """Fit this rank's missing chunks (at most ``max_chunks``); True if all ranks are done."""
    plan = store.plan
    mine = plan.chunks_of(info)
    todo = [c for c in mine if not store.has(c)]
    done_items = sum(len(plan.items(c)) for c in mine if c not in todo)
    bar = _Bar(sum(len(plan.items(c)) for c in mine), desc, progress_metric,
               progress and info.is_main, initial=done_items)
    batch = todo if max_chunks is None else todo[:max_chunks]
    try:
        if done_items and progress_metric and info.is_main:
            for c in mine:
                if c not in todo:
                    vals = store.load(c).get(progress_metric)
                    bar.sum += float(vals.sum()) if vals is not None else 0.0
                    bar.count += vals.numel() if vals is not None else 0
        n_workers = min(torch.get_num_threads() if workers is None else workers, len(batch))
        if n_workers > 1:
            _fit_in_workers(batch, plan, fit_chunk, store, bar, n_workers)
        else:
            for c in batch:
                store.save(c, fit_chunk(c, plan.items(c), bar))
    finally:
        bar.close()
    complete = len(batch) == len(todo)
    if info.active:
        import torch.distributed as dist

        flags: list[bool] = [False] * info.world_size
        dist.all_gather_object(flags, complete)
        complete = all(flags)
    return complete


def _gather_and_assemble(store: ShardStore, info: DistInfo,
                         assemble: Callable[[dict[str, Tensor]], Path]) -> None:
    """Gather every chunk on rank 0 (no shared filesystem needed) and assemble the zoo there."""
    plan = store.plan
    local = {c: store.load(c) for c in plan.chunks_of(info)}
    if info.active:
        import torch.distributed as dist

        gathered: list[dict[int, dict[str, Tensor]]] | None = (
            [{} for _ in range(info.world_size)] if info.is_main else None
        )
        dist.gather_object(local, gathered, dst=0)
        if info.is_main:
            local = {c: t for part in gathered or [] for c, t in part.items()}
    error = None
    if info.is_main:
        try:
            missing = [c for c in range(plan.n_chunks) if c not in local]
            if missing:
                raise SymmergeError(f"chunks {missing[:5]} are missing; rerun to fit them")
            names = list(local[0])
            assemble({k: torch.cat([local[c][k] for c in range(plan.n_chunks)]) for k in names})
        except SymmergeError as exc:
            error = exc
    _all_ok(info, error)


def preset_config(presets: Mapping[str, C], config: C | str | None, what: str,
                  **overrides: Any) -> C:
    """``presets[config]`` (``"default"`` if None) or ``config`` itself, with the
    non-None ``overrides`` applied (a frozen-dataclass ``replace``)."""
    if config is None:
        config = "default"
    if isinstance(config, str):
        if config not in presets:
            raise SymmergeError(
                f"unknown {what} preset {config!r}; choose one of {', '.join(presets)}"
            )
        config = presets[config]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **overrides) if overrides else config
