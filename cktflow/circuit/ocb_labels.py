"""The published OCB label normalisation (ocb-generator.md section 5), defined once.

perform101.csv stores gain = dB/100 + 1.19531, pm = -PM/90 + 2.00001 (the OCB label PM) and
bw = UGF/1e9 + 1e-5; a row of exactly these offsets is the placeholder of a failed simulation.
The paper's spec classes are the floors of these normalised values.
"""

from __future__ import annotations

__all__ = ["GAIN_OFFSET", "PM_OFFSET", "BW_OFFSET", "PLACEHOLDER", "normalise", "denormalise"]

GAIN_OFFSET, PM_OFFSET, BW_OFFSET = 1.19531, 2.00001, 1e-5
PLACEHOLDER = (GAIN_OFFSET, PM_OFFSET, BW_OFFSET)


def normalise(gain_db: float, ocb_pm_deg: float, ugf_hz: float) -> tuple[float, float, float]:
    """Measured values -> the published (gain, pm, bw) columns."""
    return gain_db / 100.0 + GAIN_OFFSET, -ocb_pm_deg / 90.0 + PM_OFFSET, ugf_hz / 1e9 + BW_OFFSET


def denormalise(gain: float, pm: float, bw: float) -> tuple[float, float, float]:
    """The published (gain, pm, bw) columns -> (gain_db, ocb_pm_deg, ugf_hz)."""
    return (gain - GAIN_OFFSET) * 100.0, -(pm - PM_OFFSET) * 90.0, (bw - BW_OFFSET) * 1e9
