"""Training the generator on the full spec at a PDK: from the behavioural model or from scratch.

The model is CktGen with a full-spec input (cktflow.model.full_spec): the circuit encoder, decoder
and latent space are the behavioural model's. The objective is CktGen's without the paper's class
triple (a sky130 circuit has no OCB label): reconstruction of the behavioural circuit from its own
latent and from the full spec's, the KL terms, alignment of the two latent means, InfoNCE between
them (pairs of one behavioural circuit are not negatives of each other: several sizings of one
topology measure several specs), and a head on the circuit latent that predicts the full spec
(`SpecHeads.full`), which ranks proposals.

Fine-tuning (`init_from` a behavioural checkpoint) loads every weight the two models share and
starts the full-spec encoder as a copy of the behavioural vector encoder on the three entries they
share (gain, UGF, PM come first in the full vector, on the same scales), the other entries at zero
weight; the full-spec head starts from the vector head's rows for those three. So before its first
step the fine-tuned model reads a sky130 spec's gain, UGF and PM as the behavioural model does.

Every epoch writes OUT/checkpoint.pt; a killed run resumes after its last finished epoch with the
same updates (randomness is re-seeded from (seed, epoch)).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import CHECKPOINT_NAME, export_weights, load_checkpoint, save_checkpoint
from .config import CktGenConfig, TrainConfig
from .data import SPEC_DIM, CircuitTensors
from .full_spec import CONDITION_DIM, FULL_SPEC_DIM, FullSpecData
from .losses import RECON_TERMS, gaussian_kl, masked_info_nce, reconstruction
from .network import CktGen
from .train import _schedule, optimizer_step

__all__ = ["full_loss_terms", "train_full_spec", "init_from_behavioural", "full_spec_config", "test_scores",
           "run_generator_recipe", "GENERATOR_EPOCHS",
           "PRESENT_SHARE"]

log = logging.getLogger(__name__)

#: Each training pair shows the spec encoder a random share of its measured metrics, drawn per pair
#: in this range: a designer's spec names a few metrics, the implicit targets a few more.
PRESENT_SHARE = (0.15, 0.7)


def full_spec_config(base: CktGenConfig | None = None) -> CktGenConfig:
    """The behavioural architecture (or `base`'s) with the full-spec input."""
    d = (base or CktGenConfig()).to_dict()
    d.update(full_spec_dim=FULL_SPEC_DIM, condition_dim=CONDITION_DIM)
    return CktGenConfig.from_dict(d)


def _sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def draw_present(spec: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which measured entries the spec encoder sees, per pair (at least one when any is measured)."""
    measured = ~torch.isnan(spec)
    lo, hi = PRESENT_SHARE
    share = lo + (hi - lo) * torch.rand(spec.shape[0], 1, generator=generator)
    present = measured & (torch.rand(spec.shape, generator=generator) < share)
    # a pair left with nothing shows its gain (always measured) instead
    empty = ~present.any(-1)
    present[empty, 0] = measured[empty, 0]
    return present


def full_loss_terms(model: CktGen, x: CircuitTensors, spec: torch.Tensor, present: torch.Tensor,
                    conditions: torch.Tensor, same: torch.Tensor, weights) -> tuple[torch.Tensor, dict]:
    """Total loss and its named terms (module docstring). spec may hold NaN where not measured;
    same (B, B) bool marks pairs of one behavioural circuit."""
    b = x.types.shape[0]
    mu_c, lv_c = model.encode(x)
    mu_f, lv_f = model.encode_full(spec, present, conditions)
    z_c = _sample(mu_c, lv_c)
    x2 = CircuitTensors(*(torch.cat([getattr(x, f)] * 2) for f in x.__dataclass_fields__))
    out = model.decode(torch.cat([z_c, _sample(mu_f, lv_f)]), x2)
    terms: dict[str, torch.Tensor] = {}
    for name, part in (("circuit", 0), ("spec", 1)):
        sl = slice(part * b, (part + 1) * b)
        for k, v in reconstruction({k: v[sl] for k, v in out.items()}, x).items():
            terms[f"{k}_{name}"] = v
    terms["kl"] = (gaussian_kl(mu_c, lv_c) + gaussian_kl(mu_f, lv_f, mu_c, lv_c) + gaussian_kl(mu_c, lv_c, mu_f, lv_f)
                   + gaussian_kl(mu_f, lv_f))
    terms["align"] = F.smooth_l1_loss(mu_f, mu_c)
    terms["nce"] = masked_info_nce(mu_f, mu_c, same, weights.nce_temperature)
    measured = ~torch.isnan(spec)
    pred = model.heads.full(z_c)
    terms["reg"] = F.mse_loss(pred[measured], spec[measured])
    w = weights
    total = sum(getattr(w, k.split("_")[0]) * v for k, v in terms.items() if k.split("_")[0] in RECON_TERMS)
    total = total + w.kl * terms["kl"] + w.align * terms["align"] + w.nce * terms["nce"] + w.reg * terms["reg"]
    return total, {k: v.detach() for k, v in terms.items()}


def init_from_behavioural(model: CktGen, behavioural: dict) -> None:
    """Load a behavioural checkpoint's weights into a full-spec model (module docstring)."""
    missing, unexpected = model.load_state_dict(behavioural["model"], strict=False)
    if unexpected:
        raise ValueError(f"the behavioural checkpoint has weights this model lacks: {unexpected[:3]}")
    enc = model.spec_encoder
    f = model.config.full_spec_dim
    with torch.no_grad():
        first_v, first_f = enc.from_vector[0], enc.from_full[0]
        first_f.weight.zero_()
        first_f.weight[:, :SPEC_DIM] = first_v.weight[:, :SPEC_DIM]                 # masked values
        first_f.weight[:, f:f + SPEC_DIM] = first_v.weight[:, SPEC_DIM:2 * SPEC_DIM]  # presence bits
        first_f.bias.copy_(first_v.bias)
        enc.from_full[2].load_state_dict(enc.from_vector[2].state_dict())
        enc.mu["full"].load_state_dict(enc.mu["vector"].state_dict())
        enc.logvar["full"].load_state_dict(enc.logvar["vector"].state_dict())
        head_v, head_f = model.heads.vector, model.heads.full
        head_f[0].load_state_dict(head_v[0].state_dict())
        head_f[2].weight.zero_()
        head_f[2].bias.zero_()
        head_f[2].weight[:SPEC_DIM] = head_v[2].weight
        head_f[2].bias[:SPEC_DIM] = head_v[2].bias


def _same(hashes: list[str], idx: torch.Tensor) -> torch.Tensor:
    h = [hashes[i] for i in idx.tolist()]
    return torch.tensor([[a == b for b in h] for a in h])


@torch.no_grad()
def test_scores(model: CktGen, data: FullSpecData, tcfg: TrainConfig) -> dict:
    """Held-out figures with every measured metric shown and fixed noise: the total loss, the
    reconstruction of the behavioural circuit from the spec's latent alone (node-type and edge
    accuracy of the decoder, teacher-forced), and the full-spec head's error (mean absolute, in
    normalised units) on the circuits' own latents."""
    model.eval()
    rng = torch.get_rng_state()
    torch.manual_seed(12345)
    total = type_ok = type_n = edge_ok = edge_n = 0.0
    head_err = head_n = 0.0
    n = 0
    for k in range(0, len(data), 256):
        idx = torch.arange(k, min(k + 256, len(data)))
        x, spec, cond = data.x.index(idx), data.spec[idx], data.conditions[idx]
        present = ~torch.isnan(spec)
        loss, _ = full_loss_terms(model, x, spec, present, cond, _same(data.hashes, idx), tcfg.weights)
        total += float(loss) * len(idx)
        n += len(idx)
        mu_f, _ = model.encode_full(spec, present, cond)
        out = model.decode(mu_f, x)
        m = x.nmask
        type_ok += float((out["type"].argmax(-1)[m] == x.types[m]).sum())
        type_n += float(m.sum())
        L = x.types.shape[1]
        lower = torch.tril(torch.ones(L, L, dtype=torch.bool), diagonal=-1)
        pairs = lower[None] & m[:, :, None] & m[:, None, :]
        edge_ok += float(((out["edge"][pairs] > 0) == (x.adj[pairs] > 0.5)).sum())
        edge_n += float(pairs.sum())
        mu_c, _ = model.encode(x)
        pred = model.heads.full(mu_c)
        head_err += float((pred[present] - spec[present]).abs().sum())
        head_n += float(present.sum())
    torch.set_rng_state(rng)
    return {"loss": total / max(n, 1), "type_acc": type_ok / max(type_n, 1), "edge_acc": edge_ok / max(edge_n, 1),
            "head_mae": head_err / max(head_n, 1)}


def train_full_spec(data: FullSpecData, out_dir: str | Path, tcfg: TrainConfig, *, init_from: str | Path | None = None,
                    validation: FullSpecData | None = None, test: FullSpecData | None = None, resume: bool = True,
                    progress: bool = False, model_name: str = "model.pt", stop_after: int | None = None) -> dict:
    """Train (or, with `init_from` a behavioural checkpoint, fine-tune) the full-spec generator on
    `data`; OUT/checkpoint.pt every epoch, OUT/`model_name` (weights only) at the end: the last
    epoch's weights, or with `validation` those of the epoch with the lowest validation loss (238
    topologies are few: the held-out loss rises after a few epochs). Returns the final state, whose
    history holds each epoch's training loss and the validation and test scores (`test` is only
    reported, never used to choose). `stop_after` ends the run after that many epochs of the
    schedule (a later call continues it)."""
    if len(data) < 2:
        raise ValueError("the full-spec generator needs at least two training pairs")
    out = Path(out_dir)
    ckpt = out / CHECKPOINT_NAME
    behavioural = load_checkpoint(init_from) if init_from is not None else None
    cfg = full_spec_config(CktGenConfig.from_dict(behavioural["config"]) if behavioural else None)
    torch.manual_seed(tcfg.seed)
    model = CktGen(cfg)
    if behavioural is not None:
        init_from_behavioural(model, behavioural)
    opt = model.configure_optimizer(tcfg.lr, tcfg.weight_decay, tcfg.betas)
    steps = math.ceil(len(data) / tcfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(steps * tcfg.epochs))
    start, history = 0, []
    source = str(init_from) if init_from is not None else "scratch"
    if resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        if state["config"] != cfg.to_dict() or state.get("source") != source:
            raise ValueError(f"{ckpt} holds another run (model config or starting point); use a new --out folder")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = state["epoch"], state["history"]

    def scores() -> dict:
        out = {}
        for prefix, held in (("val", validation), ("test", test)):
            if held is not None and len(held):
                out.update({f"{prefix}_{k}": v for k, v in test_scores(model, held, tcfg).items()})
        return out

    best_path = out / ("best_" + model_name)
    if not history:
        history.append({"epoch": 0, **scores()})
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=tcfg.epochs, initial=start, desc="full-spec generator", unit="epoch")
    topologies = sorted({c.topology_hash() for c in data.circuits})
    state = None
    for epoch in range(start, tcfg.epochs if stop_after is None else min(tcfg.epochs, stop_after)):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(tcfg.seed * 100_003 + epoch)
        torch.manual_seed(tcfg.seed * 100_003 + epoch)
        perm = torch.randperm(len(data), generator=g)
        present_all = draw_present(data.spec, g)
        model.train()
        sums: dict[str, float] = {}
        for k in range(steps):
            idx = perm[k * tcfg.batch_size:(k + 1) * tcfg.batch_size]
            if len(idx) < 2:
                continue
            total, terms = full_loss_terms(model, data.x.index(idx), data.spec[idx], present_all[idx],
                                           data.conditions[idx], _same(data.hashes, idx), tcfg.weights)
            optimizer_step(model, opt, sched, total, terms, sums)
        record = {"epoch": epoch + 1, "seconds": time.perf_counter() - t0, **{k: v / steps for k, v in sums.items()}}
        record.update(scores())
        history.append(record)
        best = validation is not None and record["val_loss"] <= min(h["val_loss"] for h in history[1:])
        state = {"config": cfg.to_dict(), "train_config": tcfg.to_dict(), "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch + 1,
                 "history": history, "train_topologies": topologies, "source": source}
        if best:       # before the checkpoint: a resumed run finds the best epoch's weights beside it
            export_weights(state, best_path)
        save_checkpoint(ckpt, state)
        if bar is not None:
            bar.set_postfix(loss=f"{record['total']:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    if state is None:
        state = load_checkpoint(ckpt)
    if validation is not None:
        chosen = load_checkpoint(best_path)
        export_weights({**chosen, "history": state["history"]}, out / model_name)
        return {**state, "chosen_epoch": chosen["epoch"]}
    export_weights(state, out / model_name)
    return state


#: Share of the training split's behavioural topologies the recipe holds out to choose its epoch.
VALIDATION_SHARE = 0.1


def split_validation(data: FullSpecData, seed: int) -> tuple[FullSpecData, FullSpecData]:
    """(train, validation) by whole behavioural circuits, VALIDATION_SHARE of them to validation."""
    import hashlib
    keys = sorted(set(data.hashes), key=lambda h: hashlib.sha256(f"{seed}:{h}".encode()).hexdigest())
    held = set(keys[:max(1, round(VALIDATION_SHARE * len(keys)))])
    return (data.take([i for i, h in enumerate(data.hashes) if h not in held]),
            data.take([i for i, h in enumerate(data.hashes) if h in held]))


#: The recipe's epochs and learning rates: from the behavioural model (a fine-tune: a lower rate keeps
#: what it knows) or from scratch. In 60-epoch runs on the 3,400-circuit store the held-out loss was
#: lowest after 3-5 epochs and rose after (238 training topologies), so 20 epochs and the validation
#: split's choice among them.
GENERATOR_EPOCHS = 20
FINETUNE_LR, SCRATCH_LR = 3e-4, 1e-3


def run_generator_recipe(pdk: str, out_dir: str | Path, *, db: str | Path | None = None, epochs: int | None = None,
                         seed: int = 0, threads: int = 1, from_scratch: bool = False,
                         behavioural: str | Path | None = None, ship: bool = False, progress: bool = False) -> dict:
    """Train the PDK's full-spec generator on its store (OUT/<pdk>_generator.pt, OUT/generator.json):
    fine-tuned from the behavioural model (`behavioural`, default the shipped one) or, with
    `from_scratch`, from random weights. `ship` installs it where generate finds it. Resumes an
    interrupted run in the same folder."""
    import json
    import shutil

    from ..dataset.transistor_build import default_transistor_db
    from .checkpoint import default_checkpoint
    from .full_spec import full_spec_data
    from .full_spec_proposals import generator_path

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    db = Path(db) if db is not None else default_transistor_db(pdk)
    data = full_spec_data(db)
    train, validation = split_validation(data["train"], seed)
    init = None if from_scratch else Path(behavioural or default_checkpoint())
    tcfg = TrainConfig(epochs=epochs or GENERATOR_EPOCHS, lr=SCRATCH_LR if from_scratch else FINETUNE_LR, seed=seed)
    out = Path(out_dir)
    name = f"{pdk}_generator.pt"
    state = train_full_spec(train, out, tcfg, init_from=init, validation=validation, test=data["test"],
                            progress=progress, model_name=name)
    hist = state["history"]
    chosen = next(h for h in hist if h["epoch"] == state["chosen_epoch"])
    summary = {"pdk": pdk, "db": str(db), "source": "scratch" if init is None else str(init),
               "train_pairs": len(train), "train_topologies": len(set(train.hashes)),
               "validation_topologies": len(set(validation.hashes)), "chosen_epoch": state["chosen_epoch"],
               "test_pairs": len(data["test"]), "test_topologies": len(set(data["test"].hashes)),
               "epochs": tcfg.epochs, "lr": tcfg.lr, "seed": seed, "generator": str(out / name),
               "bytes": (out / name).stat().st_size,
               "held_out_before": {k[5:]: v for k, v in hist[0].items() if k.startswith("test_")},
               "held_out_after": {k[5:]: v for k, v in chosen.items() if k.startswith("test_")},
               "seconds": time.perf_counter() - t0}
    (out / "generator.json").write_text(json.dumps(summary, indent=1))
    if ship:
        from .sizing_recipe import SHIP_LIMIT_BYTES
        if summary["bytes"] > SHIP_LIMIT_BYTES:
            raise ValueError(f"{out / name}: {summary['bytes']} bytes is over the shipped weights' limit")
        shutil.copyfile(out / name, generator_path(pdk))
        summary["shipped"] = str(generator_path(pdk))
    return summary
