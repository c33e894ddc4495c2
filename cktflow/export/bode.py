"""Bode plot of a measured transfer function H(f), as a PNG for reports.

Used by the `generate` report and by `export_all`. The measurements drawn on the plot (UGF and
phase margin) come from `spice_sim.measure`, the one definition of them, so the figure and the
report's table cannot disagree.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from spice_sim.measure import measure

from ..units import format_si

__all__ = ["plot_bode"]

log = logging.getLogger(__name__)


def plot_bode(freq, h, path: str | Path, title: str = "", *, dpi: int = 110) -> Path:
    """Write a two-panel Bode plot (magnitude in dB, unwrapped phase in degrees) to `path` (PNG).

    The phase is unwrapped along the sweep and shown as the lag from the lowest frequency, so an
    inverting amplifier does not jump by 360 degrees; the UGF and the design phase margin are
    marked when they exist. Returns the path written.
    """
    # The Agg canvas on a bare Figure: no pyplot, so no global figure state or GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    freq = np.asarray(freq, dtype=float)
    h = np.asarray(h, dtype=complex)
    if freq.ndim != 1 or freq.shape != h.shape or freq.size < 2:
        raise ValueError("freq and h must be 1-D arrays of the same length (>= 2)")
    perf = measure(freq, h)
    mag_db = 20 * np.log10(np.maximum(np.abs(h), 1e-300))
    phase = np.degrees(np.unwrap(np.angle(h)))
    phase = phase - phase[0] + np.degrees(np.angle(h[0]))   # start at the true phase of H(f0)

    fig = Figure(figsize=(6.4, 4.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_m, ax_p = fig.subplots(2, 1, sharex=True)
    ax_m.semilogx(freq, mag_db, color="tab:blue")
    ax_m.axhline(0, color="0.6", lw=0.8)
    ax_m.set_ylabel("|H| (dB)")
    ax_p.semilogx(freq, phase, color="tab:red")
    ax_p.set_ylabel("phase (deg)")
    ax_p.set_xlabel("frequency (Hz)")
    notes = [f"gain {perf.gain_db:.1f} dB"]
    if perf.ugf_hz is not None:
        for ax in (ax_m, ax_p):
            ax.axvline(perf.ugf_hz, color="0.4", ls="--", lw=0.8)
        notes.append(f"UGF {format_si(perf.ugf_hz, 'Hz')}")
    if perf.pm_deg is not None:
        notes.append(f"PM {perf.pm_deg:.1f} deg")
    ax_m.set_title(((title + "\n") if title else "") + ", ".join(notes), fontsize=9)
    for ax in (ax_m, ax_p):
        ax.grid(True, which="both", color="0.9", lw=0.5)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    log.debug("wrote Bode plot %s", path)
    return path
