"""Fine-tuning: continue training a model from its checkpoint on a grown dataset (the flywheel).

The weights come from the checkpoint; the optimiser starts fresh at `lr_scale` times the recipe's
rate with a short schedule of its own, so a few epochs adapt the model to the new circuits without
undoing what it learned. The run is an ordinary `train` run in `out_dir` (seeded there before the
first epoch), so it resumes after an interruption like any training run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

import torch

from .checkpoint import CHECKPOINT_NAME, MODEL_NAME, default_checkpoint, load_checkpoint, save_checkpoint
from .config import CktGenConfig, TrainConfig
from .data import TensorData, build_tensor_data, load_examples
from .network import CktGen
from .predictor import PREDICTOR_NAME, finetune_predictor, predictor_path
from .train import _schedule, train

__all__ = ["finetune", "run_finetune", "FINETUNE_INFO"]

log = logging.getLogger(__name__)

#: What a fine-tune run records about its origin, beside its checkpoint.
FINETUNE_INFO = "finetune.json"


def finetune(checkpoint: str | Path, data: TensorData, out_dir: str | Path, *, epochs: int = 3,
             lr_scale: float = 0.2, seed: int = 0, device: str = "auto", progress: bool = True,
             test: TensorData | None = None, stop_after: int | None = None, predictor: bool = True) -> dict:
    """Fine-tune the model in `checkpoint` on `data`; resumes when out_dir already holds the run.

    With `predictor` (the default) the predictor beside `checkpoint` is fine-tuned on `data` too;
    a caller that fine-tunes it on other circuits (cktflow.model.usable) turns that off.

    Returns the final training state (as `train` does); out_dir/model.pt is the fine-tuned model.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not 0 < lr_scale <= 1:
        raise ValueError(f"lr_scale must be within (0, 1], got {lr_scale}")
    if len(data) == 0:
        raise ValueError("no circuits to fine-tune on")
    out = Path(out_dir)
    ckpt = out / CHECKPOINT_NAME
    if ckpt.exists():
        state = load_checkpoint(ckpt)
        cfg, tcfg = CktGenConfig.from_dict(state["config"]), TrainConfig.from_dict(state["train_config"])
        log.info("resuming the fine-tune in %s after epoch %d", out, state["epoch"])
    else:
        source = load_checkpoint(checkpoint)
        cfg = CktGenConfig.from_dict(source["config"])
        tcfg = TrainConfig.from_dict(source["train_config"]) if "train_config" in source else TrainConfig()
        tcfg.epochs, tcfg.lr, tcfg.seed = epochs, tcfg.lr * lr_scale, seed
        model = CktGen(cfg)
        model.load_state_dict(source["model"])
        opt = model.configure_optimizer(tcfg.lr, tcfg.weight_decay, tcfg.betas)
        steps = math.ceil(len(data) / tcfg.batch_size) * tcfg.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(steps))
        save_checkpoint(ckpt, {"config": cfg.to_dict(), "train_config": tcfg.to_dict(), "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 0,
                               "history": []})
        digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:16]
        (out / FINETUNE_INFO).write_text(json.dumps({"source": str(checkpoint), "source_sha256": digest,
                                                     "source_epoch": source.get("epoch"), "epochs": epochs,
                                                     "lr": tcfg.lr, "circuits": len(data), "seed": seed}, indent=1))
    state = train(cfg, data, out, tcfg, resume=True, device=device, progress=progress, test=test,
                  stop_after=stop_after)
    # the predictor that refines decoded values learns the new circuits too (same epochs, same share
    # of its own learning rate); a model without one stays without
    source_predictor = predictor_path(checkpoint)
    if predictor and state["epoch"] >= tcfg.epochs and source_predictor.is_file() \
            and not (out / PREDICTOR_NAME).exists():
        finetune_predictor(source_predictor, data, out / PREDICTOR_NAME, epochs=tcfg.epochs, lr_scale=lr_scale,
                           seed=seed, device=device, progress=progress)
    return state


def run_finetune(checkpoint: str | Path | None = None, *, db=None, out_dir: str | Path | None = None,
                 epochs: int = 3, lr_scale: float = 0.2, seed: int = 0, device: str = "auto",
                 threads: int | None = None, ship: bool = False, progress: bool = True) -> dict:
    """What `cktflow train --finetune` does: fine-tune `checkpoint` (default: the shipped model) on the
    dataset's current training split (grown by the flywheel), log the test loss, optionally ship it."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    source = Path(checkpoint) if checkpoint else default_checkpoint()
    if not source.is_file():
        raise FileNotFoundError(f"checkpoint {source} does not exist")
    out = Path(out_dir) if out_dir else Path("runs") / "finetune"
    examples = load_examples(db)
    data = build_tensor_data([e for e in examples if e.split == "train"])
    test = build_tensor_data([e for e in examples if e.split == "test"])
    t0 = time.perf_counter()
    state = finetune(source, data, out, epochs=epochs, lr_scale=lr_scale, seed=seed, device=device,
                     progress=progress, test=test)
    if ship:
        target = default_checkpoint()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / MODEL_NAME, target)
        if (out / PREDICTOR_NAME).exists():
            shutil.copyfile(out / PREDICTOR_NAME, target.parent / PREDICTOR_NAME)
    last = state["history"][-1] if state.get("history") else {}
    return {"source": str(source), "out": str(out), "model": str(out / MODEL_NAME), "epochs": state["epoch"],
            "train_circuits": len(data), "seconds_this_run": round(time.perf_counter() - t0, 1),
            "final_loss": last.get("total"), "final_test_loss": last.get("test_total"), "shipped": ship}
