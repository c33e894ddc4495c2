"""`verify` at transistor level: an op-amp subcircuit on a PDK, measured at every condition of a spec.

A spec at transistor level holds at every combination of corner and temperature it lists (at
one supply, common mode and load); the report shows each metric per condition and its worst
case, and the spec's targets are checked on the worst case (cktflow.spec.Spec.worst_case).
Every condition gets the full testbench set (operating point, AC, swing, noise, the follower's
rising and falling step) whatever the targets, because a designer signs off the whole table.

The amplifier is vetted against the PDK (safety, device names, W/L limits) before anything runs;
each condition runs as an OpampJob through the local simulator (a child process with a time
limit that keeps the library loaded between conditions of the same corner).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from spice_sim.errors import NetlistError, UnsafeNetlistError
from spice_sim.measure import Performance

from ..spec import CheckRow, Spec, SpecConditions
from ..technology import PdkNotInstalledError, Technology, load_technology
from ..transistor import (CircuitFileError, Conditions, OpampMetrics, SizingError, TransistorCircuit,
                          TransistorFormatError, read_subckt)
from ..transistor.jobs import OpampJob
from .verify import InputError

__all__ = ["TransistorDesign", "load_transistor_design", "conditions_of", "ConditionResult", "TransistorReport",
           "verify_transistor", "DEFAULT_TIMEOUT_S"]

#: Per condition: the first one of a corner loads the PDK's library (6-10 s on a loaded machine).
DEFAULT_TIMEOUT_S = 180.0


@dataclass
class TransistorDesign:
    source: str
    circuit: TransistorCircuit
    notes: list[str] = field(default_factory=list)


def load_transistor_design(path: str | Path, pdk: str) -> TransistorDesign:
    """A transistor circuit JSON or a SPICE subcircuit file (ports inp inn out vdd vss by name),
    vetted against the PDK; InputError naming the file, line and field otherwise."""
    path = Path(path)
    tech = load_technology(pdk)
    try:
        tech.require_installed()
    except PdkNotInstalledError as exc:
        raise InputError(str(exc)) from None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
            circuit = TransistorCircuit.from_json(text, source=str(path))
        else:
            circuit = read_subckt(text, source=str(path), pdk=tech.name)
    except (CircuitFileError, TransistorFormatError, SizingError, NetlistError, UnsafeNetlistError) as exc:
        raise InputError(_behavioural_hint(str(exc), text)) from None
    if circuit.pdk != tech.name:
        raise InputError(f"{path}: a circuit on PDK {circuit.pdk}, the spec asks for {tech.name}")
    return TransistorDesign(str(path), circuit)


def _behavioural_hint(message: str, text: str) -> str:
    """A behavioural circuit JSON given at transistor level says so instead of a format error."""
    if '"nodes"' in text and '"format"' not in text:
        return message + " (this looks like a behavioural circuit: verify it with a spec that names no transistor PDK)"
    return message


def conditions_of(spec: Spec, tech: Technology, circuit: TransistorCircuit | None = None) -> list[Conditions]:
    """Every condition the spec must hold at: corners x temperatures, in the spec's order. What the
    spec leaves open (common mode, load) comes from the circuit's own conditions (a template's
    `*@ conditions` line), else the defaults (vdd/2, 5 pF)."""
    c = spec.conditions or SpecConditions()
    own = dict(circuit.conditions) if circuit is not None else {}
    corners = c.corners or (tech.default_corner,)
    vcm = c.vcm if c.vcm is not None else own.get("vcm")
    vdd = c.vdd if c.vdd is not None else own.get("vdd")
    cl = c.load_cap if c.load_cap is not None else own.get("cl", Conditions.cl)
    return [Conditions(corner=k, temp_c=t, vdd=vdd, vcm=vcm, cl=cl, vstep=c.vstep,
                       spot_hz=c.noise_freq).resolved(tech)
            for k in corners for t in c.temperatures]


@dataclass
class ConditionResult:
    conditions: Conditions
    metrics: OpampMetrics | None
    failure: str | None = None
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None and self.metrics is not None

    @property
    def performance(self) -> Performance | None:
        return self.metrics.performance if self.metrics is not None else None

    def to_dict(self) -> dict:
        d = {"condition": self.conditions.label, "conditions": self.conditions.__dict__, "ok": self.ok,
             "failure": self.failure, "message": self.message, "seconds": round(self.seconds, 3)}
        if self.metrics is not None:
            d["performance"] = dict(self.metrics.performance.items())
            d["worst_device"] = self.metrics.worst_device
        return d


@dataclass
class TransistorReport:
    source: str
    spec: Spec
    results: list[ConditionResult]
    worst: Performance
    rows: list[CheckRow]

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results) and all(r.passed for r in self.rows)

    def to_dict(self) -> dict:
        return {"source": self.source, "passed": self.passed, "pdk": self.spec.pdk,
                "conditions": [r.to_dict() for r in self.results],
                "worst_case": dict(self.worst.items()),
                "checks": [r.__dict__ for r in self.rows],
                "implicit_targets": self.spec.implicit}


def verify_transistor(design: TransistorDesign, spec: Spec, simulator,
                      progress: Callable[[str], None] | None = None, keep_waves: bool = False) -> TransistorReport:
    """Measure `design` at every condition of `spec` (a transistor-level spec) and check it.
    `keep_waves`: keep each condition's open-loop AC response and follower step (for plots)."""
    tech = load_technology(spec.pdk)
    dut, name, params = design.circuit.dut()
    results = []
    for cond in conditions_of(spec, tech, design.circuit):
        if progress:
            progress(f"{design.source}: {cond.label}")
        t0 = time.perf_counter()
        job = OpampJob(dut, name, tuple(sorted(params.items())), conditions=cond, pdk=tech.name,
                       keep_waves=keep_waves)
        res = simulator.run(job)
        metrics = getattr(res, "metrics", None)
        results.append(ConditionResult(cond, metrics, None if metrics is not None else (res.failure or "error"),
                                       res.message, time.perf_counter() - t0))
    worst = spec.worst_case([r.performance for r in results])
    rows = spec.check(worst)
    return TransistorReport(design.source, spec, results, worst, rows)
