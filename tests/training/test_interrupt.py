"""Ctrl+C during a fit stays a KeyboardInterrupt (Lightning would exit the process and
ignore SIGINT from then on); the run resumes from its last checkpoint."""

import signal

import pytest

from symmerge.training import train
from symmerge.training.module import AutoencoderModule
from tests.training.test_run import TINY


def test_ctrl_c_is_a_keyboard_interrupt_and_the_run_resumes(siren_zoo, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real = AutoencoderModule.on_train_epoch_end
    handler = signal.getsignal(signal.SIGINT)

    def ctrl_c_in_the_second_epoch(self):
        real(self)
        if self.current_epoch == 1:
            raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(AutoencoderModule, "on_train_epoch_end", ctrl_c_in_the_second_epoch)
        with pytest.raises(KeyboardInterrupt):
            train(siren_zoo, run, overrides=TINY, max_epochs=3, progress=False)
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl+C still works
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "result.json").exists()
    lines: list[str] = []
    result = train(siren_zoo, run, overrides=TINY, max_epochs=3, progress=False,
                   log=lines.append)
    assert any(ln.startswith(f"resuming {run} after epoch 1 of 3") for ln in lines), lines
    assert result.timings["epochs"] == 3


def test_other_errors_pass_unchanged(siren_zoo, tmp_path, monkeypatch):
    def broken(self, batch, batch_idx):
        raise RuntimeError("broken step")
    monkeypatch.setattr(AutoencoderModule, "training_step", broken)
    with pytest.raises(RuntimeError, match="broken step"):
        train(siren_zoo, tmp_path / "run", overrides=TINY, max_epochs=1, progress=False)
