"""What sizing minimises: feasibility first (the spec's shortfall), then the spec's secondary goal.

    y = gap                      when gap > 0, where gap is the shortfall against the spec with every
                                 bound tightened by the stop margin (so y > 0 until the spec is met
                                 with that margin; with margin 0 it is exactly `spec.shortfall`)
    y = -goodness in (-1, 0]     once it is met: max_margin -> tanh(min_margin);
                                 min_total_gm -> 1 / (1 + total_gm / 1 mS);
                                 min_power -> 1 / (1 + power_w / 100 uW) (transistor level);
                                 min_area -> 1 / (1 + area_um2 / 1000 um2) (transistor level)
    y = failed_penalty(spec)     when the simulation failed: 10 per target (what a result with every
                                 metric missing scores) + FAILED_PENALTY_EXTRA, so a failure ranks below
                                 any measured circuit; the failure kind and message are kept.

Feasibility dominates because every feasible y is <= 0 and every infeasible one is > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spice_sim import Performance, SimResult

from ..circuit import Circuit
from ..spec import Spec

__all__ = ["FAILED_PENALTY_EXTRA", "GM_REFERENCE", "failed_penalty", "score", "Evaluation"]

#: Added to the worst measurable score for a failed simulation.
FAILED_PENALTY_EXTRA = 1.0
#: Total gm at which the min_total_gm goodness is 0.5 (siemens).
GM_REFERENCE = 1e-3
#: Power (W) and area (um2) at which the min_power / min_area goodness is 0.5: mid-range for
#: sky130 op-amps (tens of uW to mW; tens to thousands of um2), so the goodness keeps a slope there.
POWER_REFERENCE = 100e-6
AREA_REFERENCE = 1000.0
_MISSING = 10.0


def failed_penalty(spec: Spec) -> float:
    return _MISSING * len(spec.bounds) + FAILED_PENALTY_EXTRA


def _gap(spec: Spec, perf: Performance, margin: float) -> float:
    total = 0.0
    for b in spec.bounds:
        v = perf.get(b.metric)
        if v is None or not math.isfinite(v):
            total += _MISSING + margin
        else:
            total += max(0.0, margin - b.margin(v))
    return total


def total_gm(circuit: Circuit) -> float:
    return sum(v for _, k, v in circuit.device_values() if k == "gm")


def score(spec: Spec, circuit: Circuit, result: SimResult, margin: float = 0.0) -> float:
    """The value sizing minimises for one simulated circuit (see the module docstring)."""
    if not result.ok or result.performance is None:
        return failed_penalty(spec)
    perf = result.performance
    gap = _gap(spec, perf, margin)
    if gap > 0:
        return gap
    if spec.objective == "min_total_gm":
        return -1.0 / (1.0 + total_gm(circuit) / GM_REFERENCE)
    if spec.objective in ("min_power", "min_area"):
        metric, ref = (("power_w", POWER_REFERENCE) if spec.objective == "min_power" else ("area_um2", AREA_REFERENCE))
        value = perf.get(metric)
        return -1.0 / (1.0 + max(value, 0.0) / ref) if value is not None else 0.0
    return -math.tanh(spec.min_margin(perf))


@dataclass
class Evaluation:
    """One simulated point of a sizing run, as persisted in its history file."""
    x: list[float]
    y: float
    shortfall: float
    min_margin: float | None
    performance: Performance | None
    failure: str | None = None
    message: str = ""
    phase: str = "start"

    @property
    def met(self) -> bool:
        return self.failure is None and self.shortfall == 0.0

    @classmethod
    def of(cls, spec: Spec, circuit: Circuit, x: list[float], result: SimResult, margin: float,
           phase: str) -> "Evaluation":
        perf = result.performance if result.ok else None
        return cls(x=[float(v) for v in x], y=score(spec, circuit, result, margin), shortfall=spec.shortfall(perf),
                   min_margin=spec.min_margin(perf) if perf is not None else None, performance=perf,
                   failure=result.failure, message=result.message, phase=phase)

    def to_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "shortfall": self.shortfall, "min_margin": self.min_margin,
                "performance": self.performance.to_dict() if self.performance else None,
                "failure": self.failure, "message": self.message, "phase": self.phase}

    @classmethod
    def from_dict(cls, d: dict) -> "Evaluation":
        perf = d.get("performance")
        return cls(x=[float(v) for v in d["x"]], y=float(d["y"]), shortfall=float(d["shortfall"]),
                   min_margin=d.get("min_margin"), performance=Performance.from_dict(perf) if perf else None,
                   failure=d.get("failure"), message=d.get("message", ""), phase=d.get("phase", "start"))
