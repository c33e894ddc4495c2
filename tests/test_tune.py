"""`cktflow tune` on a real local Ray with a tiny recipe: trials run, are scored, and the best is picked."""

import json

import pytest
from click.testing import CliRunner

from cli import main

pytest.importorskip("torch")
pytest.importorskip("ray.tune.search.optuna")


def test_apply_hyperparameters_sets_fields_and_rejects_unknown():
    from cktflow.model.config import recipe
    from cktflow.tuning import apply_hyperparameters
    _, tcfg = recipe("tiny")
    out = apply_hyperparameters(tcfg, {"lr": 3e-4, "kl": 1e-4, "batch_size": 64})
    assert out.lr == 3e-4 and out.weights.kl == 1e-4 and out.batch_size == 64 and tcfg.lr != 3e-4
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        apply_hyperparameters(tcfg, {"dropout": 0.1})


def test_validation_share_is_disjoint_and_deterministic():
    from cktflow.tuning import validation_split
    tr, va = validation_split(50, seed=3)
    assert not set(tr) & set(va) and len(tr) + len(va) == 50 and validation_split(50, seed=3) == (tr, va)


def test_tune_two_tiny_trials_on_local_ray(tmp_path):
    r = CliRunner().invoke(main, ["tune", "--recipe", "tiny", "--trials", "2", "--epochs", "1", "--limit", "120",
                                  "--out", str(tmp_path), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)            # --json: one document on stdout; Ray Tune's chatter goes to stderr
    assert len(data["trials"]) == 2 and all(t["error"] is None for t in data["trials"])
    losses = [t["val_loss"] for t in data["trials"]]
    assert data["best"]["val_loss"] == min(losses) and all(v > 0 for v in losses)
    assert data["trials"][0]["config"] != data["trials"][1]["config"]        # the searcher proposed two points
    assert (tmp_path / "cktgen-hparams").is_dir()
