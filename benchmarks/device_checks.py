"""The GPU items of BENCHMARKS.md in one run: one JSON and one log.

Run through ``benchmarks/device_checks.sh`` (which installs the carried wheels and
symmerge first). Every step runs in its own process, in its own process group, under
its own time cap and inside the run's overall budget: a step that fails, hangs or takes
the GPU down with it is recorded and the next step runs. After each step the JSON is
rewritten, so a run stopped from outside keeps what it measured.

Steps (full run on one H200; caps and expected seconds in ``STEPS``):

1. ``tests``: the non-slow tests parametrized over the ``cuda`` device (``-k cuda``);
2. ``zoo_inr``: fit 70,000 INRs (5,000 digits x 14) with the default recipe;
3. ``train``: ``paper-inr`` training throughput, ours and the reference design in one
   process (``bench_train_throughput.py``);
4. ``encoder``: encoder-only inference throughput (``symmerge.models.runs.encode``);
5. ``canonicalize``: ``sort``, ``ae``, ``ae-lift`` and pairwise ``wm`` on 512 pairs
   (``bench_canonicalize.py``).

Each step records its status (``ok``, ``failed``, ``timeout``, ``crashed``, ``skipped``),
wall time, numbers, its targets and whether they were met, and its peak GPU memory
(``torch.cuda.max_memory_allocated`` of the step's process). ``--dry-run`` runs the
same steps at tiny sizes (on the CPU unless ``--device`` says otherwise) and prints what
the full run measures.

    python benchmarks/device_checks.py --out DIR [--dry-run] [--device cuda]
        [--budget 470] [--steps tests,zoo_inr,train,encoder,canonicalize]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JSON_NAME, LOG_NAME = "device_checks.json", "device_checks.log"
#: the reference code's own rate, one H100, end to end (the issue's figure)
REFERENCE_CODE_H100_NETWORKS_PER_S = 206
PACKAGES = ("torch", "torch-geometric", "lightning", "numpy", "scipy", "scikit-learn",
            "pydantic", "pydantic-core", "typing-extensions", "mlxtend", "umap-learn",
            "pynndescent", "numba", "safetensors", "typer", "symmerge")


class StepFailed(Exception):
    """A step ran but its check failed; ``numbers`` are still recorded."""

    def __init__(self, message: str, numbers: dict[str, Any]) -> None:
        super().__init__(message)
        self.numbers = numbers


@dataclass(frozen=True)
class Step:
    """One check: what the full run measures, its target, time cap and the sizes."""

    name: str
    measures: str
    target: str
    cap_s: float  # full run; the dry run gets DRY_CAP_S
    expected_s: float  # full run on one H200
    run: Callable[[dict[str, Any], str, Path], dict[str, Any]]
    full: dict[str, Any]
    dry: dict[str, Any]


DRY_CAP_S = 120.0
METHODS = "ae,sort,ae-lift,wm"  # the canonicalization step's (no descent: CPU table has it)


# ----------------------------------------------------------------------- the steps
def step_tests(size: dict[str, Any], device: str, work: Path) -> dict[str, Any]:
    """Non-slow tests selected by ``-k``. When the selection runs nothing (no test is
    parametrized over the device yet, or all selected ones skip), the fallback files run
    instead: on the CPU of the machine, a check of the package on the machine's image."""
    import pytest

    class Counts:
        """Outcome counts and the failing test ids, read off pytest's terminal reporter."""

        def __init__(self) -> None:
            self.stats: dict[str, int] = {}
            self.failed: list[str] = []

        def pytest_terminal_summary(self, terminalreporter: Any) -> None:
            stats = terminalreporter.stats
            self.stats = {k: len(v) for k, v in stats.items() if k}
            self.failed = [r.nodeid for k in ("failed", "error") for r in stats.get(k, [])
                           if hasattr(r, "nodeid")]

    base = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "-m", "not slow"]
    selection = f"-m 'not slow' -k {size['k']!r}"
    counts = Counts()
    code = pytest.main([*base, "-k", size["k"], "tests"], plugins=[counts])
    ran = sum(counts.stats.get(k, 0) for k in ("passed", "failed", "error"))
    if code in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) and not ran:
        selection = (f"-k {size['k']!r} ran no test ({counts.stats}): fallback "
                     f"{' '.join(size['fallback'])}")
        counts = Counts()
        code = pytest.main([*base, *size["fallback"]], plugins=[counts])
    numbers = {"selection": selection, "exit_code": int(code), "counts": counts.stats,
               "failed": counts.failed[:50]}
    numbers["targets_met"] = {"all pass": int(code) == 0}
    if code != 0:
        raise StepFailed(f"pytest exited with {int(code)}", numbers)
    return numbers


def _micro_batch_rates(size: dict[str, Any], device: str) -> dict[str, Any]:
    """Networks x steps per second of one batched fit at the CPU's micro-batch and at the
    whole batch (what ``symmerge zoo inr --device cuda`` runs), a fixed number of steps
    each."""
    import torch
    from gpu_common import synchronize

    from symmerge.data import load_images
    from symmerge.zoo.fit_inr import CPU_MICRO_BATCH, fit_sirens, init_sirens, inr_config

    n, steps = size["compare_networks"], size["compare_steps"]
    digits = load_images("mnist-embedded").images
    images = digits[torch.arange(n) % len(digits)]
    spec = inr_config("default").spec(1)
    init = init_sirens(spec, 0, range(n))
    rates = {}
    for mb in (CPU_MICRO_BATCH, n):
        cfg = inr_config("default", micro_batch=mb, steps=steps, target_psnr=float("inf"))
        fit_sirens(spec, images[:mb], init[:mb], inr_config(cfg, steps=2), device=device)
        synchronize(device)
        t0 = time.perf_counter()
        fit_sirens(spec, images, init, cfg, device=device)
        synchronize(device)
        rates[f"micro_batch_{mb}"] = n * steps / (time.perf_counter() - t0)
    return {"networks": n, "steps": steps, "network_steps_per_s": rates}


def step_zoo_inr(size: dict[str, Any], device: str, work: Path) -> dict[str, Any]:
    """``bench_zoo_inr.py full`` on the device, then the micro-batch comparison."""
    import bench_zoo_inr

    argv = ["full", "--out", str(work / "zoo_inr.safetensors"), "--fresh", "--quiet",
            "--device", device, "--per-image", str(size["per_image"]),
            "--chunk-size", str(size["chunk"]), "--micro-batch", str(size["chunk"])]
    argv += ["--limit", str(size["images"])]
    if size.get("steps"):
        argv += ["--steps", str(size["steps"])]
    res = bench_zoo_inr.main(argv)
    (work / "zoo_inr.safetensors").unlink(missing_ok=True)
    res["micro_batch_check"] = _micro_batch_rates(size, device)
    res["targets_met"] = {
        "under 120 s": res["seconds"] < 120,
        "median PSNR at the preset's target": res["psnr"]["median"] >= res["target_psnr"],
    }
    return res


def step_train(size: dict[str, Any], device: str, work: Path) -> dict[str, Any]:
    """``bench_train_throughput.py``: ours vs the reference design, same process."""
    import bench_train_throughput

    out = work / "train.json"
    bench_train_throughput.main([*size["argv"], "--device", device, "--json", str(out)])
    res = json.loads(out.read_text())
    ours, ref = res["rows"][0], res["rows"][1]
    res["summary"] = {
        "ours_networks_per_s": ours["networks_per_s"],
        "reference_design_networks_per_s": ref["networks_per_s"],
        "speedup": res["speedup"],
        "epoch_50k_s": 50_000 / ours["networks_per_s"],
        "vs_reference_code_h100": ours["networks_per_s"] / REFERENCE_CODE_H100_NETWORKS_PER_S,
        "max_loss_diff": res["max_loss_diff"],
        "peak_gpu_mib": {r["impl"]: r["peak_gpu_mib"] for r in res["rows"]},
    }
    res["targets_met"] = {">= 1,000 networks/s": ours["networks_per_s"] >= 1000,
                          ">= 5x the reference design": res["speedup"] >= 5}
    return res


def step_encoder(size: dict[str, Any], device: str, work: Path) -> dict[str, Any]:
    """Encoder-only inference: ``symmerge.models.runs.encode`` on networks resident on
    the device, at several batch sizes; the reference design's encoder for scale."""
    import torch
    from gpu_common import synchronize
    from reference_design import ReferenceDesignAutoencoder

    from symmerge.models import build_autoencoder
    from symmerge.models.runs import encode
    from symmerge.models.train_config import resolve_config
    from symmerge.specs import SirenSpec

    spec = SirenSpec()
    # as bench_train_throughput: no probe features (paper-inr has none; the reference
    # design cannot compute them)
    cfg = resolve_config(size["preset"], overrides={"encoder": {"probe_points": 0}}, spec=spec)
    torch.manual_seed(0)
    model = build_autoencoder(spec, cfg.encoder, cfg.decoder_widths)
    zoo = spec.init_params(size["networks"], generator=torch.Generator().manual_seed(0))
    if hasattr(model, "set_param_scale"):
        model.set_param_scale(zoo)
    model, zoo = model.to(device).eval(), zoo.to(device)

    def rate(fn: Callable[[], Any], n: int) -> float:
        fn()  # warm-up
        times = []
        for _ in range(size["repeats"]):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - t0)
        return n / statistics.median(times)

    rates = {str(b): rate(lambda b=b: encode(model, zoo, batch_size=b), zoo.shape[0])
             for b in size["batches"]}
    ref = ReferenceDesignAutoencoder(model).eval()
    part = zoo[: size["reference_batch"]]
    with torch.no_grad():
        ref_rate = rate(lambda: ref.encode(part), part.shape[0])
    best = max(rates.values())
    return {"preset": size["preset"], "networks": zoo.shape[0],
            "encoder": cfg.encoder.model_dump(), "networks_per_s_by_batch": rates,
            "best_networks_per_s": best,
            "reference_design_networks_per_s": ref_rate,
            "reference_design_batch": part.shape[0],
            "targets_met": {">= 30,000 networks/s": best >= 30_000}}


def step_canonicalize(size: dict[str, Any], device: str, work: Path) -> dict[str, Any]:
    """``bench_canonicalize.py`` on the device."""
    import bench_canonicalize

    out = work / "canonicalize.json"
    bench_canonicalize.main([*size["argv"], "--device", device, "--json", str(out)])
    res = json.loads(out.read_text())
    res["summary"] = {r["method"]: r["networks_per_s"] for r in res["rows"]}
    return res


STEPS = (
    Step("tests", "non-slow tests parametrized over the cuda device (pytest -k cuda)",
         "all pass", 90, 45, step_tests,
         full={"k": "cuda", "fallback": ["tests/zoo/test_fit_inr.py", "tests/canon",
                                         "tests/models/test_autoencoder.py"]},
         dry={"k": "cuda", "fallback": ["tests/zoo/test_fit_inr.py"]}),
    Step("zoo_inr", "fit 70,000 INRs (5,000 digits x 14, default recipe, 4 chunks of "
         "17,500 fused), networks/s, PSNR vs the 28 dB target; the library's default "
         "micro-batch of 32 vs the whole batch (network steps/s)",
         "< 120 s at the preset's PSNR", 150, 80, step_zoo_inr,
         full={"images": 5000, "per_image": 14, "chunk": 17_500,
               "compare_networks": 4096, "compare_steps": 20},
         dry={"images": 16, "per_image": 2, "chunk": 16, "steps": 30,
              "compare_networks": 16, "compare_steps": 3}),
    Step("train", "paper-inr training step, batch 128: ours (20 steps) and the reference "
         "design (3 steps) interleaved in one process, networks/s and their ratio; one "
         "profiled step of ours (GPU time by op category)",
         ">= 1,000 networks/s and >= 5x the reference design", 110, 50, step_train,
         full={"argv": ["--steps", "20", "--baseline-steps", "3", "--warmup-steps", "1",
                        "--infer-repeats", "3", "--matmul-size", "8192", "--profile"]},
         dry={"argv": ["--preset", "quick", "--steps", "1", "--baseline-steps", "1",
                       "--batch-size", "4", "--warmup-batch", "2", "--infer-repeats", "1",
                       "--matmul-size", "64"]}),
    Step("encoder", "paper-inr encoder inference on 16,384 networks at batches 256, 1,024 "
         "and 4,096 (graph included); the reference design's encoder on 128",
         ">= 30,000 networks/s", 60, 20, step_encoder,
         full={"preset": "paper-inr", "networks": 16_384, "batches": [256, 1024, 4096],
               "repeats": 3, "reference_batch": 128},
         dry={"preset": "quick", "networks": 8, "batches": [4, 8], "repeats": 1,
              "reference_batch": 4}),
    Step("canonicalize", "sort, ae (untrained quick-preset model), ae-lift (forward) on "
         "1,024 networks and pairwise wm on 512 pairs, networks/s", "none (reported)", 60, 30,
         step_canonicalize,
         full={"argv": ["--pairs", "512", "--repeats", "3", "--methods", METHODS]},
         dry={"argv": ["--pairs", "8", "--repeats", "1", "--methods", METHODS]}),
)
STEP_NAMES = tuple(s.name for s in STEPS)


def run_one(name: str, dry: bool, device: str, work: Path, result: Path) -> None:
    """Child process: run one step, write its record (numbers, error, peak memory)."""
    import torch
    from gpu_common import peak_memory_mib, reset_peak_memory

    step = next(s for s in STEPS if s.name == name)
    record: dict[str, Any] = {"status": "ok", "device": device}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        record.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
        reset_peak_memory(device)
    try:
        record["numbers"] = step.run(step.dry if dry else step.full, device, work)
    except StepFailed as exc:
        record.update(status="failed", error=str(exc), numbers=exc.numbers)
    except BaseException as exc:  # recorded, the run goes on with the next step
        traceback.print_exc()
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    try:  # a CUDA error can leave the device unusable for the rest of this process
        record["peak_gpu_mib"] = peak_memory_mib(device)
    except RuntimeError as exc:
        record["peak_gpu_mib"] = None
        record.setdefault("error", f"peak memory unreadable: {exc}")
    result.write_text(json.dumps(record, indent=1, default=str))


# ------------------------------------------------------------------- the parent
def versions() -> dict[str, str | None]:
    """Installed versions of the packages the run depends on (None: missing)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def nvidia_smi() -> str | None:
    """The GPU's name, memory, driver and clocks, as nvidia-smi reports them."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = "name,memory.total,driver_version,clocks.max.sm,clocks.max.memory"
    try:
        proc = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout or proc.stderr).strip() or None


def plan_table(dry: bool) -> str:
    """What the full run measures, step by step (Markdown)."""
    lines = ["| step | the full run measures | target | cap (s) | expected on an H200 (s) |",
             "|---|---|---|---|---|"]
    lines += [f"| {s.name} | {s.measures} | {s.target} | {s.cap_s:.0f} | {s.expected_s:.0f} |"
              for s in STEPS]
    head = ("dry run: the logic at tiny sizes (numbers are no benchmark); the full run "
            "measures:" if dry else "full run:")
    return head + "\n" + "\n".join(lines)


def summary_table(steps: dict[str, dict[str, Any]]) -> str:
    """Status, wall time, peak memory and targets of every step (Markdown)."""
    lines = ["| step | status | wall (s) | peak GPU MiB | targets met |", "|---|---|---|---|---|"]
    for name, rec in steps.items():
        met = (rec.get("numbers") or {}).get("targets_met") or {}
        met_s = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in met.items()) or "-"
        peak = rec.get("peak_gpu_mib")
        lines.append(f"| {name} | {rec['status']} | {rec.get('wall_s', 0):.1f} | "
                     f"{'-' if peak is None else f'{peak:.0f}'} | {met_s} |")
    return "\n".join(lines)


def _write_json(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str))
    os.replace(tmp, path)


def run_steps(args: argparse.Namespace, out: Path, log: Any) -> dict[str, Any]:
    """Each step in its own process group under min(cap, budget left); the JSON after each."""
    deadline = time.monotonic() + args.budget
    record: dict[str, Any] = {
        "mode": "dry-run" if args.dry_run else "full", "device": args.device,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "budget_s": args.budget, "install": args.install_note,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "nvidia_smi": nvidia_smi()},
        "versions": versions(), "plan": {s.name: {"measures": s.measures, "target": s.target,
                                                  "cap_s": s.cap_s, "expected_s": s.expected_s}
                                         for s in STEPS},
        "steps": {},
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t_run = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="symmerge-device-checks-") as tmp:
        for step in STEPS:
            if step.name not in args.steps:
                continue
            cap = min(DRY_CAP_S if args.dry_run else step.cap_s, deadline - time.monotonic())
            rec: dict[str, Any] = {"cap_s": round(max(cap, 0.0), 1)}
            record["steps"][step.name] = rec
            if cap < 5:
                rec.update(status="skipped", error="the run's time budget is spent", wall_s=0.0)
                _write_json(out / JSON_NAME, record)
                continue
            work = Path(tmp) / step.name
            work.mkdir()
            result = work / "result.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step.name,
                   "--result", str(result), "--work", str(work), "--device", args.device]
            cmd += ["--dry-run"] if args.dry_run else []
            print(f"== {step.name} (cap {cap:.0f} s)", flush=True)
            log.write(f"\n===== step {step.name}: {' '.join(cmd)} (cap {cap:.0f} s)\n")
            log.flush()
            log_start = log.tell()
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=cap)
            except subprocess.TimeoutExpired:
                code = None
            kill_group(proc)
            rec["wall_s"] = round(time.monotonic() - t0, 2)
            if result.exists():
                rec.update(json.loads(result.read_text()))
            if code is None:
                rec.update(status="timeout", error=f"stopped at its cap of {cap:.0f} s")
            elif not result.exists():
                rec.update(status="crashed",
                           error=f"the step's process exited with {code} before writing its "
                                 f"record; its last line: {last_line(log, log_start)}")
            print(f"   {rec['status']} in {rec['wall_s']:.1f} s"
                  + (f": {rec['error']}" if rec.get("error") else ""), flush=True)
            record["wall_s"] = round(time.monotonic() - t_run, 1)
            _write_json(out / JSON_NAME, record)
    return record


def last_line(log: Any, start: int) -> str:
    """The last non-empty line a step wrote to the log (from byte ``start``)."""
    with open(log.name, "rb") as f:
        f.seek(start)
        lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    return next((ln for ln in reversed(lines) if ln), "(nothing)")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End what is left of a step's process group (the step itself, pytest's children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="folder for device_checks.json and device_checks.log")
    ap.add_argument("--dry-run", action="store_true",
                    help="tiny sizes (default device cpu), to test the logic anywhere")
    ap.add_argument("--device", help="torch device (default: cuda; cpu for --dry-run)")
    ap.add_argument("--budget", type=float, default=470.0,
                    help="seconds for all steps together; each also has its own cap")
    ap.add_argument("--steps", default=",".join(STEP_NAMES),
                    help=f"comma-separated subset of {', '.join(STEP_NAMES)}")
    ap.add_argument("--install-note", default="", help="how the wrapper installed symmerge")
    ap.add_argument("--step", choices=STEP_NAMES, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    if args.step:  # a child: one step
        run_one(args.step, args.dry_run, args.device, Path(args.work), Path(args.result))
        return 0
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(args.steps) - set(STEP_NAMES))
    if unknown or not args.steps:
        ap.error(f"--steps takes names from {', '.join(STEP_NAMES)}; got {args.steps}")
    if not args.out:
        ap.error("--out is required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(plan_table(args.dry_run), flush=True)
    with open(out / LOG_NAME, "a") as log:
        log.write(f"device_checks {datetime.now(timezone.utc).isoformat(timespec='seconds')}: "
                  f"{'dry run' if args.dry_run else 'full run'} on {args.device}\n")
        record = run_steps(args, out, log)
        summary = summary_table(record["steps"])
        if args.dry_run:
            summary = ("dry run: statuses test the logic; the numbers and targets mean "
                       "nothing here\n" + summary)
        log.write(f"\n===== summary\n{summary}\n")
    print()
    print(summary)
    print(f"\n{out / JSON_NAME}, {out / LOG_NAME}; {record.get('wall_s', 0):.0f} s for the steps")
    return 0 if all(r["status"] == "ok" for r in record["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
