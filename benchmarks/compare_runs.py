"""Whether two quickstart output directories hold the same results (the determinism
check of ``symmerge quickstart``: the same seed twice).

    python benchmarks/compare_runs.py DIR_A DIR_B

Safetensors files (zoos, models, experiment arrays) are compared tensor by tensor, JSON
files value by value without their timing fields and with DIR_B's path read as DIR_A's,
reports line by line without numbers in their timing columns; checkpoints, locks, logs
and plots are left out (they hold times or paths). Prints one line per file that
differs and a count; exits 1 when any file differs or is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

#: keys whose values are times, not results
TIMING_KEYS = ("time", "timing", "second", "wall", "elapsed", "fit_s", "total_s", "data_s",
               "stages")
#: files that hold times or paths by design
LEFT_OUT = (".lock", ".ckpt", ".png", "hparams.yaml", "metrics.csv", "quickstart.json")


def _values(obj: Any, a: str, b: str) -> Any:
    if isinstance(obj, dict):
        return {k: _values(v, a, b) for k, v in obj.items()
                if not any(t in k.lower() for t in TIMING_KEYS)}
    if isinstance(obj, list):
        return [_values(v, a, b) for v in obj]
    return obj.replace(b, a) if isinstance(obj, str) else obj


#: report table columns that hold times
TIME_COLUMNS = ("s", "seconds", "ms / pair")


def _report_lines(path: Path, root: Path) -> list[str]:
    """A report's lines with the output path and the cells of timing columns blanked."""
    cleaned: list[str] = []
    timed: list[int] = []
    for line in path.read_text().replace(str(root), "OUT").splitlines():
        cells = line.split("|")
        if not line.startswith("|"):
            timed = []
        elif any(c.strip() in TIME_COLUMNS for c in cells):
            timed = [i for i, c in enumerate(cells) if c.strip() in TIME_COLUMNS]
        elif timed and not set(line) <= set("|-: "):
            cells = ["" if i in timed else c for i, c in enumerate(cells)]
        cleaned.append("|".join(cells))
    return cleaned


def same(fa: Path, fb: Path, a: Path, b: Path) -> bool:
    """Whether ``fa`` (under ``a``) and ``fb`` (under ``b``) hold the same result."""
    if fa.suffix == ".safetensors":
        ta, tb = load_file(str(fa)), load_file(str(fb))
        return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    if fa.suffix == ".json":
        return (_values(json.loads(fa.read_text()), str(a), str(b))
                == _values(json.loads(fb.read_text()), str(a), str(b)))
    if fa.suffix == ".md":
        return _report_lines(fa, a) == _report_lines(fb, b)
    return fa.read_bytes() == fb.read_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    a, b = args.a.resolve(), args.b.resolve()
    compared, bad = 0, []
    for fa in sorted(p for p in a.rglob("*") if p.is_file()):
        rel = fa.relative_to(a)
        if fa.name.endswith(LEFT_OUT):
            continue
        fb = b / rel
        if not fb.is_file():
            bad.append(f"missing in {b}: {rel}")
            continue
        compared += 1
        if not same(fa, fb, a, b):
            bad.append(f"differs: {rel}")
    for line in bad:
        print(line)
    print(f"{compared} files compared, {compared - sum(x.startswith('differs') for x in bad)} "
          f"the same, {len(bad)} differing or missing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
