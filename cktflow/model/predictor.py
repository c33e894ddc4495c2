"""Performance from a circuit's graph and device values: the refiner of decoded candidates.

The generator gets topologies right more often than device values: unguided, 17 % of its decodes
land in the target class triple by ngspice (shipped 100-epoch model, 204 test triples x 16). The
spec heads read the 64-d latent, which reconstruction, KL and alignment shape as much as
performance does. This network reads the circuit itself, and it is differentiable in the device
values, so each decoded candidate's values take gradient steps that move the predicted
performance inside the target while its topology stays (`refine_values`): 49 % of the refined
decodes land in the target triple by ngspice (same decodes), and after the predictor's on-policy
rounds on the generator's own decodes (cktflow.model.onpolicy) 75 %.

Architecture: a signal-flow encoder (cktflow.model.signal_flow) with a regression head; two
members trained from different seeds are averaged, so refinement follows what both agree on
rather than one network's quirks (42 % with one member). The OCB label PM is an angle wrapped
into (-180, 180] deg, so it is predicted as (cos, sin): label classes 0 and 3 are neighbours on
the circle.

Usable in feedback: the predictor also reads off pm_min_deg, peaking_db and whether the follower is
stable (a logit), so the refinement moves values toward circuits that meet a spec's implicit
targets as well as its numbers (`usable_distance`). A predictor saved before these outputs (5 of
them) still loads; it refines toward the user's numbers only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..circuit import Circuit, load_pdk
from ..circuit.basis import DEVICE_KINDS
from ..circuit.ocb_labels import GAIN_OFFSET
from .data import CLASS_SIZES, LOG_UGF_OFFSET, PEAKING_SCALE_DB, PM_SCALE_DEG, CircuitTensors, TensorData, \
    denormalise_value, encode_circuits
from .signal_flow import SignalFlowEncoder, standardised
from .checkpoint import load_checkpoint, resolve_device, save_checkpoint

__all__ = ["PerformancePredictor", "PREDICTOR_NAME", "predictor_path", "prediction_targets", "class_distance",
           "bound_distance", "UsableTarget", "usable_distance", "refine_values", "train_predictor", "finetune_predictor", "load_predictor"]

log = logging.getLogger(__name__)

#: The predictor's file, beside the generator's weights.
PREDICTOR_NAME = "predictor.pt"


def predictor_path(checkpoint: str | Path) -> Path:
    """Where the predictor of the model in `checkpoint` lives: beside it."""
    return Path(checkpoint).parent / PREDICTOR_NAME
#: Outputs: gain_db/100, log10(UGF) - 9, design PM/90, cos and sin of the OCB label PM; then
#: pm_min_deg/90, peaking_db/20 and the logit of `stable` (usable in feedback).
N_OUTPUTS = 8
#: Outputs of a predictor saved before the usable-in-feedback ones.
N_AC_OUTPUTS = 5
#: The stable logit a refinement aims past (probability ~0.88), and the weight of a usable miss
#: (pm_min in 90-degree units, peaking in 20 dB) against the spec's own misses.
STABLE_LOGIT_TARGET, USABLE_WEIGHT = 2.0, 1.0
#: A UGF miss in decades weighs this much against a gain miss in 100 dB and a PM miss in 90 deg:
#: one bandwidth class is 0.03-0.3 decades wide, a gain class 100 dB, a PM class 90 deg.
UGF_WEIGHT = 3.0
#: Peak learning rate (one-cycle schedule) and batch size of training.
TRAIN_LR, TRAIN_BATCH = 1e-3, 64


class _Member(nn.Module):
    """One signal-flow encoder with a regression head."""

    def __init__(self, d: int, outputs: int = N_OUTPUTS):
        super().__init__()
        self.encode = SignalFlowEncoder(d)
        self.head = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d), nn.GELU(),
                                  nn.Linear(d, outputs))

    def forward(self, x: CircuitTensors) -> torch.Tensor:
        return self.head(self.encode(x))


class PerformancePredictor(nn.Module):
    """Circuits (as tensors) -> (B, outputs) predicted performance, the mean of `members` networks."""

    def __init__(self, d: int = 128, members: int = 2, outputs: int = N_OUTPUTS):
        super().__init__()
        self.d, self.n_members, self.outputs = d, members, outputs
        self.members = nn.ModuleList(_Member(d, outputs) for _ in range(members))

    @property
    def predicts_usable(self) -> bool:
        return self.outputs >= N_OUTPUTS

    def forward(self, x: CircuitTensors) -> torch.Tensor:
        x = standardised(x)
        return torch.stack([m(x) for m in self.members]).mean(0)

    def predict(self, circuits: Sequence[Circuit]) -> torch.Tensor:
        with torch.no_grad():
            return self(encode_circuits(circuits).to(_device(self))).cpu()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def prediction_targets(data: TensorData) -> torch.Tensor:
    """(B, 8) training targets of a labelled set, in the predictor's output order (NaN where a label
    lacks a usable-in-feedback metric)."""
    if data.label_pm is None:
        raise ValueError("the data carries no OCB label PM; build it with build_tensor_data")
    rad = torch.deg2rad(data.label_pm)
    usable = data.usable if data.usable is not None else torch.full((len(data), 3), math.nan)
    return torch.cat([data.spec, rad.cos()[:, None], rad.sin()[:, None], usable], dim=-1)


def prediction_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Smooth L1 on the AC outputs (as before the usable ones existed), plus, where labelled,
    smooth L1 on pm_min and peaking and binary cross-entropy on the stable logit."""
    loss = F.smooth_l1_loss(pred[:, :N_AC_OUTPUTS], y[:, :N_AC_OUTPUTS], beta=0.05)
    if pred.shape[1] < N_OUTPUTS:
        return loss
    for k in (5, 6):
        known = torch.isfinite(y[:, k])
        if known.any():
            loss = loss + F.smooth_l1_loss(pred[known, k], y[known, k], beta=0.05)
    known = torch.isfinite(y[:, 7])
    if known.any():
        loss = loss + 0.1 * F.binary_cross_entropy_with_logits(pred[known, 7], y[known, 7])
    return loss


# ---- how far a prediction is from a target ----------------------------------------------------
def _outside(value: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return F.relu(lo - value) + F.relu(value - hi)


def class_distance(pred: torch.Tensor, classes: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """(B,) how far each prediction lies outside its target class triple (gain, bw, pm), 0 inside.

    Each class interval is first narrowed by `margin` of its width on both sides (0 <= margin < 0.5),
    so a refinement aims inside rather than at an edge. Units: gain in classes (100 dB), UGF in
    decades times UGF_WEIGHT, label PM in 90-degree classes along the circle.
    """
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"margin must be within [0, 0.5), got {margin}")
    classes = classes.to(pred.device).float()
    g, bw, pm = classes[:, 0], classes[:, 1], classes[:, 2]
    gain = pred[:, 0] + GAIN_OFFSET               # the OCB gain label; class = its floor
    d_gain = _outside(gain, g + margin, g + 1 - margin)
    # bandwidth class b holds UGF in [b, b + 1) GHz; the first and last are open-ended
    log_ugf = pred[:, 1] + LOG_UGF_OFFSET
    lo = torch.where(bw > 0, torch.log10(bw.clamp(min=1) * 1e9), torch.full_like(bw, -math.inf))
    hi = torch.where(bw < CLASS_SIZES[1] - 1, torch.log10((bw + 1) * 1e9), torch.full_like(bw, math.inf))
    width = torch.where(torch.isfinite(hi - lo), hi - lo, torch.ones_like(bw)).clamp(max=1.0)
    d_ugf = _outside(log_ugf, lo + margin * width, hi - margin * width)
    # label class p holds the OCB PM in (90 (1 - p), 90 (2 - p)] deg: centre 90 (1.5 - p)
    angle = torch.rad2deg(torch.atan2(pred[:, 4], pred[:, 3]))
    centre = 90.0 * (1.5 - pm)
    off = ((angle - centre + 180.0) % 360.0 - 180.0).abs()
    d_pm = F.relu(off - 45.0 * (1 - 2 * margin)) / 90.0
    return d_gain + UGF_WEIGHT * d_ugf + d_pm


def bound_distance(pred: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, margin: torch.Tensor,
                   weights: tuple[float, float, float] = (1.0, UGF_WEIGHT, 1.0)) -> torch.Tensor:
    """(B,) how far each prediction's (gain, log-UGF, design PM) lies outside the bounds of a
    continuous spec (normalised units, -inf/+inf where unbounded), each bound tightened by `margin`,
    the three misses weighted by `weights`. Also the spec heads' guidance objective
    (cktflow.model.sample.vector_objective)."""
    vec = pred[:, :3]
    lo = lower.to(pred.device) + margin.to(pred.device)
    hi = upper.to(pred.device) - margin.to(pred.device)
    below = torch.where(torch.isfinite(lo), F.relu(lo - vec), torch.zeros_like(vec))
    above = torch.where(torch.isfinite(hi), F.relu(vec - hi), torch.zeros_like(vec))
    return ((below + above) * torch.tensor(weights, device=pred.device)).sum(-1)


@dataclasses.dataclass(frozen=True)
class UsableTarget:
    """A spec's usable-in-feedback targets in model units (None: not asked for); a bound may be a
    (B,) tensor, one per predicted row."""
    pm_min: float | torch.Tensor | None = None       # pm_min_deg / 90, at least
    peaking: float | torch.Tensor | None = None      # peaking_db / 20, at most
    stable: bool = False

    @classmethod
    def of(cls, spec) -> "UsableTarget":
        """From a cktflow Spec's bounds (its implicit targets included)."""
        out = {}
        for b in spec.bounds:
            if b.metric == "pm_min_deg" and b.min is not None:
                out["pm_min"] = b.min / PM_SCALE_DEG
            elif b.metric == "peaking_db" and b.max is not None:
                out["peaking"] = b.max / PEAKING_SCALE_DB
            elif b.metric == "stable" and b.min:
                out["stable"] = True
        return cls(**out)

    @property
    def empty(self) -> bool:
        return self.pm_min is None and self.peaking is None and not self.stable


def usable_distance(pred: torch.Tensor, target: UsableTarget, pm_margin: float = 10.0 / PM_SCALE_DEG,
                    peaking_margin: float = 1.0 / PEAKING_SCALE_DB) -> torch.Tensor:
    """(B,) how far each prediction is from the usable-in-feedback targets (0 when predicted met
    with the margins, or when the predictor does not predict them)."""
    out = torch.zeros(pred.shape[0], device=pred.device)
    if pred.shape[1] < N_OUTPUTS or target.empty:
        return out
    if target.pm_min is not None:
        out = out + F.relu(target.pm_min + pm_margin - pred[:, 5])
    if target.peaking is not None:
        out = out + F.relu(pred[:, 6] - (target.peaking - peaking_margin))
    if target.stable:
        out = out + 0.1 * F.relu(STABLE_LOGIT_TARGET - pred[:, 7])
    return USABLE_WEIGHT * out


# ---- refinement ---------------------------------------------------------------------------------
def refine_values(predictor: PerformancePredictor, circuits: Sequence[Circuit],
                  objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, steps: int = 100,
                  lr: float = 0.01) -> list[Circuit]:
    """The same topologies with device values moved down the gradient of the objective.

    objective(pred, rows) maps the (len(rows), outputs) predictions of the circuits at index `rows` to
    their losses (0 once a circuit is where it should be). Values move on the model's [0, 1] log
    scale (Adam, at most `steps` steps), so they stay within the PDK's ranges; only devices a node
    has move. A circuit stops moving the first time its loss is 0 (and is no longer computed, which
    makes a batch several times faster than the full `steps`).
    Measured on 3,320 decodes against one member: 100 steps at lr 0.01 toward class intervals
    narrowed by 0.2 put 42 % in the target triple by ngspice (17 % before); 200 steps narrowed by
    0.3 put 39 %: pushing further exploits the predictor's errors rather than the circuits' physics.
    """
    if not circuits or steps <= 0:
        return list(circuits)
    dev = _device(predictor)
    x = encode_circuits(circuits).to(dev)
    values = x.values.clone().requires_grad_(True)
    opt = torch.optim.Adam([values], lr=lr)
    finished = torch.zeros(len(circuits), dtype=torch.bool, device=dev)
    frozen = [p.requires_grad for p in predictor.parameters()]
    for p in predictor.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            rows = (~finished).nonzero().squeeze(1)
            if len(rows) == 0:
                break
            pred = predictor(dataclasses.replace(x.index(rows), values=values[rows].clamp(0, 1)))
            loss = objective(pred, rows)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            values.grad *= x.vmask
            before = values.detach().clone()
            opt.step()
            finished[rows[loss.detach() <= 0]] = True
            with torch.no_grad():       # finished circuits keep the values that got them there
                values[finished] = before[finished]
    finally:
        for p, f in zip(predictor.parameters(), frozen):
            p.requires_grad_(f)
    final = values.detach().clamp(0, 1).cpu()
    pdk = load_pdk()
    out = []
    for bi, c in enumerate(circuits):
        changes = {}
        for new, old in enumerate(c.topological_order()):
            for ki, kind in enumerate(DEVICE_KINDS):
                if kind in c.nodes[old].values:
                    changes[(old, kind)] = denormalise_value(kind, float(final[bi, new, ki]), pdk)
        out.append(c.with_values(changes))
    return out


# ---- training -----------------------------------------------------------------------------------
def _fit(model: PerformancePredictor, data: TensorData, *, epochs: int, lr: float, batch_size: int, seed: int,
         dev: torch.device, progress: bool, desc: str) -> float:
    """Train each member on its own shuffling (seed + member); returns the last epoch's mean loss."""
    y_all, x_all = prediction_targets(data).to(dev), data.x.to(dev)
    steps = math.ceil(len(data) / batch_size)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs * len(model.members), desc=desc, unit="epoch")
    model.train()
    last = 0.0
    for k, member in enumerate(model.members):
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        opt = torch.optim.AdamW(member.parameters(), lr=lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps * epochs)
        for epoch in range(epochs):
            perm = torch.randperm(len(data), generator=gen).to(dev)
            total = 0.0
            for s in range(steps):
                idx = perm[s * batch_size:(s + 1) * batch_size]
                loss = prediction_loss(member(standardised(x_all.index(idx))), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            last = total / steps
            log.info("%s member %d epoch %d: loss %.4f", desc, k + 1, epoch + 1, last)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    return last


def _save(model: PerformancePredictor, path: Path, epochs: int, loss: float, circuits: int,
          onpolicy: dict | None = None) -> None:
    save_checkpoint(path, {"d": model.d, "members": model.n_members, "outputs": model.outputs,
                           "model": model.state_dict(),
                           "epochs": epochs, "final_loss": loss, "circuits": circuits, "onpolicy": onpolicy})


def train_predictor(data: TensorData, path: str | Path, *, epochs: int = 60, d: int = 128, members: int = 2,
                    lr: float = TRAIN_LR, batch_size: int = TRAIN_BATCH, seed: int = 0, device: str = "auto",
                    progress: bool = False) -> PerformancePredictor:
    """Train the predictor on a labelled set (the training split) and save it to path.

    60 epochs of two members take about 5 minutes on one CPU thread for 8,700 circuits."""
    if len(data) == 0:
        raise ValueError("no circuits to train the predictor on")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = PerformancePredictor(d, members).to(dev)
    loss = _fit(model, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, dev=dev, progress=progress,
                desc="predictor")
    _save(model, Path(path), epochs, loss, len(data))
    return model


def finetune_predictor(source: str | Path, data: TensorData, path: str | Path, *, epochs: int = 3,
                       lr_scale: float = 0.2, seed: int = 0, device: str = "auto", progress: bool = False,
                       onpolicy: dict | None = None) -> PerformancePredictor:
    """Continue the predictor in `source` on a grown set (the flywheel, or an on-policy round of
    cktflow.model.onpolicy, whose summary `onpolicy` the file keeps), at lr_scale times the training
    rate, and save it to path."""
    dev = resolve_device(device)
    model = load_predictor(source, dev)
    loss = _fit(model, data, epochs=epochs, lr=TRAIN_LR * lr_scale, batch_size=TRAIN_BATCH, seed=seed, dev=dev,
                progress=progress, desc="predictor fine-tune")
    _save(model, Path(path), epochs, loss, len(data), onpolicy)
    return model


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> PerformancePredictor:
    state = load_checkpoint(path, device)
    model = PerformancePredictor(state["d"], state["members"], state.get("outputs", N_AC_OUTPUTS))
    model.load_state_dict(state["model"])
    return model.to(device).eval()
