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
from ..transistor import Conditions, OpampMetrics, check_transistor_netlist
from ..transistor.jobs import OpampJob
from .verify import InputError

__all__ = ["TransistorDesign", "load_transistor_design", "conditions_of", "ConditionResult", "TransistorReport",
           "verify_transistor", "DEFAULT_TIMEOUT_S"]

#: Per condition: the first one of a corner loads the PDK's library (6-10 s on a loaded machine).
DEFAULT_TIMEOUT_S = 180.0


@dataclass
class TransistorDesign:
    source: str
    circuit: "_SubcktFile"
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
        circuit = _SubcktFile.parse(text, str(path), tech)
    except (NetlistError, UnsafeNetlistError) as exc:
        raise InputError(str(exc)) from None
    return TransistorDesign(str(path), circuit)


PORTS = ("inp", "inn", "out", "vdd", "vss")


@dataclass
class _SubcktFile:
    """A user's SPICE file defining an op-amp subcircuit (interim reader)."""
    text: str
    name: str
    params: dict

    @classmethod
    def parse(cls, text: str, source: str, tech: Technology) -> "_SubcktFile":
        from ..transistor.bench import _deck_params
        check_transistor_netlist(text, tech, source=source)
        found = []
        for no, raw in enumerate(text.splitlines(), 1):
            toks = raw.split()
            if toks and toks[0].lower() == ".subckt" and len(toks) > 1:
                ports = [t.lower() for t in toks[2:] if "=" not in t]
                if sorted(ports) == sorted(PORTS):
                    found.append((no, toks[1], ports))
        if not found:
            raise NetlistError(f"{source}: no subcircuit with the ports {' '.join(PORTS)} "
                               "(write `.subckt NAME inp inn out vdd vss`)")
        no, name, ports = found[-1]
        body = text
        if ports != list(PORTS):   # the testbench connects by position: wrap to the standard order
            body += (f"\n.subckt {name}_std {' '.join(PORTS)}\nxstd {' '.join(ports)} {name}\n.ends {name}_std")
            name = f"{name}_std"
        return cls(body, name, _deck_params(text))

    def dut(self) -> tuple[str, str, dict]:
        return self.text, self.name, dict(self.params)


def conditions_of(spec: Spec, tech: Technology) -> list[Conditions]:
    """Every condition the spec must hold at: corners x temperatures, in the spec's order."""
    c = spec.conditions or SpecConditions()
    corners = c.corners or (tech.default_corner,)
    return [Conditions(corner=k, temp_c=t, vdd=c.vdd, vcm=c.vcm, cl=c.load_cap, vstep=c.vstep,
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
                      progress: Callable[[str], None] | None = None) -> TransistorReport:
    """Measure `design` at every condition of `spec` (a transistor-level spec) and check it."""
    tech = load_technology(spec.pdk)
    dut, name, params = design.circuit.dut()
    results = []
    for cond in conditions_of(spec, tech):
        if progress:
            progress(f"{design.source}: {cond.label}")
        t0 = time.perf_counter()
        job = OpampJob(dut, name, tuple(sorted(params.items())), conditions=cond, pdk=tech.name)
        res = simulator.run(job)
        metrics = getattr(res, "metrics", None)
        results.append(ConditionResult(cond, metrics, None if metrics is not None else (res.failure or "error"),
                                       res.message, time.perf_counter() - t0))
    worst = spec.worst_case([r.performance for r in results])
    rows = spec.check(worst)
    return TransistorReport(design.source, spec, results, worst, rows)
