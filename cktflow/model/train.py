"""Training as a function: `train(cfg, data, out_dir, ...)`, resumable from its checkpoint.

A checkpoint holds the model's state_dict, its `CktGenConfig`, the `TrainConfig`, the optimizer and
scheduler state and the number of finished epochs, so a run killed at any point resumes from its
last finished epoch. Randomness is re-seeded from (seed, epoch) at the start of every epoch, so a
resumed run makes exactly the same updates as one that was never interrupted. Checkpoint I/O is
cktflow.model.checkpoint; the whole recipe (generator, predictor, evaluator, on-policy rounds) is
cktflow.model.pipeline, which calls this module.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from .checkpoint import CHECKPOINT_NAME, MODEL_NAME, export_weights, load_checkpoint, resolve_device, save_checkpoint
from .config import CktGenConfig, TrainConfig
from .data import TensorData
from .losses import loss_terms
from .network import CktGen

__all__ = ["train", "evaluate_loss", "optimizer_step"]

log = logging.getLogger(__name__)

#: Share of the continuous spec entries hidden from the spec encoder in training.
HIDE_SPEC_SHARE = 0.3


def _schedule(total_steps: int):
    """Linear warm-up over 3 % of the steps, then cosine decay to 5 % of the peak rate."""
    warm = max(1, int(0.03 * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))
    return factor


def optimizer_step(model, opt, sched, total: torch.Tensor, terms: dict, sums: dict[str, float]) -> None:
    """One update of a batch's total loss (gradients clipped at 1, the schedule stepped), and the
    batch's loss terms added into the epoch's `sums` (the full-spec generator's loop shares it)."""
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    sums["total"] = sums.get("total", 0.0) + float(total.detach())
    for name, v in terms.items():
        sums[name] = sums.get(name, 0.0) + float(v)


def train(cfg: CktGenConfig, data: TensorData, out_dir: str | Path, tcfg: TrainConfig | None = None, *,
          resume: bool = False, device: str = "auto", progress: bool = True, test: TensorData | None = None,
          stop_after: int | None = None) -> dict:
    """Train CktGen on `data`; write out_dir/checkpoint.pt every epoch and out_dir/model.pt at the end.

    Returns the final checkpoint state. `test`, when given, is scored after every epoch (its losses
    are logged and kept in the history; it is never trained on). `stop_after` ends the run after
    that many epochs of the schedule (a later resume continues it).
    """
    tcfg = tcfg or TrainConfig()
    if len(data) == 0:
        raise ValueError("no training circuits")
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    torch.manual_seed(tcfg.seed)               # the initial weights depend on the seed alone
    model = CktGen(cfg).to(dev)
    opt = model.configure_optimizer(tcfg.lr, tcfg.weight_decay, tcfg.betas)
    steps_per_epoch = math.ceil(len(data) / tcfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(steps_per_epoch * tcfg.epochs))
    start, history = 0, []
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, dev)
        if state["config"] != cfg.to_dict():
            raise ValueError(f"{ckpt_path} was trained with another model config; use a new --out folder")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = state["epoch"], state["history"]
        log.info("resuming %s after epoch %d", ckpt_path, start)
    log.info("training %d parameters on %d circuits, %s, epochs %d-%d", model.num_parameters(), len(data), dev,
             start + 1, tcfg.epochs)
    x_all, cls_all, spec_all = data.x.to(dev), data.classes.to(dev), data.spec.to(dev)
    # recorded so that an evaluation never scores the model on a topology it was trained on
    topologies = sorted({c.topology_hash() for c in data.circuits})
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=tcfg.epochs, initial=start, desc="train", unit="epoch")
    state = None
    last_epoch = tcfg.epochs if stop_after is None else min(tcfg.epochs, stop_after)
    for epoch in range(start, last_epoch):
        t0 = time.perf_counter()
        torch.manual_seed(tcfg.seed * 100_003 + epoch)
        perm = torch.randperm(len(data)).to(dev)
        model.train()
        sums: dict[str, float] = {}
        for k in range(steps_per_epoch):
            idx = perm[k * tcfg.batch_size:(k + 1) * tcfg.batch_size]
            if len(idx) < 2:
                continue
            spec = spec_all[idx]
            present = torch.rand(spec.shape, device=dev) >= HIDE_SPEC_SHARE
            total, terms = loss_terms(model, x_all.index(idx), cls_all[idx], spec, present, tcfg.weights)
            optimizer_step(model, opt, sched, total, terms, sums)
        record = {"epoch": epoch + 1, "seconds": time.perf_counter() - t0,
                  **{k: v / steps_per_epoch for k, v in sums.items()}}
        if test is not None and len(test):
            record["test_total"] = evaluate_loss(model, test, tcfg, dev)
        history.append(record)
        state = {"config": cfg.to_dict(), "train_config": tcfg.to_dict(), "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch + 1,
                 "history": history, "train_topologies": topologies}
        save_checkpoint(ckpt_path, state)
        log.info("epoch %d: loss %.4f%s (%.1f s)", epoch + 1, record["total"],
                 f", test {record['test_total']:.4f}" if "test_total" in record else "", record["seconds"])
        if bar is not None:
            bar.set_postfix(loss=f"{record['total']:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    if state is None:
        state = load_checkpoint(ckpt_path, dev)
    export_weights(state, out_dir / MODEL_NAME)
    return state


@torch.no_grad()
def evaluate_loss(model: CktGen, data: TensorData, tcfg: TrainConfig, dev: torch.device) -> float:
    """Mean total loss on held-out circuits (spec fully visible), with fixed noise."""
    model.eval()
    rng_state = torch.get_rng_state()
    torch.manual_seed(12345)
    total, n = 0.0, 0
    for k in range(0, len(data), 256):
        idx = torch.arange(k, min(k + 256, len(data)))
        spec = data.spec[idx].to(dev)
        loss, _ = loss_terms(model, data.x.index(idx).to(dev), data.classes[idx].to(dev), spec,
                             torch.ones_like(spec, dtype=torch.bool), tcfg.weights)
        total += float(loss) * len(idx)
        n += len(idx)
    torch.set_rng_state(rng_state)
    model.train()
    return total / max(n, 1)
