"""Shared helpers of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from symmerge.cli.app import main


def run_cli(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``symmerge args``; the entry point always exits."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def overwrite_params(zoo: Path, params: torch.Tensor) -> Path:
    """Replace a zoo file's ``params`` (with NaN or Inf, say, which ``save_zoo`` refuses, as
    a diverged builder could leave them), keeping its other tensors and metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(zoo), framework="pt") as f:
        meta = f.metadata()
    save_file({**load_file(str(zoo)), "params": params.contiguous()}, str(zoo), metadata=meta)
    return zoo
