"""The stored circuits whose measured performance lies nearest a spec.

Used twice: as the closed loop's memory (`cktflow generate --memory`: when the model's proposals
miss, the nearest measured circuits are the next candidates) and as the retrieval baseline of
bench/autodesign.py. "Nearest" is measured in the units a spec's shortfall is counted in
(cktflow.spec.SHORTFALL_SCALE: 20 dB, one decade of UGF, 30 deg), so it means what a spec means.
A spec with implicit usable-in-feedback targets gets the stored circuits that meet those targets
first (nearest first among them), then the others: a stable neighbour is a better start for sizing
than a nearer one that oscillates, whose topology sizing rarely cures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from spice_sim import Performance

from ..circuit import Circuit
from ..spec import SHORTFALL_SCALE, Spec
from .store import Dataset, default_db_path

__all__ = ["NearestCircuits"]

_METRICS = ("gain_db", "ugf_hz", "pm_deg")
_SCALES = np.array([SHORTFALL_SCALE["dB"], SHORTFALL_SCALE["Hz"], SHORTFALL_SCALE["deg"]])   # UGF in decades


def _features(gain_db: float, ugf_hz: float, pm_deg: float) -> np.ndarray:
    return np.array([gain_db, math.log10(ugf_hz), pm_deg]) / _SCALES


class NearestCircuits:
    """An index of measured circuits by (gain, log UGF, design PM).

    Circuits without all three measurements (no unity crossing, no phase margin) are left out: they
    have no place in this space.
    """

    def __init__(self, pairs: Iterable[tuple[Circuit, Performance]]):
        kept = [(c, p) for c, p in pairs
                if p is not None and p.gain_db is not None and p.ugf_hz and p.pm_deg is not None]
        self.circuits = [c for c, _ in kept]
        self.x = (np.stack([_features(p.gain_db, p.ugf_hz, p.pm_deg) for _, p in kept])
                  if kept else np.zeros((0, 3)))
        # the usable-in-feedback metrics, NaN where a label lacks them (stable as 1/0)
        self.usable = {m: np.array([np.nan if p.get(m) is None else float(p.get(m)) for _, p in kept])
                       for m in ("stable", "pm_min_deg", "peaking_db")}

    @classmethod
    def from_dataset(cls, path: str | Path | None = None) -> "NearestCircuits":
        """Every measured circuit of a dataset store (default: the built one), whatever its split:
        all of them are circuits ngspice has measured, the flywheel's verified ones among them."""
        path = Path(path) if path is not None else Path(default_db_path())
        if not path.exists():
            raise FileNotFoundError(f"dataset {path} does not exist (build it with `cktflow dataset build`)")
        with Dataset.open(path) as ds:
            return cls((r.circuit, r.performance) for r in ds.records(split=None))

    def __len__(self) -> int:
        return len(self.circuits)

    def nearest(self, spec: Spec, n: int) -> list[Circuit]:
        """The n circuits nearest the spec's centre: the middle of each window (geometric for the
        UGF), the bound itself when one-sided. A metric the spec does not name does not count."""
        if n < 1 or not self.circuits:
            return []
        centre = np.zeros(3)
        used = np.zeros(3, dtype=bool)
        for b in spec.targets:
            if b.metric not in _METRICS:
                continue
            i = _METRICS.index(b.metric)
            lo, hi = b.min, b.max
            if b.metric == "ugf_hz":
                lo, hi = (math.log10(v) if v is not None and v > 0 else None for v in (lo, hi))
            value = (lo + hi) / 2 if lo is not None and hi is not None else (lo if lo is not None else hi)
            if value is None:
                continue
            centre[i], used[i] = value / _SCALES[i], True
        if not used.any():
            return []
        d = np.linalg.norm((self.x - centre)[:, used], axis=1)
        order = np.lexsort((d, ~self._meets_implicit(spec)))       # usable first, then by distance
        return [self.circuits[i] for i in order[:n]]

    def _meets_implicit(self, spec: Spec) -> np.ndarray:
        """Per stored circuit: does its measured performance meet the spec's implicit targets?"""
        ok = np.ones(len(self.circuits), dtype=bool)
        for b in spec.implicit_bounds:
            v = self.usable[b.metric]
            with np.errstate(invalid="ignore"):
                if b.min is not None:
                    ok &= v >= b.min
                if b.max is not None:
                    ok &= v <= b.max
        return ok
