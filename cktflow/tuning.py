"""`cktflow tune`: Ray Tune over the model's training hyper-parameters.

A trial is a whole training run (stack-notes.md: Tune's per-trial overhead, ~0.3-0.5 s with
reused actors, is only worth paying for work that long). The searcher is Optuna's TPE (Ray no
longer ships a scikit-optimize searcher). Trials are scored on a validation share of the training
split, never on the test split, so the test figures stay honest. Runs locally on an embedded Ray
(session files in the cktflow cache) or on a cluster given `ray_address`; an interrupted experiment
resumes with `resume=True`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import replace
from pathlib import Path

__all__ = ["SEARCH_SPACE", "apply_hyperparameters", "tune_training", "validation_split"]

log = logging.getLogger(__name__)

#: name -> (kind, low, high) for floats (log scale where kind is "log"), or ("choice", options).
SEARCH_SPACE = {
    "lr": ("log", 1e-4, 3e-3),
    "weight_decay": ("log", 1e-4, 1e-1),
    "kl": ("log", 1e-6, 1e-3),
    "align": ("uniform", 0.3, 3.0),
    "nce_temperature": ("uniform", 0.05, 0.3),
    "batch_size": ("choice", [64, 128, 256]),
}
METRIC = "val_loss"


def apply_hyperparameters(tcfg, params: dict):
    """A TrainConfig with the searched values put in (unknown names are an error)."""
    unknown = set(params) - set(SEARCH_SPACE)
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {', '.join(sorted(unknown))} (known: {', '.join(SEARCH_SPACE)})")
    weights = replace(tcfg.weights, **{k: float(params[k]) for k in ("kl", "align", "nce_temperature") if k in params})
    top = {k: (int(v) if k == "batch_size" else float(v)) for k, v in params.items() if k in ("lr", "weight_decay", "batch_size")}
    return replace(tcfg, weights=weights, **top)


def validation_split(circuits: int, share: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train indices, validation indices) of the training split, deterministic for a seed."""
    import numpy as np
    perm = np.random.default_rng(seed).permutation(circuits)
    k = max(1, int(round(circuits * share)))
    return sorted(perm[k:].tolist()), sorted(perm[:k].tolist())


def _space():
    from ray import tune
    out = {}
    for name, spec in SEARCH_SPACE.items():
        if spec[0] == "log":
            out[name] = tune.loguniform(spec[1], spec[2])
        elif spec[0] == "uniform":
            out[name] = tune.uniform(spec[1], spec[2])
        else:
            out[name] = tune.choice(spec[1])
    return out


def _trial(params: dict, recipe_name: str, epochs: int | None, data_ref, val_ref) -> None:
    """One Tune trial: a complete training run, reported once at the end on the validation share."""
    import torch
    from ray import tune

    from .model.checkpoint import model_from_checkpoint, resolve_device
    from .model.config import recipe
    from .model.train import evaluate_loss, train

    torch.set_num_threads(1)
    cfg, tcfg = recipe(recipe_name)
    if epochs is not None:
        tcfg.epochs = epochs
    tcfg = apply_hyperparameters(tcfg, params)
    out = Path(tune.get_context().get_trial_dir()) / "model"
    state = train(cfg, data_ref, out, tcfg, device="cpu", progress=False, test=val_ref)
    val = state["history"][-1].get("test_total") if state.get("history") else None
    if val is None or not math.isfinite(val):
        val = evaluate_loss(model_from_checkpoint(state), val_ref, tcfg, resolve_device("cpu"))
    tune.report({METRIC: float(val), "train_loss": float(state["history"][-1]["total"]), "epochs": state["epoch"]})


def tune_training(*, recipe_name: str = "default", num_samples: int = 8, epochs: int | None = None,
                  max_concurrent: int = 1, limit: int | None = None, db=None, out_dir: str | Path = "runs/tune",
                  name: str = "cktgen-hparams", seed: int = 0, ray_address: str | None = None,
                  resume: bool = False, verbose: bool = True) -> dict:
    """Search SEARCH_SPACE with Optuna on Ray Tune; returns the best hyper-parameters and every trial.

    `limit` trains each trial on the first `limit` training circuits (quick runs and tests).
    """
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from .cache import cache_dir
    from .model.data import build_tensor_data, load_examples

    if num_samples < 1 or max_concurrent < 1:
        raise ValueError("num_samples and max_concurrent must be at least 1")
    examples = [e for e in load_examples(db) if e.split == "train"]
    if limit is not None:
        examples = examples[:limit]
    tr, va = validation_split(len(examples), seed=seed)
    data = build_tensor_data([examples[i] for i in tr])
    val = build_tensor_data([examples[i] for i in va])
    if len(data) < 2 or len(val) < 1:
        raise ValueError("too few labelled training circuits to tune on")
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        address = ray_address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            temp = cache_dir() / "ray"
            if len(str(temp)) > 45:       # Ray's unix socket paths must stay short
                import tempfile
                temp = Path(tempfile.gettempdir()) / f"cktflow-ray-{os.getuid()}"
            temp.mkdir(parents=True, exist_ok=True)
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     _temp_dir=str(temp))
        started = True
    try:
        trainable = tune.with_parameters(_trial, recipe_name=recipe_name, epochs=epochs, data_ref=data, val_ref=val)
        trainable = tune.with_resources(trainable, {"cpu": 1})
        storage = str(Path(out_dir).resolve())
        path = Path(storage) / name
        if resume and tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable, param_space=_space(),
                tune_config=tune.TuneConfig(metric=METRIC, mode="min", num_samples=num_samples,
                                            search_alg=OptunaSearch(seed=seed), max_concurrent_trials=max_concurrent,
                                            reuse_actors=True),
                run_config=tune.RunConfig(name=name, storage_path=storage, verbose=1 if verbose else 0))
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    trials = []
    for r in grid:
        trials.append({"config": r.config, METRIC: (r.metrics or {}).get(METRIC),
                       "error": str(r.error) if r.error else None})
    ok = [t for t in trials if t[METRIC] is not None]
    best = min(ok, key=lambda t: t[METRIC]) if ok else None
    return {"recipe": recipe_name, "metric": METRIC, "train_circuits": len(data), "val_circuits": len(val),
            "best": best, "trials": trials, "path": str(path)}
