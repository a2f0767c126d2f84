"""The generic chunk/resume/worker machinery of zoo builders: resume, run identity and
checks of every chunk, the shard folder's lock, workers that die with their run."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.utils.lock import LOCK_NAME, DirectoryLock
from symmerge.zoo.shards import (
    ChunkPlan,
    ShardStore,
    check_output_path,
    derive_seed,
    die_with_parent,
    generator_for,
    run_chunked,
    shard_dir_for,
)


@dataclass(frozen=True)
class Squares:
    """A picklable chunk function: item g -> g**2 plus a seeded random number."""

    seed: int = 0

    def __call__(self, chunk: int, items: range, progress) -> dict[str, Tensor]:
        idx = torch.tensor(list(items))
        noise = torch.stack([torch.rand(1, generator=generator_for(self.seed, "t", g))[0]
                             for g in items])
        progress(len(items), noise)
        return {"index": idx, "square": idx.float() ** 2, "noise": noise}


class Collect:
    """``assemble`` callback that keeps the merged tensors and writes a marker file."""

    def __init__(self, out: Path) -> None:
        self.out, self.tensors = out, None

    def __call__(self, t: dict[str, Tensor]) -> Path:
        self.tensors = t
        self.out.write_text("done")
        return self.out


def run(directory: Path, fn=None, **kw):
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "zoo.safetensors"
    collect = Collect(out)
    kw.setdefault("progress", False)
    kw.setdefault("workers", 1)
    path = run_chunked(out, ChunkPlan(kw.pop("n", 10), kw.pop("chunk", 3)), {"x": kw.pop("x", 1)},
                       fn or Squares(), collect, **kw)
    return path, collect


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "inr", 1) == derive_seed(0, "inr", 1)
    seeds = {derive_seed(s, k, g) for s in (0, 1) for k in ("inr", "cnn") for g in range(50)}
    assert len(seeds) == 200
    assert all(0 <= s < 2**63 for s in seeds)
    a = torch.rand(3, generator=generator_for(5, "x", 2))
    assert torch.equal(a, torch.rand(3, generator=generator_for(5, "x", 2)))


def test_chunk_plan():
    plan = ChunkPlan(10, 4)
    assert plan.n_chunks == 3
    assert list(plan.items(2)) == [8, 9]
    with pytest.raises(SymmergeError, match="positive"):
        ChunkPlan(0, 4)
    with pytest.raises(SymmergeError, match="chunk_size must be positive"):
        ChunkPlan(5, 0)


def test_run_assembles_in_order_and_cleans_up(tmp_path):
    path, got = run(tmp_path)
    assert path == tmp_path / "zoo.safetensors"
    assert torch.equal(got.tensors["index"], torch.arange(10))
    assert torch.equal(got.tensors["square"], torch.arange(10).float() ** 2)
    assert not shard_dir_for(path).exists()


def test_keep_shards_and_manifest(tmp_path):
    path, _ = run(tmp_path, keep_shards=True)
    shards = shard_dir_for(path)
    assert sorted(p.name for p in shards.glob("chunk-*")) == [f"chunk-{i:06d}.safetensors"
                                                               for i in range(4)]
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["run"] == {"x": 1} and manifest["n_items"] == 10


def test_max_chunks_then_resume_skips_done_chunks(tmp_path):
    calls = []

    def fn(chunk, items, progress):
        calls.append(chunk)
        return Squares()(chunk, items, progress)

    path, got = run(tmp_path, fn, max_chunks=2)
    assert path is None and got.tensors is None
    assert not (tmp_path / "zoo.safetensors").exists()
    path, got = run(tmp_path, fn)
    assert calls == [0, 1, 2, 3]
    _, ref = run(tmp_path / "ref")
    for k in ref.tensors:
        assert torch.equal(got.tensors[k], ref.tensors[k])


def test_interrupted_chunk_is_refitted(tmp_path):
    def boom(chunk, items, progress):
        if chunk == 2:
            raise KeyboardInterrupt
        return Squares()(chunk, items, progress)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, boom)
    shards = shard_dir_for(tmp_path / "zoo.safetensors")
    assert sorted(p.name for p in shards.glob("chunk-*")) == ["chunk-000000.safetensors",
                                                               "chunk-000001.safetensors"]
    assert not (tmp_path / "zoo.safetensors").exists()
    _, got = run(tmp_path)
    assert torch.equal(got.tensors["index"], torch.arange(10))


def test_different_run_refuses_to_resume_unless_fresh(tmp_path):
    run(tmp_path, max_chunks=1)
    with pytest.raises(SymmergeError, match="different run.*x"):
        run(tmp_path, x=2)
    path, got = run(tmp_path, x=2, fresh=True)
    assert path is not None and torch.equal(got.tensors["index"], torch.arange(10))


def test_corrupt_shard_is_reported(tmp_path):
    run(tmp_path, max_chunks=1)
    shard = shard_dir_for(tmp_path / "zoo.safetensors") / "chunk-000000.safetensors"
    shard.write_bytes(b"garbage")
    with pytest.raises(SymmergeError, match="corrupt shard"):
        run(tmp_path)


def test_bad_output_paths(tmp_path):
    with pytest.raises(SymmergeError, match="is a directory"):
        check_output_path(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SymmergeError, match="not a directory"):
        check_output_path(blocker / "sub" / "zoo.safetensors")
    assert check_output_path(tmp_path / "new" / "zoo.safetensors").name == "zoo.safetensors"


def test_workers_give_the_same_result(tmp_path):
    _, ref = run(tmp_path / "one")
    path, got = run(tmp_path / "two", workers=2)
    assert torch.equal(got.tensors["index"], ref.tensors["index"])
    calls = []

    def local_fn(chunk, items, progress):  # not picklable: workers inherit it (fork)
        calls.append(chunk)
        return Squares()(chunk, items, progress)

    _, forked = run(tmp_path / "three", local_fn, workers=2)
    assert calls == []  # ran in the workers
    assert torch.equal(forked.tensors["square"], ref.tensors["square"])
    assert path == tmp_path / "two" / "zoo.safetensors"
    for k in ref.tensors:
        assert torch.equal(got.tensors[k], ref.tensors[k])
    with pytest.raises(SymmergeError, match="workers"):
        run(tmp_path, workers=0)


# ------------------------------------------------------------ run identity, checks, locks
def _open_store(directory: Path, n: int = 10, chunk: int = 3, x: int = 1) -> ShardStore:
    store = ShardStore(directory, ChunkPlan(n, chunk), {"x": x})
    store.open(fresh=False)
    return store


def test_manifest_holds_the_run_identity_and_every_chunk_carries_it(tmp_path):
    path, _ = run(tmp_path, keep_shards=True)
    shards = shard_dir_for(path)
    manifest = json.loads((shards / "manifest.json").read_text())
    assert len(manifest["run_id"]) == 16 and manifest["chunk_size"] == 3
    for c, rows in enumerate([3, 3, 3, 1]):
        with safe_open(str(shards / f"chunk-{c:06d}.safetensors"), framework="pt") as f:
            meta = f.metadata()
        assert meta["run_id"] == manifest["run_id"]
        assert meta["fingerprint"] == manifest["fingerprint"]
        assert (meta["chunk"], meta["rows"]) == (str(c), str(rows))
    other, _ = run(tmp_path / "other", keep_shards=True)
    assert json.loads((shard_dir_for(other) / "manifest.json").read_text())["run_id"] != (
        manifest["run_id"])  # a new id per folder, even for the same configuration


def _rewrite_chunk(path: Path, tensors: dict, **meta_changes) -> None:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, str(path), metadata={**meta, **meta_changes})


def test_chunk_with_the_wrong_row_count_is_an_error(tmp_path):
    run(tmp_path, max_chunks=2)
    chunk = shard_dir_for(tmp_path / "zoo.safetensors") / "chunk-000000.safetensors"
    short = {k: v[:2] for k, v in load_file(str(chunk)).items()}
    _rewrite_chunk(chunk, short)  # metadata still says 3 rows
    with pytest.raises(SymmergeError, match=r"without 3 rows: index \[2\].*fresh=True"):
        run(tmp_path)
    _rewrite_chunk(chunk, short, rows="2")
    with pytest.raises(SymmergeError, match="holds 2 networks, chunk 0 has 3.*fresh=True"):
        run(tmp_path)
    path, got = run(tmp_path, fresh=True)
    assert path is not None and torch.equal(got.tensors["index"], torch.arange(10))


def test_chunk_of_another_run_or_place_is_an_error(tmp_path):
    run(tmp_path / "a", max_chunks=1)
    run(tmp_path / "b", max_chunks=2)  # same configuration, another folder: another run id
    a, b = (shard_dir_for(tmp_path / d / "zoo.safetensors") for d in "ab")
    (a / "chunk-000001.safetensors").write_bytes((b / "chunk-000001.safetensors").read_bytes())
    with pytest.raises(SymmergeError, match="chunk-000001.*belongs to another run.*fresh=True"):
        run(tmp_path / "a")
    (a / "chunk-000001.safetensors").unlink()
    (a / "chunk-000002.safetensors").write_bytes((a / "chunk-000000.safetensors").read_bytes())
    with pytest.raises(SymmergeError, match="holds chunk 0, not 2"):
        run(tmp_path / "a")
    (a / "chunk-000002.safetensors").unlink()
    (a / "chunk-000007.safetensors").write_bytes((a / "chunk-000000.safetensors").read_bytes())
    with pytest.raises(SymmergeError, match="not a chunk of this run"):
        run(tmp_path / "a")


def test_folder_without_manifest_is_an_error_unless_fresh(tmp_path):
    run(tmp_path, max_chunks=1)
    shards = shard_dir_for(tmp_path / "zoo.safetensors")
    (shards / "manifest.json").unlink()
    with pytest.raises(SymmergeError, match="chunk-000000.safetensors but no manifest.*fresh=True"):
        run(tmp_path)
    path, got = run(tmp_path, fresh=True)
    assert path is not None and torch.equal(got.tensors["index"], torch.arange(10))
    shards.mkdir()
    (shards / LOCK_NAME).write_text("{}")  # only a lock file, e.g. of a run that died at once
    path, _ = run(tmp_path)
    assert path is not None and not shards.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\xff\xfe binary \x80", "not a text file.*fresh=True"),
        (b'{"run": ', "unreadable shard manifest.*fresh=True"),
        (b'{"format": "symmerge-shards/1", "run": {"x": 1}}', "not a shard manifest.*fresh=True"),
        (b"[1, 2]", "not a shard manifest.*fresh=True"),
    ],
)
def test_unreadable_or_foreign_manifest_is_an_error(tmp_path, content, message):
    run(tmp_path, max_chunks=1)
    shards = shard_dir_for(tmp_path / "zoo.safetensors")
    (shards / "manifest.json").write_bytes(content)
    with pytest.raises(SymmergeError, match=message):
        run(tmp_path)
    assert run(tmp_path, fresh=True)[0] is not None


def test_temp_leftovers_of_killed_writes_are_removed(tmp_path):
    run(tmp_path, max_chunks=1)
    shards = shard_dir_for(tmp_path / "zoo.safetensors")
    leftovers = [shards / ".chunk-000001.safetensors.x1y2.tmp", shards / ".manifest.json.a.tmp"]
    for p in leftovers:
        p.write_bytes(b"half a chunk")
    path, _ = run(tmp_path, max_chunks=1)
    assert path is None and not any(p.exists() for p in leftovers)
    assert sorted(p.name for p in shards.glob("chunk-*")) == ["chunk-000000.safetensors",
                                                               "chunk-000001.safetensors"]


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    shards = shard_dir_for(tmp_path / "zoo.safetensors")
    with DirectoryLock(shards, "the test's lock"):
        for fresh in (False, True):
            with pytest.raises(SymmergeError, match=f"in use by process {os.getpid()} "):
                run(tmp_path, fresh=fresh)
        assert [p.name for p in shards.iterdir()] == [LOCK_NAME]
    assert run(tmp_path)[0] is not None


def test_the_lock_is_held_while_fitting_even_after_fresh(tmp_path):
    run(tmp_path, max_chunks=1)
    shards = shard_dir_for(tmp_path / "zoo.safetensors")
    seen = []

    def fn(chunk, items, progress):
        with pytest.raises(SymmergeError, match="in use"):
            DirectoryLock(shards).acquire()  # --fresh emptied the folder, not the lock
        seen.append(chunk)
        return Squares()(chunk, items, progress)

    path, got = run(tmp_path, fn, x=2, fresh=True)
    assert seen == [0, 1, 2, 3] and torch.equal(got.tensors["index"], torch.arange(10))


def test_save_refuses_a_folder_that_no_longer_holds_the_run(tmp_path):
    shards = tmp_path / "zoo.safetensors.shards"
    old = _open_store(shards)
    chunk = Squares()(0, range(3), lambda *a: None)
    old.save(0, chunk)
    new = ShardStore(shards, ChunkPlan(10, 3), {"x": 1})
    new.open(fresh=True)  # another run took the folder over
    with pytest.raises(SymmergeError, match="no longer holds this run"):
        old.save(1, chunk)
    assert not new.has(1) and not new.has(0)
    shutil.rmtree(shards)  # the folder deleted by hand
    with pytest.raises(SymmergeError, match="no longer holds this run"):
        old.save(1, chunk)
    assert not shards.exists()  # not recreated


def test_save_checks_the_lock_holder(tmp_path):
    shards = tmp_path / "s"
    store = ShardStore(shards, ChunkPlan(4, 2), {"x": 1})
    with DirectoryLock(shards):
        store.open(fresh=False, lock_pid=os.getpid())
        store.save(0, Squares()(0, range(2), lambda *a: None))
    (shards / LOCK_NAME).write_text(json.dumps({"pid": 1}))  # the lock now names another run
    with pytest.raises(SymmergeError, match="no longer holds this run"):
        store.save(1, Squares()(1, range(2), lambda *a: None))


def test_a_failing_worker_takes_the_others_down_without_writes(tmp_path):
    def fn(chunk, items, progress):
        if chunk == 0:
            time.sleep(0.5)
            raise ValueError("chunk 0 failed")
        time.sleep(20)  # still fitting when chunk 0 fails: killed, never saved
        return Squares()(chunk, items, progress)

    with pytest.raises(ValueError, match="chunk 0 failed"):
        run(tmp_path, fn, n=4, chunk=2, workers=2)
    shards = shard_dir_for(tmp_path / "zoo.safetensors")
    assert list(shards.glob("chunk-*")) == []


def _orphan(report) -> None:  # runs in a forked child
    ready_r, ready_w = os.pipe()
    grandchild = os.fork()
    if grandchild == 0:
        os.close(ready_r)
        sys.platform = "elsewhere"  # no prctl: the polling fallback alone
        die_with_parent(os.getppid(), interval=0.05)
        os.write(ready_w, b"1")
        time.sleep(60)
        os._exit(0)
    os.close(ready_w)
    report.send(grandchild if os.read(ready_r, 1) == b"1" else None)
    os._exit(0)  # the grandchild's parent dies


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_worker_dies_with_its_parent_without_prctl(tmp_path):
    ctx = mp.get_context("fork")
    receive, report = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_orphan, args=(report,))
    child.start()
    assert receive.poll(30)
    grandchild = receive.recv()
    assert grandchild is not None  # it set itself up and was alive
    child.join()
    for _ in range(200):
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    assert not _alive(grandchild)
