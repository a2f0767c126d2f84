"""Library errors name parameters; each command shows them as its own flags."""

from __future__ import annotations

import pytest
import typer

from symmerge.cli.flags import as_flags, command_flags, flag_errors
from symmerge.errors import SymmergeError
from tests.cli._util import run_cli


def _command(
    networks: list[str] = typer.Argument(...),
    orbit_zoo: str | None = typer.Option(None),
    pna_run: str | None = typer.Option(None, "--pna-run", "-p"),
    alpha: float = typer.Option(0.5, "--mix"),
) -> None:
    raise SymmergeError("give `alpha` or `orbit_zoo`, not `weights`; see `pna_run` and "
                        "`networks`")


def test_flags_of_a_command():
    assert command_flags(_command) == {"networks": "NETWORKS", "orbit_zoo": "--orbit-zoo",
                                       "pna_run": "--pna-run", "alpha": "--mix"}


def test_backticked_parameters_become_flags():
    flags = command_flags(_command)
    assert as_flags("pass `orbit_zoo` (`weights` stays)", flags) == \
        "pass --orbit-zoo (`weights` stays)"
    with pytest.raises(SymmergeError) as info:
        flag_errors(_command)(["x"])
    assert str(info.value) == ("give --mix or --orbit-zoo, not `weights`; see --pna-run and "
                               "NETWORKS")


@pytest.mark.parametrize(("argv", "message"), [
    (["merge", "a.pth", "b.pth", "c.pth", "--alpha", "0.5", "--out", "m.safetensors"],
     "error: --alpha is for two networks; use --weights for 3\n"),
    (["experiment", "orbit-interpolation", "--zoo", "z.safetensors", "--orbit-zoo",
      "o.safetensors", "--out", "o"],
     "error: orbit-interpolation takes either a zoo to generate orbits from (--zoo) or a "
     "published orbit (--orbit-zoo), not both\n"),
    (["experiment", "orbit-collapse", "--orbit-zoo", "o.safetensors", "--orbit-size", "4",
      "--out", "o"],
     "error: orbit-collapse: --orbit-size shapes the orbits generated from --zoo; with "
     "--orbit-zoo the orbits are that zoo's own: drop it\n"),
])
def test_commands_speak_of_their_flags(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and message in err, err
    assert list(tmp_path.iterdir()) == []
