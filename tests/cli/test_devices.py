"""``--device`` on every command that computes: auto by default, an unusable device is one
clear error before anything is read or written."""

from __future__ import annotations

import pytest
import torch

from tests.cli._util import run_cli

_EXP = ["experiment"]
COMMANDS = {
    "encode": ["encode", "--run", "{R}", "--zoo", "{Z}", "--out", "{O}/l.safetensors"],
    "reconstruct": ["reconstruct", "--run", "{R}", "--zoo", "{Z}", "--out", "{O}/r.safetensors"],
    "canonicalize": ["canonicalize", "--zoo", "{Z}", "--out", "{O}/c.safetensors"],
    "merge": ["merge", "{Z}:0", "{Z}:1", "--out", "{O}/m.safetensors"],
    "orbit-interpolation": [*_EXP, "orbit-interpolation", "--zoo", "{Z}", "--out", "{O}/e"],
    "pair-interpolation": [*_EXP, "pair-interpolation", "--zoo", "{Z}", "--out", "{O}/e"],
    "cnn-interpolation": [*_EXP, "cnn-interpolation", "--zoo", "{Z}", "--out", "{O}/e"],
    "orbit-collapse": [*_EXP, "orbit-collapse", "--zoo", "{Z}", "--run", "{R}", "--out", "{O}/e"],
    "latent-map": [*_EXP, "latent-map", "--zoo", "{Z}", "--run", "{R}", "--out", "{O}/e"],
}


@pytest.mark.parametrize("device", ["quantum", "cuda:7"])
@pytest.mark.parametrize("command", COMMANDS)
def test_an_unusable_device_is_one_clear_error(command, device, tmp_path, capsys):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = tmp_path / "out"
    args = [a.format(R=tmp_path / "run", Z=tmp_path / "zoo.safetensors", O=out)
            for a in COMMANDS[command]]
    code, stdout, err = run_cli([*args, "--device", device], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and stdout == "" and len(lines) == 1, err
    assert lines[0].startswith("error: ") and "--device" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_default_to_auto(command):
    from typer.main import get_command

    from symmerge.cli.app import _register, app

    _register()
    cli = get_command(app)
    for name in COMMANDS[command][: 2 if COMMANDS[command][0] == "experiment" else 1]:
        cli = cli.commands[name] if hasattr(cli, "commands") else cli
    option = next(p for p in cli.params if p.name == "device")
    assert option.default == "auto"
