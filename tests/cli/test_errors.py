"""Library errors in the CLI's words: parameters become the running command's flags."""

from __future__ import annotations

import pickle

import pytest
import typer.main

from symmerge.cli.app import _register, app
from symmerge.cli.errors import Flag, flag_names, option_flags
from symmerge.errors import SymmergeError
from tests.cli._util import run_cli

FLAGS = {"per_image": Flag("--per-image"), "n": Flag("--n"), "zoo": Flag("--zoo"),
         "limit": Flag("--limit"),
         "fresh": Flag("--fresh", switch=True), "images": Flag("--images"),
         "quiet": Flag("--quiet", switch=True, off="--no-quiet")}


@pytest.mark.parametrize(("message", "params", "shown"), [
    ("per_image must be positive, got 0", (), "--per-image must be positive, got 0"),
    ("n must be positive, got 0", (), "--n must be positive, got 0"),
    ("rerun with fresh=True to discard them", ("fresh",), "rerun with --fresh to discard them"),
    ("pass quiet=False", ("quiet",), "pass --no-quiet"),
    ("pass the images explicitly (images='cifar10-gs:DIR')", ("images",),
     "pass the images explicitly (--images cifar10-gs:DIR)"),
    ("limit 13 exceeds the 12 images at stride 2", ("limit", "stride"),
     "--limit 13 exceeds the 12 images at stride 2"),
    # only the parameters a message names: a zoo, a per_image-like word, an unknown name
    ("zoo z.safetensors has too few networks", (), "zoo z.safetensors has too few networks"),
    ("cfg.per_image and per-image stay; per_images too", ("per_image",),
     "cfg.per_image and per-image stay; per_images too"),
    ("seed must be an integer", (), "seed must be an integer"),
    ("stride must be positive", ("stride",), "stride must be positive"),
])
def test_flag_names(message, params, shown):
    assert flag_names(message, FLAGS, params) == shown


def test_option_flags_come_from_the_command():
    _register()
    group = typer.main.get_command(app)
    flags = option_flags(group.commands["zoo"].commands["inr"])
    assert flags["per_image"] == Flag("--per-image")
    assert flags["fresh"] == Flag("--fresh", switch=True)


def test_params_survive_pickling():
    exc = pickle.loads(pickle.dumps(SymmergeError("rerun with fresh=True", params=("fresh",))))
    assert str(exc) == "rerun with fresh=True" and exc.params == ("fresh",)


def test_the_cli_shows_the_commands_flags(capsys):
    code, _, err = run_cli(["zoo", "inr", "--limit", "4", "--per-image", "0", "--out", "z"],
                           capsys)
    assert code == 2 and err == "error: --per-image must be positive, got 0\n"
