"""Bode plot of a measured transfer function H(f), and the unity-gain follower's step response, as
PNGs for reports.

Used by the `generate` report and by `export_all`. The measurements drawn on the plots (UGF, phase
margin, the smallest margin where |L| >= 1, peaking, overshoot, settling) come from
`spice_sim.measure`, the one definition of them, so the figures and the report's table cannot
disagree.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from spice_sim.measure import SETTLING_BAND, measure, measure_step, where

from ..fsutil import atomic_path
from ..units import format_si

__all__ = ["plot_bode", "plot_step"]

log = logging.getLogger(__name__)


def _figure(rows: int, height: float, dpi: int):
    # The Agg canvas on a bare Figure: no pyplot, so no global figure state or GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, 1, sharex=True)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:      # a killed run leaves the old PNG or none, never half of one
        fig.savefig(tmp, format="png")
    log.debug("wrote %s", path)
    return path


def plot_bode(freq, h, path: str | Path, title: str = "", *, dpi: int = 110) -> Path:
    """Write a two-panel Bode plot (magnitude in dB, unwrapped phase in degrees) to `path` (PNG).

    The phase is unwrapped along the sweep and shown as the lag from the lowest frequency, so an
    inverting amplifier does not jump by 360 degrees. Marked when they exist: the UGF (dashed), the
    frequency of the smallest phase margin where |L| >= 1 (red, with the -180 deg line it is measured
    against) and the peak of |H| with the peaking above the DC gain (orange). Returns the path.
    """
    freq = np.asarray(freq, dtype=float)
    h = np.asarray(h, dtype=complex)
    if freq.ndim != 1 or freq.shape != h.shape or freq.size < 2:
        raise ValueError("freq and h must be 1-D arrays of the same length (>= 2)")
    perf = measure(freq, h)
    marks = where(freq, h)
    mag_db = 20 * np.log10(np.maximum(np.abs(h), 1e-300))
    lag = np.degrees(np.unwrap(np.angle(h)))
    lag = lag - lag[0]                           # the loop phase phi: 0 at the lowest frequency

    fig, (ax_m, ax_p) = _figure(2, 4.8, dpi)
    ax_m.semilogx(freq, mag_db, color="tab:blue")
    ax_m.axhline(0, color="0.6", lw=0.8)
    ax_m.set_ylabel("|H| (dB)")
    ax_p.semilogx(freq, lag, color="tab:red")
    ax_p.axhline(-180, color="0.6", lw=0.8)
    ax_p.axhline(180, color="0.85", lw=0.6)
    ax_p.set_ylabel("loop phase (deg)")
    ax_p.set_xlabel("frequency (Hz)")
    notes = [f"gain {perf.gain_db:.1f} dB"]
    if perf.ugf_hz is not None:
        for ax in (ax_m, ax_p):
            ax.axvline(perf.ugf_hz, color="0.4", ls="--", lw=0.8)
        notes.append(f"UGF {format_si(perf.ugf_hz, 'Hz')}")
    if perf.pm_deg is not None:
        notes.append(f"PM {perf.pm_deg:.1f} deg")
    if marks["pm_min_hz"] is not None:
        f = marks["pm_min_hz"]
        phi = float(np.interp(np.log10(f), np.log10(freq), lag))
        ax_p.plot([f], [phi], "o", color="tab:red", ms=5)
        ax_p.annotate(f"pm_min {perf.pm_min_deg:.1f} deg", (f, phi), textcoords="offset points", xytext=(6, 6),
                      fontsize=8, color="tab:red")
        notes.append(f"pm_min {perf.pm_min_deg:.1f} deg")
    if marks["peak_hz"] is not None:
        f = marks["peak_hz"]
        ax_m.plot([f], [perf.gain_db + perf.peaking_db], "v", color="tab:orange", ms=6)
        ax_m.annotate(f"peaking {perf.peaking_db:.1f} dB", (f, perf.gain_db + perf.peaking_db),
                      textcoords="offset points", xytext=(6, -12), fontsize=8, color="tab:orange")
        if perf.peaking_db >= 0.1:
            notes.append(f"peaking {perf.peaking_db:.1f} dB")
    ax_m.set_title(((title + "\n") if title else "") + ", ".join(notes), fontsize=9)
    for ax in (ax_m, ax_p):
        ax.grid(True, which="both", color="0.9", lw=0.5)
    return _save(fig, path)


def plot_step(time, response, final: float, path: str | Path, title: str = "", *, dpi: int = 110) -> Path:
    """Write the unity-gain follower's step response (output over the input step, so it tends to
    `final`, the closed loop's DC gain) with the +-1 % settling band, the overshoot and the settling
    time marked. A runaway response is drawn clipped, with its verdict in the title."""
    t = np.asarray(time, dtype=float)
    y = np.asarray(response, dtype=float)
    if t.ndim != 1 or t.shape != y.shape or t.size < 2:
        raise ValueError("time and response must be 1-D arrays of the same length (>= 2)")
    overshoot, settling = measure_step(t, y, final)
    fig, ax = _figure(1, 3.2, dpi)
    scale, unit = _time_scale(float(t[-1]))
    runaway = not np.all(np.isfinite(y)) or np.max(np.abs(y)) > 10 * max(final, 1e-3)
    shown = np.clip(np.nan_to_num(y, nan=0.0), -3 * final, 3 * final) if runaway else y
    ax.plot(t / scale, shown, color="tab:blue")
    band = SETTLING_BAND * final
    ax.axhspan(final - band, final + band, color="tab:green", alpha=0.15, lw=0)
    ax.axhline(final, color="0.5", lw=0.8)
    if settling is not None:
        ax.axvline(settling / scale, color="tab:green", ls="--", lw=0.8)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("V(out) / step")
    ax.grid(True, color="0.9", lw=0.5)
    if runaway:
        verdict = "runs away: unstable as a unity-gain follower"
    else:
        verdict = (f"overshoot {overshoot:.1f} %, " if overshoot is not None else "") + (
            f"1 % settling {format_si(settling, 's')}" if settling is not None else "not settled within the window")
    ax.set_title(((title + "\n") if title else "") + "unity-gain follower step: " + verdict, fontsize=9)
    return _save(fig, path)


def _time_scale(t_end: float) -> tuple[float, str]:
    for scale, unit in ((1e-12, "ps"), (1e-9, "ns"), (1e-6, "us"), (1e-3, "ms")):
        if t_end < 1000 * scale:
            return scale, unit
    return 1.0, "s"
