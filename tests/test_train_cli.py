"""train.py's flags come from TrainConfig: one set of defaults, one place that fills the config."""
import sys
from dataclasses import fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from lumos.train.config import TrainConfig  # noqa: E402


def test_flag_defaults_are_train_configs(tmp_path):
    _, a = train.parse_args(["--module", "planning", "--preset", "tiny", "--out", str(tmp_path)])
    cfg = train.train_config(a, "d.jsonl", "tok.model", None)
    assert cfg == TrainConfig(data="d.jsonl", out=str(tmp_path), tokenizer="tok.model")
    # the copies disagreed: TrainConfig said save_every=0 (only at the end), the CLI 50; TrainConfig now
    # owns the CLI's 50, so a programmatic run also leaves a model behind every 50 steps
    assert TrainConfig.save_every == 50 and cfg.save_every == 50
    assert {f.name for f in fields(TrainConfig)} - set(train.NOT_FLAGS) <= set(vars(a))   # every field has its flag


def test_every_flag_reaches_the_config(tmp_path):
    _, a = train.parse_args(["--module", "grounding", "--init", str(tmp_path), "--out", str(tmp_path / "o"),
                             "--lr", "3e-4", "--epochs", "1.5", "--save-every", "0", "--lora-rank", "8",
                             "--lora-targets", "wq,wv", "--tokenization", "paper", "--no-progress"])
    cfg = train.train_config(a, "d.jsonl", str(tmp_path), None)
    assert (cfg.lr, cfg.epochs, cfg.save_every, cfg.lora_rank, cfg.lora_targets, cfg.tokenization, cfg.progress) == \
        (3e-4, 1.5, 0, 8, ("wq", "wv"), "paper", False)
    assert cfg.init == str(tmp_path) and cfg.lora().rank == 8


@pytest.mark.parametrize("given,default", [([], True), (["--lr", "2e-5"], False)])
def test_the_lr_note_is_about_the_default_not_a_float_comparison(tmp_path, given, default):
    _, a = train.parse_args(["--module", "planning", "--preset", "tiny", "--out", str(tmp_path)] + given)
    assert a.lr == 2e-5 and a.default_lr is default
