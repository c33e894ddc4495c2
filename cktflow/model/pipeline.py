"""The training recipe: everything `cktflow train` runs, in order.

The generator (cktflow.model.train) trains while the performance predictor (predictor.py) and the
evaluator network (evaluator.py) train beside it in a second process; then the predictor gets its
on-policy rounds on the trained generator's decodes (onpolicy.py) and, when asked for, its
coverage round. This module sits above all of them: it imports them, none of them imports it.

`retrain_predictor` reruns only the predictor's steps of the recipe (same seed, epochs and decodes)
on a generator that is already trained: what `cktflow train --predictor-only` does when only what
the predictor learns changed (as when the testbench gained the usable-in-feedback metrics; the
generator is conditioned on gain, UGF and PM, whose labels did not change).
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import time
from pathlib import Path

import torch

from .checkpoint import CHECKPOINT_NAME, MODEL_NAME, default_checkpoint, load_checkpoint, model_from_checkpoint, \
    resolve_device
from .config import recipe
from .data import TensorData, build_tensor_data, load_examples
from .evaluator import train_evaluator
from .onpolicy import ONPOLICY_DECODES, coverage_train_predictor, self_train_predictor
from .predictor import PREDICTOR_NAME, train_predictor
from .train import train

__all__ = ["run_recipe", "retrain_predictor"]


def _train_beside(data: TensorData, predictor_path: str | None, evaluator_path: str | None, seed: int,
                  device: str) -> None:
    """The child process of `run_recipe`: the predictor and the evaluator on the generator's
    training data (handed over, not re-read: a store the flywheel appends to could have grown)."""
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    if predictor_path:
        train_predictor(data, predictor_path, seed=seed, device=device)
    if evaluator_path:
        train_evaluator(data, evaluator_path, seed=seed, device=device)


def run_recipe(recipe_name: str = "default", *, db=None, out_dir: str | Path | None = None, resume: bool = False,
               seed: int | None = None, device: str = "auto", epochs: int | None = None, threads: int | None = None,
               evaluator: bool = True, predictor: bool = True, onpolicy: int | None = None,
               coverage: int = 0, ship: bool = False, progress: bool = True) -> dict:
    """What `cktflow train` does: load the dataset's train split, train a recipe (resumable) and,
    beside it in a second process, the performance predictor (which refines decoded device values)
    and the evaluator network; then give the predictor its on-policy rounds on the trained
    generator's decodes (`onpolicy` decodes a round, default ONPOLICY_DECODES, 0 skips them;
    cktflow.model.onpolicy), optionally its coverage round (`coverage` decodes; the default 0 skips
    it: it helps the closed loop on specs outside the data but costs accuracy on in-distribution
    class targets, README "Model"), and optionally install the weights as the shipped model.

    Returns a summary: paths, epochs, seconds, final losses.
    """
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    cfg, tcfg = recipe(recipe_name)
    if seed is not None:
        tcfg.seed = seed
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        tcfg.epochs = epochs
    out = Path(out_dir) if out_dir else Path("runs") / recipe_name
    for name, value in (("onpolicy", onpolicy), ("coverage", coverage)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be at least 0, got {value}")
    onpolicy = ONPOLICY_DECODES if onpolicy is None else onpolicy
    examples = load_examples(db)
    train_examples = [e for e in examples if e.split == "train"]
    data = build_tensor_data(train_examples)
    test = build_tensor_data([e for e in examples if e.split == "test"])
    pred_path, ev_path = out / PREDICTOR_NAME, out / "evaluator.pt"
    # the predictor and the evaluator need only the data: they train beside the generator, in a
    # second process on the second core (default recipe: generator 16 min, both of them 6 min)
    side_jobs = (predictor and not (resume and pred_path.exists()), evaluator and not (resume and ev_path.exists()))
    side = None
    t0 = time.perf_counter()
    if any(side_jobs):
        out.mkdir(parents=True, exist_ok=True)
        side = multiprocessing.get_context("spawn").Process(
            target=_train_beside, args=(data, str(pred_path) if side_jobs[0] else None,
                                        str(ev_path) if side_jobs[1] else None, tcfg.seed, device), daemon=True)
        side.start()
    try:
        state = train(cfg, data, out, tcfg, resume=resume, device=device, progress=progress, test=test)
        seconds = time.perf_counter() - t0
        if side is not None:
            side.join()
            if side.exitcode != 0:
                raise RuntimeError(f"training the predictor/evaluator beside the generator failed (exit code "
                                   f"{side.exitcode}; its traceback is above); rerun with --resume")
    finally:
        if side is not None and side.is_alive():
            side.terminate()
    onpolicy_round = coverage_round = generator = None
    # each step records itself in the predictor's file, so a resumed run does not repeat it; the
    # generator (only decoded from, never trained here) is built once, and only if a step runs
    if predictor and onpolicy > 0 and load_checkpoint(pred_path).get("onpolicy") is None:
        generator = model_from_checkpoint(state, resolve_device(device))
        onpolicy_round = self_train_predictor(generator, pred_path, train_examples, pred_path, n=onpolicy,
                                              seed=tcfg.seed, device=device, progress=progress)
    if predictor and coverage > 0 and "coverage" not in (load_checkpoint(pred_path).get("onpolicy") or {}):
        if generator is None:
            generator = model_from_checkpoint(state, resolve_device(device))
        coverage_round = coverage_train_predictor(generator, pred_path, train_examples, pred_path, n=coverage,
                                                  seed=tcfg.seed, device=device, progress=progress)
    if ship:
        target = default_checkpoint()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / MODEL_NAME, target)
        for extra in (pred_path, ev_path):
            if extra.exists():
                shutil.copyfile(extra, target.parent / extra.name)
    last = state["history"][-1] if state.get("history") else {}
    return {"recipe": recipe_name, "out": str(out), "checkpoint": str(out / CHECKPOINT_NAME),
            "model": str(out / MODEL_NAME), "epochs": state["epoch"], "train_circuits": len(data),
            "seconds_generator": round(seconds, 1), "seconds_this_run": round(time.perf_counter() - t0, 1),
            "onpolicy": onpolicy_round, "coverage": coverage_round,
            "seconds_total": round(sum(h["seconds"] for h in state.get("history", [])), 1),
            "final_loss": last.get("total"), "final_test_loss": last.get("test_total"), "shipped": ship}


def retrain_predictor(checkpoint: str | Path | None = None, out_dir: str | Path = "runs/predictor", *,
                      db=None, seed: int = 0, onpolicy: int = ONPOLICY_DECODES, device: str = "auto",
                      threads: int | None = 1, ship: bool = False, progress: bool = True) -> dict:
    """Train the predictor from scratch on the training split, then its on-policy rounds on the
    generator in `checkpoint` (the shipped one by default); writes OUT/predictor.pt and, with `ship`,
    installs it beside the shipped model. Resumable: a finished step is not run again."""
    if threads is not None:
        torch.set_num_threads(threads)
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREDICTOR_NAME
    t0 = time.perf_counter()
    examples = [e for e in load_examples(db) if e.split == "train"]
    info: dict = {"generator": str(ckpt), "predictor": str(path), "train_examples": len(examples)}
    if not path.exists():
        data = build_tensor_data(examples)
        train_predictor(data, path, seed=seed, device=device, progress=progress)
        info["trained_circuits"] = len(data)
    info["seconds_train"] = round(time.perf_counter() - t0, 1)
    if onpolicy > 0 and load_checkpoint(path).get("onpolicy") is None:
        dev = resolve_device(device)
        generator = model_from_checkpoint(load_checkpoint(ckpt, dev), dev)
        info["onpolicy"] = self_train_predictor(generator, path, examples, path, n=onpolicy, seed=seed,
                                                device=device, progress=progress)
    if ship:
        shutil.copyfile(path, default_checkpoint().parent / PREDICTOR_NAME)
    info["seconds"] = round(time.perf_counter() - t0, 1)
    return info
