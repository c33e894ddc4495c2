"""Export a transistor-level op-amp (cktflow.transistor.TransistorCircuit) for designers' tools.

The same writers as the behavioural circuits (xschem.write_schematic, kicad.write_schematic) draw
it; only the elements and their placement differ: every device of the subcircuit with its sizes
written in (TransistorCircuit.standalone_subckt), PDK devices with the symbols designers know
(sky130: `sky130_fd_pr/nfet_01v8.sym` with W, L, nf, mult, model) placed on a grid by
layout.place_devices, nets joined by labels, the ports as port symbols.

`export_transistor(circuit, outdir, formats)` writes, named after the subcircuit:
- spice: NAME.spice, the self-contained subcircuit;
- testbench: NAME_tb.cir, a plain-ngspice open-loop deck (`ngspice -b NAME_tb.cir` in outdir),
  with the .spiceinit the PDK library needs;
- xschem: NAME.sch; kicad: NAME.kicad_sch; json: NAME.json (TransistorCircuit.to_json).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import IO, Iterable

from ..fsutil import atomic_write_text
from ..transistor.circuit import PORTS, TransistorCircuit
from ..transistor.netlist import spice_number
from . import kicad, xschem
from .elements import Element
from .layout import Schematic, place_devices

__all__ = ["TRANSISTOR_FORMATS", "transistor_text", "transistor_elements", "transistor_schematic", "write_xschem", "write_kicad",
           "export_transistor"]

#: Format name -> file name suffix (after the subcircuit's name).
TRANSISTOR_FORMATS = {"spice": ".spice", "testbench": "_tb.cir", "xschem": ".sch", "kicad": ".kicad_sch",
                      "json": ".json"}
#: The attribute a PDK symbol gives each size, per device shape (the sky130 xschem symbols').
_SIZE_ATTRS = {"nmos": (("w", "W"), ("l", "L"), ("nf", "nf"), ("m", "mult")),
               "pmos": (("w", "W"), ("l", "L"), ("nf", "nf"), ("m", "mult")),
               "capacitor": (("w", "W"), ("l", "L"), ("m", "MF")),
               "resistor": (("w", "W"), ("l", "L"), ("m", "m"))}
_DEFAULTS = {"nf": 1.0, "m": 1.0}


def transistor_elements(c: TransistorCircuit) -> list[Element]:
    """Every element of the amplifier's subcircuit, sizes written in, in netlist order."""
    tech = c.technology
    out = []
    inside = False
    for line in c.standalone_subckt().splitlines():
        toks = re.sub(r"\s*=\s*", "=", line).split()
        if not toks or toks[0].startswith("*"):
            continue
        word = toks[0].lower()
        if word == ".subckt":
            inside = toks[1].lower() == c.name
            continue
        if not inside or word.startswith("."):
            continue
        out.append(_element(toks, tech, c.name))
    return out


def _element(toks: list[str], tech, amp: str) -> Element:
    letter = toks[0][0].upper()
    if letter == "X":
        plain = [t for t in toks[1:] if "=" not in t]
        try:
            dev = tech.device(plain[-1])
        except KeyError:
            raise ValueError(f"{amp}: cannot draw '{toks[0]}', an instance of the netlist's own subcircuit "
                             f"'{plain[-1]}' (only {tech.name} devices and sources)") from None
        sizes = {("m" if k.lower() == "mult" else k.lower()): v
                 for k, v in (t.split("=", 1) for t in toks[1:] if "=" in t)}
        attrs = [("name", toks[0][1:].upper() or toks[0])]
        for key, attr in _SIZE_ATTRS[dev.type]:
            value = sizes.get(key)
            if value is not None or key in _DEFAULTS:
                attrs.append((attr, _plain(value) if value is not None else f"{_DEFAULTS[key]:g}"))
        lib, _, short = dev.model.partition("__")
        attrs += [("model", short), ("spiceprefix", "X")]
        return Element(toks[0], tuple(t.lower() for t in plain[:-1]), None, " ".join([dev.model, *toks[len(plain) + 1:]]),
                       shape=dev.type, symbol=f"{lib}/{short}.sym", attrs=tuple(attrs))
    if letter in ("I", "V"):
        return Element(toks[0], (toks[1].lower(), toks[2].lower()), None, " ".join(toks[3:]))
    if letter in ("R", "C") and len(toks) == 4:
        value = spice_number(toks[3])
        if value is not None:
            return Element(toks[0], (toks[1].lower(), toks[2].lower()), value)
    raise ValueError(f"{amp}: cannot draw '{' '.join(toks)}' (only PDK devices, I/V sources, R and C with a value)")


def _plain(text: str) -> str:
    v = spice_number(text)
    return f"{v:.12g}" if v is not None else text


def transistor_schematic(c: TransistorCircuit) -> Schematic:
    return place_devices(transistor_elements(c), f"{c.name}: {c.description or c.pdk} ({c.canonical_hash()})", PORTS)


def write_xschem(c: TransistorCircuit, dest: IO[str]) -> None:
    """The amplifier as an xschem schematic with the PDK's symbols."""
    xschem.write_schematic(transistor_schematic(c), dest)


def write_kicad(c: TransistorCircuit, dest: IO[str]) -> None:
    """The amplifier as a KiCad schematic; each device carries its SPICE model line and sizes."""
    kicad.write_schematic(transistor_schematic(c), dest)


def transistor_text(c: TransistorCircuit, fmt: str) -> str:
    if fmt == "spice":
        return c.standalone_subckt()
    if fmt == "testbench":
        return c.testbench_deck()
    if fmt == "json":
        return c.to_json(indent=1) + "\n"
    buf = io.StringIO()
    (write_xschem if fmt == "xschem" else write_kicad)(c, buf)
    return buf.getvalue()


def export_transistor(c: TransistorCircuit, outdir: str | Path,
                      formats: Iterable[str] = tuple(TRANSISTOR_FORMATS)) -> dict[str, Path]:
    """Write the asked formats into `outdir` (created if needed); {format: path}. The testbench
    comes with `.spiceinit` (the PDK library's settings) beside it, under the key "spiceinit"."""
    formats = list(formats)
    unknown = [f for f in formats if f not in TRANSISTOR_FORMATS]
    if unknown:
        raise ValueError(f"unknown transistor export format(s) {', '.join(unknown)} "
                         f"(expected {', '.join(TRANSISTOR_FORMATS)})")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = {}
    for fmt in formats:
        path = outdir / f"{c.name}{TRANSISTOR_FORMATS[fmt]}"
        atomic_write_text(path, transistor_text(c, fmt))
        written[fmt] = path
    if "testbench" in formats:
        written["spiceinit"] = outdir / ".spiceinit"
        atomic_write_text(written["spiceinit"], c.spiceinit_text())
    return written
