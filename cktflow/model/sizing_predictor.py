"""Every metric of a transistor op-amp from its netlist and sizes: the sky130 performance predictor.

It reads the device graph (cktflow.model.device_graph: device kinds, W, L, multiplicity, bias
currents and element values; nets and the terminal roles that join them) with a few rounds of
message passing between devices and nets, and predicts every metric the transistor testbenches
measure (spice_sim.metrics, level "transistor"): AC, usable-in-feedback, power, slew, noise,
swing, CMRR, PSRR, offset, area, saturation margins. Numbers are learned on the scale specs judge
them on (decades for frequencies, currents, power, slew, noise density, times and area; the value
itself otherwise), standardised by the training set; booleans (stable, all_saturated) as logits.

Conditions: the sky130 dataset (cktflow.dataset.transistor_build) measures every circuit at tt,
27 C, vdd 1.8 V, vcm 1.1 V (`TRAINED_AT`) and at 5 pF or, built with a load range, at each circuit's
own load. The load is the predictor's one condition input (it drives the output net and enters the
head); it is asked only about loads within its training range (`covers`). A spec at other corners
and temperatures is judged on its typical figures, as the sizing runs judge a point first.

Members: several networks from different initialisations; `predict` returns each one's figures, and the
refinement (`refine_sizes`) asks all of them to agree that a sizing meets the spec, so it does not
chase one network's mistakes outside the data.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spice_sim.measure import Performance
from spice_sim.metrics import LOG_UNITS, METRIC_UNITS, metrics_at
from ..transistor.circuit import TransistorCircuit
from .checkpoint import load_checkpoint, save_checkpoint
from .device_graph import DEVICE_TYPES, NET_KINDS, NUM_FEATURES, REFERENCE_LOAD_F, ROLES, DeviceGraph, GraphBatch, \
    collate, load_feature, same_graph_batch

__all__ = ["SizingPredictor", "PREDICTED_METRICS", "label_value", "TRAINED_AT", "Labelled", "labelled_examples",
           "train_sizing_predictor", "load_sizing_predictor", "save_sizing_predictor", "shipped_path",
           "shipped_sizing_predictor", "accuracy_table", "refine_sizes", "predict_circuits",
           "predicted_shortfalls", "covers", "LOAD_TOLERANCE"]

log = logging.getLogger(__name__)

#: The metrics predicted: every transistor-level metric except those that follow from others
#: (slew is the smaller edge, supply current is power / vdd, swing is high - low).
PREDICTED_METRICS = tuple(m for m in metrics_at("transistor")
                          if m not in ("slew_v_per_s", "supply_a", "swing_v"))
#: Where every label of the dataset was measured (cktflow.dataset.transistor_build), the load aside.
TRAINED_AT = {"corner": "tt", "temp_c": 27.0, "vdd": 1.8, "vcm": 1.1}
#: How far beyond the loads it was trained at (the smallest and largest, `SizingPredictor.loads`) the
#: predictor is asked about a circuit: UGF, phase margin and slew move with the load, and a Miller
#: op-amp compensated for 1 pF looks unstable at 5 pF.
LOAD_TOLERANCE = 1.5


def covers(model: "SizingPredictor", loads: Iterable[float]) -> bool:
    """Whether every load (farads) lies within the loads the predictor was trained at (LOAD_TOLERANCE)."""
    lo, hi = model.loads
    return all(lo / LOAD_TOLERANCE <= cl <= hi * LOAD_TOLERANCE for cl in loads)


#: Label ranges (own units) of the linear metrics: a circuit whose output is stuck at a rail measures
#: -300 dB of gain or of PSRR, a phase wound several turns. Those are one fact (the circuit does not
#: work), so labels are clipped to what a spec can ask about and the figures of broken circuits do
#: not swamp the loss.
CLIP = {"gain_db": (-20.0, 140.0), "pm_deg": (-180.0, 180.0), "pm_min_deg": (-180.0, 180.0),
        "gm_db": (-60.0, 100.0), "peaking_db": (0.0, 60.0), "cmrr_db": (-40.0, 140.0), "psrr_db": (-40.0, 140.0),
        "offset_v": (-1.0, 1.0), "min_margin_v": (-1.0, 0.5), "overshoot_pct": (0.0, 1000.0)}


def _transform(metric: str) -> str:
    unit = METRIC_UNITS[metric]
    if unit == "bool":
        return "bool"
    if unit in LOG_UNITS or metric == "noise_v_rms":     # integrated noise spans decades like its density
        return "log"
    if unit == "%":
        return "log1p"      # overshoot: mostly near 0, a few hundred % for ringing circuits
    return "lin"


def label_value(metric: str, v) -> float:
    if v is None:
        return math.nan
    t = _transform(metric)
    if t == "bool":
        return float(bool(v))
    v = float(v)
    if not math.isfinite(v):
        return math.nan
    if metric in CLIP:
        v = min(max(v, CLIP[metric][0]), CLIP[metric][1])
    if t == "log":
        return math.log10(v) if v > 0 else math.nan
    if t == "log1p":
        return math.log10(1.0 + max(v, 0.0))
    return v


def _inverse(metric: str, y: np.ndarray) -> np.ndarray:
    t = _transform(metric)
    if t == "bool":
        return 1.0 / (1.0 + np.exp(-y))         # probability
    if t == "log":
        return 10.0 ** y
    if t == "log1p":
        return 10.0 ** y - 1.0
    return y


class _Layer(nn.Module):
    """One round: devices -> nets, then nets -> devices, along the terminals. A terminal's role
    scales the message channel by channel (a gate and a drain on one net say different things)."""

    def __init__(self, d: int):
        super().__init__()
        r = len(ROLES)
        self.dev_out = nn.Linear(d, d)
        self.net_out = nn.Linear(d, d)
        self.role_to_net = nn.Parameter(torch.ones(r, d) + 0.1 * torch.randn(r, d))
        self.role_to_dev = nn.Parameter(torch.ones(r, d) + 0.1 * torch.randn(r, d))
        self.net_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.dev_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, dev: torch.Tensor, net: torch.Tensor, edges) -> tuple[torch.Tensor, torch.Tensor]:
        e_dev, e_net, e_role, deg_dev, deg_net = edges
        b, nd, d = dev.shape
        nn_ = net.shape[1]
        # a net averages its terminals (vdd meets dozens of devices); a device its 2-4 terminals
        msg = self.dev_out(dev).reshape(b * nd, d)[e_dev] * self.role_to_net[e_role]
        agg = torch.zeros(b * nn_, d, dtype=dev.dtype).index_add_(0, e_net, msg) / deg_net
        net = net + self.net_mlp(agg.reshape(b, nn_, d))
        msg = self.net_out(net).reshape(b * nn_, d)[e_net] * self.role_to_dev[e_role]
        agg = torch.zeros(b * nd, d, dtype=dev.dtype).index_add_(0, e_dev, msg) / deg_dev
        dev = dev + self.dev_mlp(agg.reshape(b, nd, d))
        return dev, net


class _Member(nn.Module):
    def __init__(self, n_out: int, d: int, layers: int):
        super().__init__()
        self.dev_type = nn.Embedding(len(DEVICE_TYPES), d)
        self.dev_feat = nn.Sequential(nn.Linear(2 * NUM_FEATURES, d), nn.GELU(), nn.Linear(d, d))
        self.net_kind = nn.Embedding(len(NET_KINDS), d)
        self.layers = nn.ModuleList(_Layer(d) for _ in range(layers))
        self.load = nn.Linear(1, d)       # the load drives the output net
        self.head = nn.Sequential(nn.LayerNorm(4 * d + 1), nn.Linear(4 * d + 1, 2 * d), nn.GELU(),
                                  nn.Linear(2 * d, n_out))
        self._out = NET_KINDS.index("out")

    def forward(self, x: GraphBatch) -> torch.Tensor:
        dm, nm = x.dmask, x.nmask
        feats = torch.cat([x.feats * x.fmask, x.fmask.float()], dim=-1)
        dev = (self.dev_type(x.types) + self.dev_feat(feats)) * dm[..., None]
        is_out = (x.ports == self._out)[..., None]
        net = (self.net_kind(x.ports) + is_out * self.load(x.cond)[:, None, :]) * nm[..., None]
        e_dev, e_net, e_role = x.flat_edges()
        b, n_dev, n_net = dev.shape[0], dev.shape[1], net.shape[1]
        one = torch.ones(len(e_dev), 1)
        deg_dev = torch.zeros(b * n_dev, 1).index_add_(0, e_dev, one).clamp(min=1.0)
        deg_net = torch.zeros(b * n_net, 1).index_add_(0, e_net, one).clamp(min=1.0)
        edges = (e_dev, e_net, e_role, deg_dev, deg_net)
        for layer in self.layers:
            dev, net = layer(dev, net, edges)
            dev, net = dev * dm[..., None], net * nm[..., None]
        mean_dev = dev.sum(1) / dm.sum(1, keepdim=True).clamp(min=1)
        max_dev = dev.masked_fill(~dm[..., None], -1e4).max(1).values
        mean_net = net.sum(1) / nm.sum(1, keepdim=True).clamp(min=1)
        out_net = (net * is_out).sum(1)
        return self.head(torch.cat([mean_dev, max_dev, mean_net, out_net, x.cond], dim=-1))


class SizingPredictor(nn.Module):
    """Members x metrics. `forward` gives standardised outputs (M, B, K)."""

    def __init__(self, metrics: Sequence[str] = PREDICTED_METRICS, *, d: int = 64, layers: int = 3, members: int = 3,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 loads: Sequence[float] = (REFERENCE_LOAD_F, REFERENCE_LOAD_F)):
        super().__init__()
        self.metrics = tuple(metrics)
        self.loads = (float(loads[0]), float(loads[1]))      # the smallest and largest load trained at (F)
        self.config = {"metrics": list(self.metrics), "d": d, "layers": layers, "members": members,
                       "loads": list(self.loads)}
        self.members = nn.ModuleList(_Member(len(self.metrics), d, layers) for _ in range(members))
        k = len(self.metrics)
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0] * k, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0] * k, dtype=torch.float32))
        self.bool_mask = torch.tensor([_transform(m) == "bool" for m in self.metrics])

    def forward(self, x: GraphBatch) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    @torch.no_grad()
    def predict(self, x: GraphBatch) -> np.ndarray:
        """(M, B, K) in the metrics' own units (booleans as probabilities)."""
        self.eval()
        z = self(x)
        y = torch.where(self.bool_mask, z, z * self.std + self.mean).numpy()
        return np.stack([_inverse(m, y[..., k]) for k, m in enumerate(self.metrics)], axis=-1)


# ---- data ------------------------------------------------------------------------------------------

@dataclass
class Labelled:
    """Sized circuits with their graphs, features and labels (transformed, NaN where absent)."""
    circuits: list[TransistorCircuit]
    graphs: list[DeviceGraph]
    feats: list[np.ndarray]
    y: np.ndarray              # (B, K)
    split: list[str]
    topology: list[str]
    loads: list[float]         # the load (F) each was measured with

    def __len__(self) -> int:
        return len(self.circuits)

    def take(self, idx: Sequence[int]) -> "Labelled":
        return Labelled([self.circuits[i] for i in idx], [self.graphs[i] for i in idx], [self.feats[i] for i in idx],
                        self.y[list(idx)], [self.split[i] for i in idx], [self.topology[i] for i in idx],
                        [self.loads[i] for i in idx])

    def batch(self, idx: Sequence[int]) -> tuple[GraphBatch, torch.Tensor]:
        """Padded once for the whole set (distinct netlists are few: their structures are gathered)."""
        if getattr(self, "_padded", None) is None:
            distinct = list({id(g): g for g in self.graphs}.values())
            where = {id(g): k for k, g in enumerate(distinct)}
            table = collate(distinct, [np.zeros((g.devices, NUM_FEATURES), np.float32) for g in distinct])
            feats = torch.zeros(len(self), table.types.shape[1], NUM_FEATURES)
            for i, f in enumerate(self.feats):
                feats[i, :f.shape[0]] = torch.from_numpy(f)
            cond = torch.tensor([[load_feature(cl)] for cl in self.loads], dtype=torch.float32)
            self._padded = (table, torch.tensor([where[id(g)] for g in self.graphs]), feats, cond)
        table, gid, feats, cond = self._padded
        t = torch.as_tensor(list(idx), dtype=torch.long)
        g = gid[t]
        x = GraphBatch(table.types[g], feats[t], table.fmask[g], table.ports[g], table.e_dev[g], table.e_net[g],
                       table.e_role[g], table.e_valid[g], cond[t])
        return x, torch.from_numpy(self.y[t.numpy()])


def labelled_examples(records: Iterable, metrics: Sequence[str] = PREDICTED_METRICS) -> Labelled:
    """Store records (transistor circuits with a measured Performance) as predictor examples."""
    graphs: dict[str, DeviceGraph] = {}
    out = Labelled([], [], [], np.zeros((0, len(metrics)), dtype=np.float32), [], [], [])
    ys = []
    for r in records:
        c = r.circuit
        if r.performance is None or not isinstance(c, TransistorCircuit):
            continue
        topo = c.topology_hash()
        if topo not in graphs:
            graphs[topo] = DeviceGraph.of(c)
        g = graphs[topo]
        out.circuits.append(c)
        out.graphs.append(g)
        out.feats.append(g.features([[p.value for p in c.params]])[0])
        ys.append([label_value(m, r.performance.get(m)) for m in metrics])
        out.split.append(r.split)
        out.topology.append(topo)
        out.loads.append(float((r.provenance or {}).get("conditions", {}).get("cl") or REFERENCE_LOAD_F))
    out.y = np.asarray(ys, dtype=np.float32).reshape(-1, len(metrics))
    return out


# ---- training --------------------------------------------------------------------------------------

def _loss(model: SizingPredictor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z: (M, B, K) standardised outputs; y: (B, K) transformed labels (NaN where absent)."""
    present = ~torch.isnan(y)
    yz = torch.where(model.bool_mask, y, (y - model.mean) / model.std)
    yz = torch.nan_to_num(yz)
    reg = F.smooth_l1_loss(z, yz.expand_as(z), reduction="none", beta=0.5)
    bce = F.binary_cross_entropy_with_logits(z, yz.expand_as(z).clamp(0, 1), reduction="none")
    per = torch.where(model.bool_mask, bce, reg) * present
    return per.sum() / present.sum().clamp(min=1) / z.shape[0]


def train_sizing_predictor(data: Labelled, *, epochs: int = 80, d: int = 64, layers: int = 3, members: int = 3,
                           lr: float = 2e-3, batch_size: int = 64, seed: int = 0, init: SizingPredictor | None = None,
                           progress: bool = False) -> SizingPredictor:
    """Fit on `data` (the caller passes the training split). `init`: fine-tune these weights."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if init is not None:
        model = init
        model.loads = (min(model.loads[0], *data.loads), max(model.loads[1], *data.loads))
        model.config["loads"] = list(model.loads)
    else:
        y = data.y
        mean = np.nanmean(y, axis=0)
        std = np.nanstd(y, axis=0)
        mean, std = np.nan_to_num(mean), np.where(np.nan_to_num(std) > 1e-6, np.nan_to_num(std), 1.0)
        model = SizingPredictor(d=d, layers=layers, members=members, mean=mean.tolist(), std=std.tolist(),
                                loads=(min(data.loads), max(data.loads)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, epochs * math.ceil(len(data) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs, desc="sky130 predictor", unit="epoch", leave=False)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(data))
        total = 0.0
        for i in range(0, len(order), batch_size):
            x, y = data.batch(order[i:i + batch_size])
            loss = _loss(model, model(x), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total / len(data):.4f}")
    if bar is not None:
        bar.close()
    log.info("sky130 predictor: %d circuits, %d epochs in %.0f s, last loss %.4f", len(data), epochs,
             time.perf_counter() - t0, total / max(1, len(data)))
    model.eval()
    return model


def save_sizing_predictor(model: SizingPredictor, path: str | Path, **meta) -> None:
    save_checkpoint(Path(path), {"kind": "sizing-predictor", "config": model.config, "state": model.state_dict(),
                                 "trained_at": TRAINED_AT, **meta})


def shipped_path(pdk: str) -> Path:
    """Where the package keeps a PDK's predictor: cktflow/model/weights/<pdk>_predictor.pt."""
    from .checkpoint import default_checkpoint
    return default_checkpoint().parent / f"{pdk}_predictor.pt"


def shipped_sizing_predictor(pdk: str) -> Path | None:
    """The predictor shipped for a PDK, None if there is none."""
    path = shipped_path(pdk)
    return path if path.exists() else None


def load_sizing_predictor(path: str | Path) -> SizingPredictor:
    state = load_checkpoint(path)
    if state.get("kind") != "sizing-predictor":
        raise ValueError(f"{path}: not a transistor-level predictor checkpoint")
    cfg = dict(state["config"])
    model = SizingPredictor(cfg.pop("metrics"), **cfg)
    model.load_state_dict(state["state"])
    model.eval()
    return model


# ---- accuracy --------------------------------------------------------------------------------------

def predict_labelled(model: SizingPredictor, data: Labelled, batch_size: int = 256) -> np.ndarray:
    """(B, K) member-mean predictions in transformed units (booleans as probabilities)."""
    outs = []
    for i in range(0, len(data), batch_size):
        x, _ = data.batch(range(i, min(len(data), i + batch_size)))
        with torch.no_grad():
            model.eval()
            z = model(x).mean(0)
        outs.append(torch.where(model.bool_mask, torch.sigmoid(z), z * model.std + model.mean).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, len(model.metrics)))


def accuracy_table(model: SizingPredictor, data: Labelled) -> list[dict]:
    """Per metric on `data`: MAE in the metric's own unit (decades for log-scaled units), the share
    within one spec scale (cktflow.spec.SHORTFALL_SCALE: the unit a shortfall counts as 1) and
    within half of one; booleans: the share predicted right. Beside each, the same figures of the
    training mean (the constant predictor), so a row shows skill, not just a number."""
    from ..spec import SHORTFALL_SCALE
    pred = predict_labelled(model, data)
    rows = []
    for k, m in enumerate(model.metrics):
        y = data.y[:, k]
        ok = ~np.isnan(y)
        n = int(ok.sum())
        if not n:
            continue
        t, unit = _transform(m), METRIC_UNITS[m]
        base = float(model.mean[k]) if t != "bool" else float(np.nanmean(data.y[:, k]) >= 0.5)
        if t == "bool":
            acc = float(np.mean((pred[ok, k] >= 0.5) == (y[ok] >= 0.5)))
            rows.append({"metric": m, "unit": unit, "n": n, "accuracy": acc,
                         "baseline_accuracy": float(np.mean((base >= 0.5) == (y[ok] >= 0.5)))})
            continue
        if t == "lin":
            err, berr, scale, shown = pred[ok, k] - y[ok], base - y[ok], SHORTFALL_SCALE[unit], unit
        elif t == "log":
            err, berr, scale, shown = pred[ok, k] - y[ok], base - y[ok], 1.0, "decades"
        else:   # log1p: back to % for the MAE and the scale
            back = lambda v: 10.0 ** v - 1.0   # noqa: E731
            err, berr, scale, shown = back(pred[ok, k]) - back(y[ok]), back(base) - back(y[ok]), SHORTFALL_SCALE[unit], unit
        rows.append({"metric": m, "unit": shown, "n": n, "mae": float(np.mean(np.abs(err))),
                     "within_scale": float(np.mean(np.abs(err) <= scale)),
                     "within_half_scale": float(np.mean(np.abs(err) <= scale / 2)),
                     "baseline_mae": float(np.mean(np.abs(berr))),
                     "baseline_within_scale": float(np.mean(np.abs(berr) <= scale))})
    return rows


# ---- use: scoring and refining sizings -------------------------------------------------------------

def _performances(model: SizingPredictor, pred: np.ndarray) -> list[Performance]:
    """(B, K) predictions in own units -> Performance (booleans at p >= 0.5; derived metrics added)."""
    out = []
    for row in pred:
        vals = {}
        for k, m in enumerate(model.metrics):
            v = float(row[k])
            vals[m] = bool(v >= 0.5) if _transform(m) == "bool" else v
        if "slew_rise_v_per_s" in vals and "slew_fall_v_per_s" in vals:
            vals["slew_v_per_s"] = min(vals["slew_rise_v_per_s"], vals["slew_fall_v_per_s"])
        if "swing_high_v" in vals and "swing_low_v" in vals:
            vals["swing_v"] = max(0.0, vals["swing_high_v"] - vals["swing_low_v"])
        if "power_w" in vals:
            vals["supply_a"] = vals["power_w"] / TRAINED_AT["vdd"]
        out.append(Performance(**vals))
    return out


def _own_load(circuit: TransistorCircuit) -> float:
    return float(circuit.conditions.get("cl") or REFERENCE_LOAD_F)


def predict_circuits(model: SizingPredictor, circuits: Sequence[TransistorCircuit],
                     loads: Sequence[float] | None = None) -> list[Performance]:
    """Member-mean predictions of each circuit's metrics at TRAINED_AT's other conditions and the
    given loads (farads; default: each circuit's own, else REFERENCE_LOAD_F)."""
    data = labelled_examples(_Unlabelled(c, cl) for c, cl in zip(circuits, loads or [_own_load(c) for c in circuits]))
    return _performances(model, _own_units(model, predict_labelled(model, data)))


class _Unlabelled:
    """A circuit dressed as a store record at a load, for `labelled_examples` (its labels stay NaN)."""
    split = ""

    def __init__(self, circuit, load: float):
        self.circuit = circuit
        self.performance = Performance()
        self.provenance = {"conditions": {"cl": load}}


def _own_units(model: SizingPredictor, transformed: np.ndarray) -> np.ndarray:
    out = transformed.copy()
    for k, m in enumerate(model.metrics):
        if _transform(m) != "bool":
            out[:, k] = _inverse(m, transformed[:, k])
    return out


def _agreed_shortfall(model: SizingPredictor, spec, pred: np.ndarray, margin: float) -> np.ndarray:
    """(M, S, K) member predictions -> (S,) the spec's shortfall when every bound must hold by
    `margin` (normalised) for every member: the pessimistic member decides each bound."""
    m_, s, _ = pred.shape
    idx = {m: k for k, m in enumerate(model.metrics)}
    total = np.zeros(s)
    for b in spec.bounds:
        if b.metric in idx:
            v = pred[..., idx[b.metric]]
        elif b.metric == "slew_v_per_s":
            v = np.minimum(pred[..., idx["slew_rise_v_per_s"]], pred[..., idx["slew_fall_v_per_s"]])
        elif b.metric == "swing_v":
            v = np.maximum(0.0, pred[..., idx["swing_high_v"]] - pred[..., idx["swing_low_v"]])
        elif b.metric == "supply_a":
            v = pred[..., idx["power_w"]] / TRAINED_AT["vdd"]
        else:
            continue
        if b.unit == "bool":
            marg = (v - 0.5) * 2.0 if b.min else (0.5 - v) * 2.0
        else:
            marg = np.vectorize(lambda x: b.margin(float(x)) if math.isfinite(x) else -10.0)(v)
        total += np.maximum(0.0, margin - marg.min(axis=0))
    return total


def predicted_shortfalls(model: SizingPredictor, circuits: Sequence[TransistorCircuit], spec,
                         loads: Sequence[float] | None = None, margin: float = 0.0) -> np.ndarray:
    """(len(circuits),) the spec's shortfall by the members' pessimistic prediction of each circuit
    (at `loads`, farads; default each circuit's own)."""
    data = labelled_examples(_Unlabelled(c, cl) for c, cl in zip(circuits, loads or [_own_load(c) for c in circuits]))
    x, _ = data.batch(range(len(data)))
    return _agreed_shortfall(model, spec, model.predict(x), margin)


@dataclass(frozen=True)
class Refined:
    circuit: TransistorCircuit
    predicted_shortfall: float          # of the refined sizes (all members must agree)
    start_shortfall: float              # of the circuit's own sizes


def refine_sizes(model: SizingPredictor, circuit: TransistorCircuit, spec, *, load: float | None = None,
                 iterations: int = 8, population: int = 256, elite: int = 24, margin: float = 0.1,
                 seed: int = 0) -> Refined:
    """Move a circuit's sizes to where every member predicts the spec met with `margin` to spare.

    The search stays where the data is: the dataset (cktflow.dataset.transistor_build) varies a
    circuit around its own sizes by one factor on all lengths, one on all widths and one on all bias
    currents, and a small jitter on each parameter, so the refinement moves the same way within
    the same ranges (a cross-entropy search over those 3 factors and the jitters). Moving one
    length alone by a decade would put the predictor where it has never seen a circuit, and a
    search finds a predictor's mistakes there first. Returns the circuit itself when no sizing
    is predicted better than its own."""
    from ..dataset.transistor_build import BIAS_RANGE, JITTER, L_RANGE, W_RANGE
    from ..sizing.transistor import TransistorSpace
    space = TransistorSpace.of(circuit)
    graph = DeviceGraph.of(circuit)
    order = [space.names.index(p) for p in graph.params]
    rng = np.random.default_rng(seed)
    x0 = np.log10(np.asarray(space.start(), dtype=np.float64))
    p = len(x0)
    # which collective factor moves each parameter: 0 lengths, 1 widths, 2 bias currents, -1 none
    group = np.array([0 if k == "mos.l" else 1 if k == "mos.w" else 2 if k in ("i", "A") else -1
                      for _, k in space.keys])
    ranges = [L_RANGE, W_RANGE, BIAS_RANGE]
    lo = np.concatenate([[math.log10(r[0]) for r in ranges], np.full(p, -math.log10(JITTER))])
    hi = np.concatenate([[math.log10(r[1]) for r in ranges], np.full(p, math.log10(JITTER))])
    plo, phi = np.log10([b[0] for b in space.bounds]), np.log10([b[1] for b in space.bounds])

    def sizes_of(v: np.ndarray) -> np.ndarray:
        """(S, 3 + P) factors and jitters (log10) -> (S, P) log10 sizes within the PDK's bounds."""
        collective = np.where(group >= 0, v[:, np.clip(group, 0, 2)], 0.0)
        return np.clip(x0 + collective + v[:, 3:], plo, phi)

    def score(v: np.ndarray) -> np.ndarray:
        pred = model.predict(same_graph_batch(graph, 10.0 ** sizes_of(v)[:, order],
                                              load=load if load is not None else _own_load(circuit)))
        return _agreed_shortfall(model, spec, pred, margin)

    v0 = np.zeros(3 + p)
    start = float(score(v0[None])[0])
    mu, sigma = v0.copy(), (hi - lo) / 4
    best_v, best = v0, start
    for _ in range(iterations):
        v = np.clip(mu + sigma * rng.standard_normal((population, len(mu))), lo, hi)
        v[0] = best_v
        s = score(v)
        top = np.argsort(s)[:elite]
        if s[top[0]] < best:
            best, best_v = float(s[top[0]]), v[top[0]]
        mu = v[top].mean(0)
        sigma = np.maximum(v[top].std(0), 0.01)
        if best == 0.0:
            break
    if best >= start:
        return Refined(circuit, start, start)
    return Refined(space.circuit_at(list(10.0 ** sizes_of(best_v[None])[0])), best, start)
