"""The pipelines that tie the parts together: for now, verify a circuit or netlist against a spec."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from spice_sim import LocalSimulator, SimJob, SimResult, check_netlist
from spice_sim.errors import UnsafeNetlistError

from .circuit import Circuit, CircuitFormatError, InvalidCircuitError, testbench, validity_problems, wrap_testbench
from .resources import pdk_dir
from .spec import CheckRow, Spec

__all__ = ["InputError", "Design", "load_design", "VerifyReport", "verify_design"]


class InputError(ValueError):
    """Bad user input (file, circuit, netlist): reported with exit code 2, nothing simulated."""


@dataclass
class Design:
    """Something to simulate: a deck ready for ngspice, and the circuit when it came as one."""
    source: str
    deck: str
    input: str = "in"
    output: str = "out"
    circuit: Circuit | None = None
    notes: list[str] = field(default_factory=list)


def load_design(path: str | Path, input_net: str = "in", output_net: str = "out") -> Design:
    """Read a circuit JSON or a SPICE netlist file; netlists are vetted before anything runs."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            circuit = Circuit.from_json(text)
        except CircuitFormatError as exc:
            raise InputError(f"{path}: {exc}") from None
        problems = validity_problems(circuit)
        if problems:
            raise InputError(f"{path}: invalid circuit: " + "; ".join(problems))
        return Design(str(path), testbench(circuit, title=path.stem), circuit=circuit)
    if path.suffix.lower() == ".scs":   # Spectre: translated to SPICE, then vetted like any netlist
        from .export.spectre import SpectreImportError, read, to_spice_deck
        try:
            imported = read(text, str(path))
            deck = to_spice_deck(imported, input_net=input_net, output_net=output_net, source=str(path))
        except (SpectreImportError, UnsafeNetlistError) as exc:
            raise InputError(str(exc)) from None
        return Design(str(path), deck, input_net, output_net, notes=imported.notes)
    try:
        checked = check_netlist(text, source=str(path), allowed_dirs=(pdk_dir(),))
    except UnsafeNetlistError as exc:
        raise InputError(str(exc)) from None
    for net, flag in ((input_net, "--input"), (output_net, "--output")):
        if net.lower() not in checked.nodes:
            raise InputError(f"{path}: the netlist has no node '{net}' (name the nodes with {flag})")
    deck = wrap_testbench(checked.body, title=checked.title, input_net=input_net, output_net=output_net,
                          add_source=not checked.has_source_at(input_net))
    return Design(str(path), deck, input_net, output_net, notes=checked.dropped)


@dataclass
class VerifyReport:
    source: str
    result: SimResult
    rows: list[CheckRow]

    @property
    def passed(self) -> bool:
        return self.result.ok and all(r.passed for r in self.rows)

    def to_dict(self) -> dict:
        return {"source": self.source, "passed": self.passed, "simulation": self.result.to_dict(),
                "checks": [r.__dict__ for r in self.rows]}


def verify_design(design: Design, spec: Spec, simulator: LocalSimulator) -> VerifyReport:
    result = simulator.run(SimJob(design.deck, design.input, design.output))
    rows = spec.check(result.performance) if result.ok else [
        CheckRow(b.metric, b.describe(), None, False, b.shortfall(None)) for b in spec.targets]
    return VerifyReport(design.source, result, rows)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=str)
