"""The one registry of metrics: name, unit, the testbench that measures it, the levels it exists
at, and its definition. Specs, reports, the dataset, the model and the docs (docs/spec.md's metric
tables are generated from here by `python -m cktflow.cli.docs`) all read this list.

Levels: "behavioural" circuits (gm stages, R, C on the OCB testbench) and "transistor" op-amps
(a PDK subcircuit with ports inp inn out vdd vss on templates/<pdk>/opamp_tb.cir). A metric that a
level does not measure is refused in a spec for that level, naming it.

Units: "bool" metrics hold True/False; every other value is a float in SI units.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "REGISTRY", "METRIC_UNITS", "METRICS", "LEVELS", "metrics_at", "LOG_UNITS"]

LEVELS = ("behavioural", "transistor")
_BOTH = ("behavioural", "transistor")
_T = ("transistor",)

#: Units whose values are compared in decades (a ratio), not on a linear scale.
LOG_UNITS = ("Hz", "s", "V/s", "A", "W", "um2", "V/sqrt(Hz)")


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    section: str            # the docs table it belongs to: ac, usable, transistor
    testbench: str          # what measures it (docs column)
    levels: tuple[str, ...]
    definition: str


_LIST = [
    # -- the open-loop AC response H(f) = V(out)/V(in) --------------------------------------------
    Metric("gain_db", "dB", "ac", "open-loop AC", _BOTH,
           "abs(H) in dB at the lowest sweep frequency (DC gain)"),
    Metric("ugf_hz", "Hz", "ac", "open-loop AC", _BOTH,
           "first downward 0 dB crossing (log-f / dB interpolation); none without one"),
    Metric("pm_deg", "deg", "ac", "open-loop AC", _BOTH,
           "design phase margin: 180 - phase lag accumulated from DC to the UGF; independent of the "
           "amplifier's sign"),
    Metric("bw_hz", "Hz", "ac", "open-loop AC", _BOTH, "-3 dB bandwidth; none if not inside the sweep"),
    Metric("gm_db", "dB", "ac", "open-loop AC", _BOTH,
           "gain margin where the accumulated lag first reaches 180 deg; none if never"),
    Metric("ocb_pm_deg", "deg", "ac", "open-loop AC", ("behavioural",),
           "the OCB label convention wrap(180 + phase(H(UGF))), only for the paper's classes"),
    # -- usable in feedback --------------------------------------------------------------------------
    Metric("peaking_db", "dB", "usable", "open-loop AC", _BOTH,
           "the largest abs(H) over the sweep minus `gain_db` (>= 0)"),
    Metric("pm_min_deg", "deg", "usable", "open-loop AC", _BOTH,
           "the smallest 180 - abs(phi(f)) over every frequency where abs(L) >= 1 (negative once phi has "
           "passed -180 deg); equals `pm_deg` for a well-behaved amplifier, smaller under conditional "
           "stability; none when abs(L) < 1 everywhere"),
    Metric("stable", "bool", "usable", "poles / follower transient", _BOTH,
           "the closed loop in unity negative feedback has no pole in the right half-plane. Linear decks "
           "(every behavioural circuit): exact poles, the generalised eigenvalues of the deck's MNA matrices "
           "(G + sC), open loop and closed loop; an open-loop pole in the right half-plane is reported as "
           "such. Other decks (transistor op-amps): neither edge of the follower's step response grows "
           "(a response that does not die out is unstable)"),
    Metric("overshoot_pct", "%", "usable", "follower transient", _BOTH,
           "unity-gain follower step (behavioural: 1 mV, linear; transistor: `vstep`, a rising and a "
           "falling edge, the larger counts): how far the output peaks above its final value, in % of the "
           "output's change; none for a response that runs away"),
    Metric("settling_s", "s", "usable", "follower transient", _BOTH,
           "the same transient: the time after which the output stays within +-1 % of its final value "
           "(transistor: the longer of the two edges); none when it has not settled within the window"),
    # -- transistor op-amps: the designer's full spec -----------------------------------------------
    Metric("cmrr_db", "dB", "transistor", "common-mode AC", _T,
           "20 log10 abs(H) - 20 log10 abs(Acm) at 1 Hz (Acm: both inputs driven together)"),
    Metric("psrr_db", "dB", "transistor", "supply AC", _T,
           "20 log10 abs(H) - 20 log10 abs(Avdd) at 1 Hz (Avdd: AC on vdd only)"),
    Metric("slew_v_per_s", "V/s", "transistor", "follower transient", _T,
           "the smaller of `slew_rise_v_per_s` and `slew_fall_v_per_s`"),
    Metric("slew_rise_v_per_s", "V/s", "transistor", "follower transient", _T,
           "largest abs(dV(out)/dt) of the follower between 10 % and 90 % of the rising edge"),
    Metric("slew_fall_v_per_s", "V/s", "transistor", "follower transient", _T,
           "the same on the falling edge"),
    Metric("noise_v_per_rthz", "V/sqrt(Hz)", "transistor", "noise", _T,
           "input-referred noise density of the open loop at the spot frequency (default 1 kHz)"),
    Metric("noise_v_rms", "V", "transistor", "noise", _T,
           "input-referred noise integrated from 1 Hz to the UGF"),
    Metric("swing_v", "V", "transistor", "DC sweep", _T,
           "width of the output range over which the open-loop gain stays at least half (-6 dB) its "
           "largest value (the testbench wired as an inverting amplifier of gain -1 through 1 Gohm resistors, inputs at vcm, 2 mV steps)"),
    Metric("swing_low_v", "V", "transistor", "DC sweep", _T, "the low end of that range"),
    Metric("swing_high_v", "V", "transistor", "DC sweep", _T, "the high end of that range"),
    Metric("offset_v", "V", "transistor", "operating point", _T,
           "V(out) - V(inp) of the open loop with its DC servo at the operating point (systematic offset)"),
    Metric("supply_a", "A", "transistor", "operating point", _T,
           "current drawn from vdd at the operating point (ideal bias sources inside the amplifier included)"),
    Metric("power_w", "W", "transistor", "operating point", _T, "vdd times `supply_a`"),
    Metric("area_um2", "um2", "transistor", "netlist", _T,
           "sum of W*L over the amplifier's transistors (gate area), plus W*L*m of the MIM capacitors and "
           "poly resistors placed directly in its subcircuit"),
    Metric("min_margin_v", "V", "transistor", "operating point", _T,
           "the smallest vds - vdsat over the amplifier's transistors at the operating point (the report "
           "names the device)"),
    Metric("all_saturated", "bool", "transistor", "operating point", _T,
           "every transistor of the amplifier has vgs > vth and vds >= vdsat at the operating point"),
]

REGISTRY: dict[str, Metric] = {m.name: m for m in _LIST}
#: Metric name -> unit, in report order.
METRIC_UNITS: dict[str, str] = {m.name: m.unit for m in _LIST}


def metrics_at(level: str) -> tuple[str, ...]:
    """The metrics a level measures, in report order."""
    if level not in LEVELS:
        raise ValueError(f"unknown level '{level}' (known: {', '.join(LEVELS)})")
    return tuple(m.name for m in _LIST if level in m.levels)


#: The behavioural level's metrics: every behavioural record stores exactly these (None when absent).
METRICS: tuple[str, ...] = metrics_at("behavioural")
