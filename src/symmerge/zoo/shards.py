"""Chunked, resumable and multi-rank zoo building, shared by the INR and CNN builders.

A zoo of ``n`` networks is cut into chunks of ``chunk_size`` consecutive
networks. Every finished chunk is written atomically to
``<out>.shards/chunk-NNNNNN.safetensors``, next to a ``manifest.json`` that
fingerprints the run (data, seed, hyperparameters, chunk size). A killed run
loses at most the chunk in progress; rerunning the same command skips the
chunks on disk. With several ranks (``torchrun``: ``RANK``/``WORLD_SIZE`` in the
environment, gloo process group), rank ``r`` fits chunks ``r, r + W, ...``; at
the end the chunks are gathered on rank 0 (no shared filesystem needed), the
zoo is written atomically and the shard directory is removed. Within one
machine (or rank), chunks are fitted by single-threaded worker processes
(``workers``), which keep both cores busy without intra-op synchronization.

Randomness is keyed by the global network index (:func:`derive_seed`), never by
the chunk or the rank, so chunking, resuming and ranks leave every network's
initialization and data order unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor
from tqdm.auto import tqdm

from symmerge.errors import SymmergeError
from symmerge.utils.io import atomic_path, check_output_path, read_text, save_safetensors

C = TypeVar("C")

SHARD_FORMAT = "symmerge-shards/1"

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


def _all_ok(info: DistInfo, error: str | None) -> None:
    """Raise the first rank's error on every rank (keeps ranks from waiting on a dead peer)."""
    if info.active:
        import torch.distributed as dist

        errors: list[str | None] = [None] * info.world_size
        dist.all_gather_object(errors, error)
        error = next((f"rank {r}: {e}" for r, e in enumerate(errors) if e), None)
    if error:
        raise SymmergeError(error)


# ----------------------------------------------------------------- shard store
class ShardStore:
    """The chunk files and manifest of one zoo build."""

    def __init__(self, directory: Path, manifest: Mapping[str, Any]) -> None:
        self.directory = directory
        self.manifest = {"format": SHARD_FORMAT, **manifest}

    def chunk_path(self, chunk: int) -> Path:
        return self.directory / f"chunk-{chunk:06d}.safetensors"

    def open(self, *, fresh: bool) -> None:
        """Create the directory and manifest, or check that an existing one is this run's."""
        if fresh and self.directory.exists():
            shutil.rmtree(self.directory)
        manifest_path = self.directory / "manifest.json"
        wanted = json.loads(json.dumps(self.manifest, sort_keys=True, default=str))
        if manifest_path.is_file():
            try:
                found = json.loads(read_text(manifest_path, "shard manifest"))
            except (OSError, json.JSONDecodeError) as exc:
                raise SymmergeError(f"unreadable shard manifest {manifest_path}: {exc}") from exc
            if found != wanted:
                diff = sorted(
                    k for k in set(found.get("run", {})) | set(wanted.get("run", {}))
                    if found.get("run", {}).get(k) != wanted.get("run", {}).get(k)
                ) + [k for k in ("n_items", "chunk_size") if found.get(k) != wanted.get(k)]
                diff = [{"n_items": "number of networks", "chunk_size": "--chunk-size"}.get(k, k)
                        for k in diff] or ["format"]
                raise SymmergeError(
                    f"{self.directory} holds chunks of a different run (differs in "
                    f"{', '.join(diff)}); rerun with --fresh to discard them"
                )
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SymmergeError(f"cannot create shard directory {self.directory}: {exc}") from exc
        with atomic_path(manifest_path) as tmp:
            tmp.write_text(json.dumps(wanted, indent=1, sort_keys=True))

    def has(self, chunk: int) -> bool:
        return self.chunk_path(chunk).is_file()

    def save(self, chunk: int, tensors: Mapping[str, Tensor]) -> None:
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_safetensors(self.chunk_path(chunk), data, {"chunk": str(chunk)})

    def load(self, chunk: int) -> dict[str, Tensor]:
        try:
            return load_file(str(self.chunk_path(chunk)))
        except (SafetensorError, OSError) as exc:
            raise SymmergeError(
                f"corrupt shard {self.chunk_path(chunk)} ({exc}); delete it and rerun"
            ) from exc

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


# ----------------------------------------------------------------- local workers
_WORKER: dict[str, Any] = {}


def _worker_init(progress_queue: Any, threads: int, fit_chunk: FitChunk, store: ShardStore) -> None:
    _WORKER.update(queue=progress_queue, fit_chunk=fit_chunk, store=store)
    torch.set_num_threads(threads)


def _worker_progress(n: float, values: Tensor | None = None) -> None:
    _WORKER["queue"].put((n, None if values is None else values.detach().cpu().tolist()))


def _worker_fit(chunk: int, items: range) -> int:
    tensors = _WORKER["fit_chunk"](chunk, items, _worker_progress)
    _check_rows(chunk, items, tensors)
    _WORKER["store"].save(chunk, tensors)
    return chunk


def _check_rows(chunk: int, items: range, tensors: Mapping[str, Tensor]) -> None:
    bad = [k for k, v in tensors.items() if v.shape[0] != len(items)]
    if bad:
        raise RuntimeError(f"chunk {chunk}: tensors {bad} do not have {len(items)} rows")


def _fit_in_workers(
    todo: list[int], plan: ChunkPlan, fit_chunk: FitChunk, store: ShardStore, bar: _Bar,
    workers: int,
) -> None:
    """Fit chunks in ``workers`` processes (no intra-op barriers between cores).

    Forked on Linux (fast start; ``fit_chunk`` and its data are inherited, not
    pickled; each worker resets its thread count, as DataLoader workers do),
    spawned elsewhere (``fit_chunk`` must then be picklable).
    """
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    progress_queue = ctx.Queue()
    threads = max(1, torch.get_num_threads() // workers)

    def drain() -> None:
        while True:
            try:
                n, values = progress_queue.get_nowait()
            except queue_mod.Empty:
                return
            bar(n, None if values is None else torch.tensor(values))

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(progress_queue, threads, fit_chunk, store)) as pool:
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
            raise
        finally:
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
            raise SymmergeError(f"chunk size must be positive, got {self.chunk_size}")

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
    ``fresh``). ``assemble`` gets the concatenated chunk tensors and writes the
    zoo. ``max_chunks`` stops after fitting that many chunks in this call
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
        store = ShardStore(
            shard_dir_for(out),
            {"run": dict(run), "n_items": plan.n_items, "chunk_size": plan.chunk_size},
        )
        # Rank 0 prepares the directory first (so --fresh cannot race the others).
        error = None
        if info.is_main:
            try:
                store.open(fresh=fresh)
            except SymmergeError as exc:
                error = str(exc)
        _all_ok(info, error)
        if not info.is_main:
            try:
                store.open(fresh=False)
            except SymmergeError as exc:
                error = str(exc)
        _all_ok(info, error)

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
                    items = plan.items(c)
                    tensors = fit_chunk(c, items, bar)
                    _check_rows(c, items, tensors)
                    store.save(c, tensors)
        finally:
            bar.close()
        complete = len(batch) == len(todo)
        if info.active:
            import torch.distributed as dist

            flags: list[bool] = [False] * info.world_size
            dist.all_gather_object(flags, complete)
            complete = all(flags)
        if not complete:
            return None

        # Gather every chunk on rank 0 (works without a shared filesystem).
        local = {c: store.load(c) for c in mine}
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
                merged = {k: torch.cat([local[c][k] for c in range(plan.n_chunks)]) for k in names}
                assemble(merged)
            except SymmergeError as exc:
                error = str(exc)
        _all_ok(info, error)
        if not keep_shards:
            store.remove()
    return out


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
