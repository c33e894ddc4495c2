"""The full spec at a PDK as the generator reads it: every metric of the registry, a presence mask
and the conditions; and the training pairs of the sky130 store in that form.

A designer's spec names a few of the transistor level's metrics (gain, UGF, power, slew, noise,
swing, CMRR ...), and the implicit usable-in-feedback targets add stability, the worst phase margin,
peaking and saturation. The vector has one entry per metric of the registry (`FULL_SPEC_METRICS`,
gain, UGF and PM first, on the behavioural model's own scales, so a model fine-tuned from the
behavioural one starts from what it knows); a spec fills the entries it bounds and marks them
present. Values are on the scales specs are judged on (decades for frequencies, power, slew, noise
and times; the value otherwise, labels clipped where broken circuits measure nonsense:
`sizing_predictor.label_value`), then shifted and scaled to order one (`_CENTRE`, `_SCALE`).
Conditions: log10(load / 5 pF) and vdd / 1.8 V - 1.

Training pairs (`full_spec_data`): every measured circuit of the store that was realised from a
behavioural topology (its provenance holds the behavioural circuit) pairs that behavioural circuit
(what the generator decodes) with the full spec its transistor realisation measured, at the load it
was measured with. One behavioural circuit appears with several sizings of its realisation, so it
pairs with several specs: the generator learns which topologies reach which specs. The templates
have no behavioural circuit and are not in these pairs (generate offers them beside the model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

from spice_sim.measure import Performance
from spice_sim.metrics import METRIC_UNITS, metrics_at
from ..circuit import Circuit
from ..spec import Spec
from .data import GAIN_SCALE_DB, LOG_UGF_OFFSET, MAX_NODES, PM_SCALE_DEG, CircuitTensors, encode_circuits
from .sizing_predictor import label_value

__all__ = ["FULL_SPEC_METRICS", "FULL_SPEC_DIM", "CONDITION_DIM", "REFERENCE_LOAD_F", "REFERENCE_VDD",
           "normalise_metric", "full_spec_vector", "condition_vector", "FullTarget", "full_target",
           "FullSpecData", "full_spec_data", "TARGET_INSIDE"]

#: gain, UGF and PM first (the behavioural vector's entries, on its scales), then the rest of the
#: transistor level's metrics in the registry's order.
FULL_SPEC_METRICS: tuple[str, ...] = ("gain_db", "ugf_hz", "pm_deg") + tuple(
    m for m in metrics_at("transistor") if m not in ("gain_db", "ugf_hz", "pm_deg"))
FULL_SPEC_DIM = len(FULL_SPEC_METRICS)
CONDITION_DIM = 2
REFERENCE_LOAD_F = 5e-12
REFERENCE_VDD = 1.8

#: Per unit on the label scale: (centre, scale) onto order one. Decades around the sky130 store's
#: typical op-amp (its medians within a decade: 1 mW of power, 1 mA of supply at 0); gain, UGF
#: and PM on the behavioural vector's scales (UGF 1-100 MHz at -3..-1).
_UNIT_NORM = {"dB": (0.0, GAIN_SCALE_DB), "deg": (0.0, PM_SCALE_DEG), "bool": (0.0, 1.0), "%": (0.0, 2.0),
              "V": (0.0, REFERENCE_VDD), "Hz": (LOG_UGF_OFFSET, 1.0), "s": (-6.0, 1.0), "V/s": (7.0, 1.0),
              "A": (-3.0, 1.0), "W": (-3.0, 1.0), "um2": (3.0, 1.0), "V/sqrt(Hz)": (-5.0, 1.0)}
#: The -3 dB bandwidth sits decades below the UGF; noise_v_rms is a voltage but spans decades (its
#: label is log10 V, as the predictor learns it).
_METRIC_NORM = {"bw_hz": (4.0, 1.0), "noise_v_rms": (-2.0, 1.0)}
#: How far inside a one-sided bound the conditioning value sits, in normalised units: a spec
#: "gain >= 60 dB" asks for circuits above 60 dB (the behavioural TARGET_MARGIN's size).
TARGET_INSIDE = 0.1


def _norm(metric: str) -> tuple[float, float]:
    return _METRIC_NORM.get(metric) or _UNIT_NORM[METRIC_UNITS[metric]]


def normalise_metric(metric: str, value) -> float:
    """One metric's value in the full spec's units (NaN when absent or not measurable)."""
    y = label_value(metric, value)
    centre, scale = _norm(metric)
    return (y - centre) / scale if math.isfinite(y) else math.nan


def full_spec_vector(perf: Performance | None) -> list[float]:
    """A measured circuit's full spec: every metric normalised, NaN where it was not measured."""
    if perf is None:
        return [math.nan] * FULL_SPEC_DIM
    return [normalise_metric(m, perf.get(m)) for m in FULL_SPEC_METRICS]


def condition_vector(load_f: float, vdd: float) -> list[float]:
    return [math.log10(load_f / REFERENCE_LOAD_F), vdd / REFERENCE_VDD - 1.0]


@dataclass(frozen=True)
class FullTarget:
    """A spec in the full vector's units: the conditioning point, which entries it names, its
    bounds (infinite where open) and its conditions."""
    value: torch.Tensor       # (FULL_SPEC_DIM,)
    present: torch.Tensor     # (FULL_SPEC_DIM,) bool
    lower: torch.Tensor
    upper: torch.Tensor
    conditions: torch.Tensor  # (CONDITION_DIM,)


def full_target(spec: Spec, load_f: float, vdd: float) -> FullTarget:
    """Every bound of the spec (its own targets and the implicit ones) as the full vector: a bound
    on one side conditions TARGET_INSIDE inside it, a window at its middle."""
    value = torch.zeros(FULL_SPEC_DIM)
    present = torch.zeros(FULL_SPEC_DIM, dtype=torch.bool)
    lower = torch.full((FULL_SPEC_DIM,), -math.inf)
    upper = torch.full((FULL_SPEC_DIM,), math.inf)
    for b in spec.bounds:
        if b.metric not in FULL_SPEC_METRICS:
            continue
        i = FULL_SPEC_METRICS.index(b.metric)
        lo = normalise_metric(b.metric, b.min) if b.min is not None else -math.inf
        hi = normalise_metric(b.metric, b.max) if b.max is not None else math.inf
        lo = -math.inf if math.isnan(lo) else lo
        hi = math.inf if math.isnan(hi) else hi
        if METRIC_UNITS[b.metric] == "bool":
            point = 1.0 if b.min else 0.0
        elif math.isfinite(lo) and math.isfinite(hi):
            point = 0.5 * (lo + hi)
        elif math.isfinite(lo):
            point = lo + TARGET_INSIDE
        elif math.isfinite(hi):
            point = hi - TARGET_INSIDE
        else:
            continue
        value[i], present[i], lower[i], upper[i] = point, True, lo, hi
    return FullTarget(value, present, lower, upper, torch.tensor(condition_vector(load_f, vdd)))


@dataclass
class FullSpecData:
    """The generator's training pairs at a PDK (module docstring), one split."""
    circuits: list[Circuit]     # behavioural circuits (what the decoder emits)
    x: CircuitTensors
    spec: torch.Tensor          # (B, FULL_SPEC_DIM), NaN where not measured
    conditions: torch.Tensor    # (B, CONDITION_DIM)
    hashes: list[str]           # the behavioural circuit's canonical hash (pairs of one circuit share it)

    def __len__(self) -> int:
        return len(self.circuits)

    def take(self, idx: Sequence[int]) -> "FullSpecData":
        t = torch.as_tensor(list(idx), dtype=torch.long)
        return FullSpecData([self.circuits[i] for i in idx], self.x.index(t), self.spec[t], self.conditions[t],
                            [self.hashes[i] for i in idx])


def _pairs(records: Iterable, split: str) -> FullSpecData:
    circuits, specs, conds = [], [], []
    for r in records:
        prov = r.provenance or {}
        beh = prov.get("behavioural")
        if r.split != split or beh is None or r.performance is None:
            continue
        c = Circuit.from_dict(beh)
        if len(c.nodes) > MAX_NODES:
            continue
        at = prov.get("conditions", {})
        circuits.append(c)
        specs.append(full_spec_vector(r.performance))
        conds.append(condition_vector(float(at.get("cl", REFERENCE_LOAD_F)), float(at.get("vdd", REFERENCE_VDD))))
    return FullSpecData(circuits, encode_circuits(circuits),
                        torch.tensor(specs, dtype=torch.float32).reshape(-1, FULL_SPEC_DIM),
                        torch.tensor(conds, dtype=torch.float32).reshape(-1, CONDITION_DIM),
                        [c.canonical_hash() for c in circuits])


def full_spec_data(db: str | Path, splits: Sequence[str] = ("train", "test")) -> dict[str, FullSpecData]:
    """The store's training pairs per split; FileNotFoundError naming the file when it is missing,
    ValueError when the training split holds none."""
    from ..dataset import Dataset
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist (build it with `cktflow dataset build --pdk ...`)")
    with Dataset.open(path) as ds:
        records = list(ds.records())
    out = {s: _pairs(records, s) for s in splits}
    if "train" in out and not len(out["train"]):
        raise ValueError(f"{path}: no realised circuit with its behavioural source in the training split")
    return out
