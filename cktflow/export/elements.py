"""The elements of a circuit's testbench, read back from the SPICE text that realize.py renders.

Every exporter draws or writes the same elements with the same nets and values: they are taken
from `cktflow.circuit.realize` (templates/ decide the netlist text, validity.analyse the nets), not
derived a second time here. Each element remembers the circuit node it belongs to, so schematics
can group a subgraph's devices together.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..circuit import Circuit, OCB_SWEEP, AcSweep, load_pdk, wrap_testbench
from ..circuit.pdk import Pdk
from ..circuit.realize import device_lines
from ..units import parse_si

__all__ = ["Element", "circuit_elements", "PIN_NAMES", "SOURCE_NODE", "GROUND"]

#: Pin names per element letter, in SPICE node order (the same order as xschem's symbols).
PIN_NAMES = {"R": ("p", "m"), "C": ("p", "m"), "L": ("p", "m"), "V": ("p", "m"), "I": ("p", "m"),
             "G": ("p", "m", "cp", "cm"), "E": ("p", "m", "cp", "cm"),
             # PDK devices (subcircuit instances) by shape: their terminals in the PDK's node order
             "nmos": ("d", "g", "s", "b"), "pmos": ("d", "g", "s", "b"), "capacitor": ("c0", "c1"),
             "resistor": ("r0", "r1", "b")}
#: The `node` of the testbench's input source, which belongs to no circuit node.
SOURCE_NODE = -1
GROUND = "0"


@dataclass(frozen=True)
class Element:
    name: str                  # SPICE instance name, e.g. "G3", "R03"
    nets: tuple[str, ...]      # in SPICE node order (PIN_NAMES[letter])
    value: float | None        # ohm / farad / siemens; None for sources
    spec: str = ""             # source specification text, e.g. "DC 0 AC 1"
    node: int = SOURCE_NODE    # index of the circuit node the element realises
    # a PDK device (transistor level): its shape (nmos, pmos, capacitor, resistor), the schematic
    # symbol a designer's tool knows it by, and the attributes that symbol takes (W, L, nf, ...)
    shape: str = ""
    symbol: str = ""
    attrs: tuple[tuple[str, str], ...] = ()

    @property
    def letter(self) -> str:
        return self.name[0].upper()

    @property
    def key(self) -> str:
        """What decides the element's pins and drawing: its shape, else its SPICE letter."""
        return self.shape or self.letter

    @property
    def pins(self) -> dict[str, str]:
        return dict(zip(PIN_NAMES[self.key], self.nets))


def _parse(line: str, node: int) -> Element:
    tokens = line.split()
    letter = tokens[0][0].upper()
    if letter not in PIN_NAMES:
        raise ValueError(f"cannot export element '{tokens[0]}': only {', '.join(PIN_NAMES)} are supported")
    n = len(PIN_NAMES[letter])
    nets = tuple(t.lower() for t in tokens[1:1 + n])
    rest = tokens[1 + n:]
    if letter in ("V", "I"):
        return Element(tokens[0], nets, None, " ".join(rest), node)
    if len(rest) != 1:
        raise ValueError(f"cannot export '{line}': expected one value after the nodes")
    return Element(tokens[0], nets, parse_si(rest[0]), "", node)


def circuit_elements(c: Circuit, pdk: Pdk | None = None, *, with_source: bool = True,
                     sweep: AcSweep = OCB_SWEEP) -> list[Element]:
    """Every device of the realised circuit (node order), then the testbench source if asked."""
    pdk = pdk or load_pdk()
    out = [_parse(line, node) for node, line in device_lines(c, pdk)]
    if with_source:
        deck = wrap_testbench("", sweep=sweep, pdk=pdk)
        for line in deck.splitlines():
            if line[:1].upper() in ("V", "I"):
                out.append(_parse(line, SOURCE_NODE))
    return out
