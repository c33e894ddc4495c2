"""Training as a function: `train(cfg, data, out_dir, ...)`, resumable from its checkpoint.

A checkpoint holds the model's state_dict, its `CktGenConfig`, the `TrainConfig`, the optimizer and
scheduler state and the number of finished epochs, so a run killed at any point resumes from its
last finished epoch. Randomness is re-seeded from (seed, epoch) at the start of every epoch, so a
resumed run makes exactly the same updates as one that was never interrupted.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import torch

from .config import CktGenConfig, TrainConfig, recipe
from .data import TensorData, build_tensor_data, load_examples
from .losses import loss_terms
from .network import CktGen

__all__ = ["train", "resolve_device", "save_checkpoint", "load_checkpoint", "model_from_checkpoint",
           "CHECKPOINT_NAME", "MODEL_NAME", "export_weights", "run_recipe"]

log = logging.getLogger(__name__)

#: Full training state (resume from it) and the weights-only file that sampling loads.
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
#: Share of the continuous spec entries hidden from the spec encoder in training.
HIDE_SPEC_SHARE = 0.3


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a run killed while saving keeps its previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location=device, weights_only=True)


def model_from_checkpoint(state: dict, device: str | torch.device = "cpu") -> CktGen:
    model = CktGen(CktGenConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def export_weights(state: dict, path: Path) -> None:
    """The weights-only file: model state and configs, no optimizer (what sampling needs)."""
    save_checkpoint(path, {k: state[k] for k in ("config", "train_config", "model", "epoch", "train_topologies")
                           if k in state})


def _schedule(total_steps: int):
    """Linear warm-up over 3 % of the steps, then cosine decay to 5 % of the peak rate."""
    warm = max(1, int(0.03 * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))
    return factor


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
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            sums["total"] = sums.get("total", 0.0) + float(total.detach())
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + float(v)
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


def _train_beside(data: TensorData, predictor_path: str | None, evaluator_path: str | None, seed: int,
                  device: str) -> None:
    """The child process of `run_recipe`: the predictor and the evaluator on the generator's
    training data (handed over, not re-read: a store the flywheel appends to could have grown)."""
    from .evaluator import train_evaluator
    from .predictor import train_predictor

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
    # both import this module: top-level imports would be circular
    from .onpolicy import ONPOLICY_DECODES, coverage_train_predictor, self_train_predictor
    from .predictor import PREDICTOR_NAME

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
        from .sample import default_checkpoint
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
