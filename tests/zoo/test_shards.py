"""The generic chunk/resume/worker machinery of zoo builders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.zoo.shards import (
    ChunkPlan,
    check_output_path,
    derive_seed,
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
    with pytest.raises(SymmergeError, match="chunk size"):
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
