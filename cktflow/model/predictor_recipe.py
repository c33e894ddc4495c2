"""The predictor's part of the default recipe, on a generator that is already trained.

`cktflow train --recipe default` trains the generator, the evaluator and the predictor, then the
predictor's on-policy rounds on the generator's decodes. When only what the predictor learns changes
(as when the testbench gained the usable-in-feedback metrics: the generator is conditioned on gain,
UGF and PM alone, whose labels did not change), this reruns exactly the predictor's steps of the
recipe (same seeds, epochs and decodes) on the shipped generator, in about a quarter of the time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .data import build_tensor_data, load_examples
from .onpolicy import ONPOLICY_DECODES, self_train_predictor
from .predictor import PREDICTOR_NAME, train_predictor
from .train import load_checkpoint, model_from_checkpoint, resolve_device

__all__ = ["retrain_predictor"]

log = logging.getLogger(__name__)


def retrain_predictor(checkpoint: str | Path | None = None, out_dir: str | Path = "runs/predictor", *,
                      db=None, seed: int = 0, onpolicy: int = ONPOLICY_DECODES, device: str = "auto",
                      threads: int | None = 1, progress: bool = True) -> dict:
    """Train the predictor from scratch on the training split, then its on-policy rounds on the
    generator in `checkpoint` (the shipped one by default); writes OUT/predictor.pt. Resumable: a
    finished predictor (with its on-policy record) is not trained again."""
    from .sample import default_checkpoint

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
        generator = model_from_checkpoint(load_checkpoint(ckpt, resolve_device(device)), resolve_device(device))
        info["onpolicy"] = self_train_predictor(generator, path, examples, path, n=onpolicy, seed=seed,
                                                device=device, progress=progress)
    info["seconds"] = round(time.perf_counter() - t0, 1)
    return info
