"""Measurements on an AC transfer function H(f) and on a follower's step response
(definitions: shared/design/metrics.md).

`Performance` is the one representation of a measured result in the whole project. A value that
does not exist (no unity-gain crossing, no -3 dB point inside the sweep, no loop gain above 1) is
None, never a number made up to stand in for it.

"Usable in feedback" (metrics.md): the loop gain is L = s*H with s the sign that makes L positive
at the lowest frequency. Its phase phi is unwrapped along the sweep from the lowest frequency (no
modulo), so a loop whose phase has passed -180 deg below the UGF reads a negative margin there.
"""

from __future__ import annotations

import math

import numpy as np

from .metrics import METRIC_UNITS, METRICS

__all__ = ["Performance", "measure", "measure_step", "step_grows", "loop_sign", "where", "METRICS", "METRIC_UNITS",
           "SETTLING_BAND"]

#: The follower's settling band: the response stays within this fraction of its final value.
SETTLING_BAND = 0.01


class Performance:
    """Measured values by metric name (spice_sim.metrics.REGISTRY), immutable.

    `perf.gain_db` or `perf.get("gain_db")` reads a value; a registered metric that was not
    measured reads None. `to_dict()` always lists the behavioural metrics (None when absent, so a
    behavioural record keeps the same keys) and then whatever else was measured."""

    __slots__ = ("_values",)

    def __init__(self, **values):
        clean = {}
        for k, v in values.items():
            unit = METRIC_UNITS.get(k)
            if unit is None:
                raise ValueError(f"unknown performance field '{k}' (known: {', '.join(METRIC_UNITS)})")
            if v is not None:
                clean[k] = bool(v) if unit == "bool" else float(v)
        object.__setattr__(self, "_values", clean)

    def __getattr__(self, name: str):
        if name in METRIC_UNITS:
            return self._values.get(name)
        raise AttributeError(name)

    def __setattr__(self, name, value):
        raise AttributeError("Performance is immutable: use with_values()")

    def __reduce__(self):
        return (_performance, (self._values,))

    def __eq__(self, other) -> bool:
        return isinstance(other, Performance) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return "Performance(" + ", ".join(f"{k}={v!r}" for k, v in self.items()) + ")"

    def items(self):
        """(name, value) of the measured metrics, in registry order."""
        return [(k, self._values[k]) for k in METRIC_UNITS if k in self._values]

    def to_dict(self) -> dict[str, float | bool | None]:
        out: dict[str, float | bool | None] = {k: self._values.get(k) for k in METRICS}
        out.update((k, v) for k, v in self.items() if k not in out)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Performance":
        return cls(**d)

    def get(self, name: str) -> float | bool | None:
        if name not in METRIC_UNITS:
            raise KeyError(f"unknown metric '{name}'")
        return self._values.get(name)

    def with_values(self, **values) -> "Performance":
        return Performance(**{**self._values, **values})


def _performance(values: dict) -> Performance:
    return Performance(**values)


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> tuple[int, float] | None:
    """First index k where y goes from >= level to < level between k and k+1, and the fraction."""
    above = y >= level
    idx = np.nonzero(above[:-1] & ~above[1:])[0]
    if idx.size == 0:
        return None
    k = int(idx[0])
    t = (y[k] - level) / (y[k] - y[k + 1])
    return k, float(t)


def loop_sign(h0: complex) -> int:
    """s of L = s*H: the sign that makes the loop gain positive at the lowest frequency."""
    return 1 if np.real(h0) >= 0 else -1


def measure(freq: np.ndarray, h: np.ndarray) -> Performance:
    """The AC metrics of metrics.md from a sweep (ascending frequencies) and the complex H there.
    `stable`, `overshoot_pct` and `settling_s` need more than H(f): see spice_sim.jobs."""
    freq = np.asarray(freq, dtype=float)
    h = np.asarray(h, dtype=complex)
    if freq.ndim != 1 or freq.shape != h.shape or freq.size < 2:
        raise ValueError("freq and h must be 1-D arrays of the same length (>= 2)")
    mag_db = 20 * np.log10(np.maximum(np.abs(h), 1e-300))
    logf = np.log10(freq)
    # Phase lag accumulated from the first sweep point, unwrapped along the sweep. The sign s of
    # the loop only adds a constant 180 deg to the phase of H, so L's lag is H's lag.
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
    peaking = max(0.0, float(mag_db.max()) - gain)
    return Performance(gain_db=gain, ugf_hz=ugf, pm_deg=pm, bw_hz=bw, gm_db=gm, ocb_pm_deg=ocb_pm,
                       peaking_db=peaking, pm_min_deg=_pm_min(mag_db, lag, pm))


def where(freq: np.ndarray, h: np.ndarray) -> dict[str, float | None]:
    """The frequencies at which `measure` reads pm_min_deg and peaking_db (for plots): the sweep
    point of the smallest margin where |L| >= 1 (the UGF when the margin is smallest there), and
    the point of the largest |H|. None where the metric does not exist."""
    freq = np.asarray(freq, dtype=float)
    h = np.asarray(h, dtype=complex)
    perf = measure(freq, h)
    mag_db = 20 * np.log10(np.maximum(np.abs(h), 1e-300))
    phase = np.unwrap(np.angle(h))
    lag = np.degrees(phase[0] - phase)
    f_pm_min = None
    if perf.pm_min_deg is not None:
        loud = np.nonzero(mag_db >= 0.0)[0]
        margins = 180.0 - np.abs(lag[loud])
        k = int(loud[np.argmin(margins)]) if loud.size else None
        at_ugf = perf.pm_deg is not None and (k is None or 180.0 - abs(180.0 - perf.pm_deg) <= margins.min())
        f_pm_min = perf.ugf_hz if at_ugf else float(freq[k])
    f_peak = float(freq[int(np.argmax(mag_db))]) if perf.peaking_db and perf.peaking_db > 0 else None
    return {"ugf_hz": perf.ugf_hz, "pm_min_hz": f_pm_min, "peak_hz": f_peak}


def _pm_min(mag_db: np.ndarray, lag: np.ndarray, pm: float | None) -> float | None:
    """min of 180 - |phi| over the sweep points where |L| >= 1, and at the UGF itself (so that it
    never exceeds the design PM read between two sweep points). None when |L| < 1 everywhere."""
    loud = mag_db >= 0.0
    vals = [float(np.min(180.0 - np.abs(lag[loud])))] if loud.any() else []
    if pm is not None:
        vals.append(180.0 - abs(180.0 - pm))
    return min(vals) if vals else None


def measure_step(time: np.ndarray, y: np.ndarray, final: float,
                 band: float = SETTLING_BAND) -> tuple[float | None, float | None]:
    """(overshoot in %, settling time in s) of a step response `y(time)` toward `final` (> 0).

    Overshoot: how far the peak rises above `final`, in % of it (0 for a response that never
    passes it). Settling: the time after which y stays within +-band*final; None when the response
    is still outside the band at the end of the record (it did not settle in the window). Both None
    for a response that does not converge (`step_grows`): it has no final value to measure from."""
    time = np.asarray(time, dtype=float)
    y = np.asarray(y, dtype=float)
    final = float(final)
    if final <= 0 or time.size < 2 or step_grows(y, final, band):
        return None, None
    overshoot = max(0.0, float(y.max() - final) / final * 100.0)
    outside = np.nonzero(np.abs(y - final) > band * final)[0]
    if outside.size == 0:
        return overshoot, 0.0
    k = int(outside[-1])
    if k == time.size - 1:
        return overshoot, None
    # interpolate where |y - final| comes back to the band between samples k and k+1
    e0, e1 = abs(y[k] - final), abs(y[k + 1] - final)
    t = (e0 - band * final) / (e0 - e1) if e0 != e1 else 1.0
    return overshoot, float(time[k] + min(max(t, 0.0), 1.0) * (time[k + 1] - time[k]))


def step_grows(y: np.ndarray, final: float, band: float = SETTLING_BAND) -> bool:
    """Whether a step response is not converging: not finite, beyond 1000 times its final value,
    or still outside the settling band at the end with an error envelope over the last quarter of
    the record at least that of the second quarter (an oscillation that does not die out)."""
    y = np.asarray(y, dtype=float)
    scale = max(abs(final), 1e-12)
    if not np.all(np.isfinite(y)) or np.max(np.abs(y)) > 1e3 * scale:
        return True
    e = np.abs(y - final)
    n = len(e)
    if n < 8:
        return False
    second, last = e[n // 4:n // 2].max(), e[3 * n // 4:].max()
    return bool(last > band * scale and last >= second)


def _wrap180(x: float) -> float:
    """Wrap degrees into (-180, 180]."""
    y = math.fmod(x, 360.0)
    if y > 180.0:
        y -= 360.0
    elif y <= -180.0:
        y += 360.0
    return y
