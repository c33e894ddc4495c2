"""Measurements on an AC transfer function H(f) (definitions: shared/design/metrics.md).

`Performance` is the one representation of a measured result in the whole project. A value that
does not exist (no unity-gain crossing, no -3 dB point inside the sweep) is None, never a number
made up to stand in for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["Performance", "measure", "METRICS", "METRIC_UNITS"]

#: Metric name -> unit, in report order.
METRIC_UNITS = {"gain_db": "dB", "ugf_hz": "Hz", "pm_deg": "deg", "bw_hz": "Hz", "gm_db": "dB",
                "ocb_pm_deg": "deg"}
METRICS = tuple(METRIC_UNITS)


@dataclass(frozen=True)
class Performance:
    gain_db: float | None = None      # |H| in dB at the lowest sweep frequency
    ugf_hz: float | None = None       # first downward 0 dB crossing
    pm_deg: float | None = None       # design phase margin: 180 - accumulated phase lag at the UGF
    bw_hz: float | None = None        # first frequency 3 dB below gain_db
    gm_db: float | None = None        # gain margin at the first 180 deg of accumulated phase lag
    ocb_pm_deg: float | None = None   # OCB label convention: wrap(180 + phase(H(ugf))) into (-180, 180]

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Performance":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown performance field(s): {', '.join(sorted(unknown))}")
        return cls(**{k: (None if v is None else float(v)) for k, v in d.items()})

    def get(self, name: str) -> float | None:
        return getattr(self, name)


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> tuple[int, float] | None:
    """First index k where y goes from >= level to < level between k and k+1, and the fraction."""
    above = y >= level
    idx = np.nonzero(above[:-1] & ~above[1:])[0]
    if idx.size == 0:
        return None
    k = int(idx[0])
    t = (y[k] - level) / (y[k] - y[k + 1])
    return k, float(t)


def measure(freq: np.ndarray, h: np.ndarray) -> Performance:
    """All metrics of metrics.md from a sweep (ascending frequencies) and the complex H there."""
    freq = np.asarray(freq, dtype=float)
    h = np.asarray(h, dtype=complex)
    if freq.ndim != 1 or freq.shape != h.shape or freq.size < 2:
        raise ValueError("freq and h must be 1-D arrays of the same length (>= 2)")
    mag_db = 20 * np.log10(np.maximum(np.abs(h), 1e-300))
    logf = np.log10(freq)
    # Phase lag accumulated from the first sweep point, unwrapped along the sweep.
    phase = np.unwrap(np.angle(h))
    lag = np.degrees(phase[0] - phase)
    gain = float(mag_db[0])

    def interp(k: int, t: float, arr: np.ndarray) -> float:
        return float(arr[k] + t * (arr[k + 1] - arr[k]))

    ugf = pm = ocb_pm = None
    # Only a crossing from above counts: abs(H) must reach 1 first (gain >= 0 dB at DC or later).
    cross = _crossing(logf, mag_db, 0.0)
    if cross is not None:
        k, t = cross
        ugf = 10 ** interp(k, t, logf)
        pm = 180.0 - interp(k, t, lag)
        raw = math.degrees(interp(k, t, phase))
        ocb_pm = _wrap180(180.0 + raw)
    bw = None
    c3 = _crossing(logf, mag_db, gain - 3.0)
    if c3 is not None:
        bw = 10 ** interp(*c3, logf)
    gm = None
    c180 = _crossing(logf, -lag, -180.0)   # lag rising through 180
    if c180 is not None:
        gm = -interp(*c180, mag_db)
    return Performance(gain_db=gain, ugf_hz=ugf, pm_deg=pm, bw_hz=bw, gm_db=gm, ocb_pm_deg=ocb_pm)


def _wrap180(x: float) -> float:
    """Wrap degrees into (-180, 180]."""
    y = math.fmod(x, 360.0)
    if y > 180.0:
        y -= 360.0
    elif y <= -180.0:
        y += 360.0
    return y
