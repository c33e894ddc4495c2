"""`verify`: read a circuit JSON, a SPICE netlist or a Spectre netlist and measure it against a spec.

Netlists from outside are vetted (spice_sim.check_netlist) before anything reaches ngspice. Every
design gets the AC testbench and the unity-gain follower (its step response; stability for decks
that are not linear), so `verify` checks what `generate` checks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from spice_sim import LocalSimulator, Performance, SimJob, SimResult, check_netlist
from spice_sim.errors import UnsafeNetlistError

from ..circuit import (Circuit, CircuitFormatError, follower_testbench, testbench, validity_problems, wrap_follower,
                       wrap_testbench)
from ..resources import pdk_dir
from ..spec import CheckRow, Spec

__all__ = ["InputError", "Design", "load_design", "VerifyReport", "verify_design", "dumps"]

log = logging.getLogger(__name__)


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
    follower: str | None = None       # the unity-gain follower deck (a SimJob follower template)


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
        return Design(str(path), testbench(circuit, title=path.stem), circuit=circuit,
                      follower=follower_testbench(circuit, title=path.stem))
    if path.suffix.lower() == ".scs":   # Spectre: translated to SPICE, then vetted like any netlist
        from ..export.spectre import SpectreImportError, read, to_spice_deck
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
    # the follower: the same elements without the netlist's own source at the input, which the
    # loop closure drives instead
    drivers = {name for name, pins in checked.sources.items() if input_net.lower() in pins
               and set(pins) - {input_net.lower()} <= {"0", "gnd"}}
    body = "\n".join(ln for ln in checked.lines if ln.split()[0].lower() not in drivers)
    follower = wrap_follower(body, title=checked.title, input_net=input_net, output_net=output_net)
    return Design(str(path), deck, input_net, output_net, notes=checked.dropped, follower=follower)


@dataclass
class VerifyReport:
    source: str
    result: SimResult
    rows: list[CheckRow]
    spec: Spec | None = None

    @property
    def passed(self) -> bool:
        return self.result.ok and all(r.passed for r in self.rows)

    def to_dict(self) -> dict:
        return {"source": self.source, "passed": self.passed, "simulation": self.result.to_dict(),
                "checks": [r.__dict__ for r in self.rows],
                "implicit_targets": bool(self.spec is not None and self.spec.implicit)}


def verify_design(design: Design, spec: Spec, simulator: LocalSimulator) -> VerifyReport:
    result = simulator.run(SimJob(design.deck, design.input, design.output, follower=design.follower))
    # a failed simulation measured nothing: every target is checked against an empty Performance
    rows = spec.check(result.performance if result.ok else Performance())
    return VerifyReport(design.source, result, rows, spec)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=str)
