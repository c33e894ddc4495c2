"""KiCad schematic (.kicad_sch, the KiCad 6 file format; KiCad 7 and later open and convert it).

The placement comes from `layout.place`, scaled so that 10 layout units are one 50-mil grid step
(1.27 mm). The symbols are simulation symbols defined inside the file (`lib_symbols`), so the file
opens without any library installed: R, C, a VCCS and a voltage source carrying KiCad's SPICE model
fields (`Spice_Primitive`, `Spice_Model`, `Spice_Node_Sequence`, `Spice_Netlist_Enabled`), which
KiCad's ngspice simulator reads, and the standard GND power symbol (KiCad names that net 0 in a
SPICE netlist). The text is written here, s-expression by s-expression, without a KiCad library.
"""

from __future__ import annotations

import uuid
from typing import IO

from ..circuit import Circuit
from ..circuit.pdk import Pdk
from ..units import format_spice
from .elements import Element
from .layout import PIN_OFFSETS, Schematic, place

__all__ = ["write", "write_schematic", "LIB", "SCALE_MM", "PIN_NUMBERS", "symbol_reference"]

#: Library nickname of the symbols this file defines.
LIB = "cktflow_sim"
#: Millimetres per layout unit.
SCALE_MM = 0.127
#: Pin number per layout pin name; the SPICE node order is the pin order 1, 2 (, 3, 4).
PIN_NUMBERS = {"p": "1", "m": "2", "cp": "3", "cm": "4"}
_SYMBOL_NAME = {"R": "R", "C": "C", "G": "VCCS", "V": "VSOURCE"}
_PAPERS = (("A4", 297, 210), ("A3", 420, 297), ("A2", 594, 420), ("A1", 841, 594), ("A0", 1189, 841))
_FONT = "(effects (font (size 1.27 1.27)))"
_HIDDEN = "(effects (font (size 1.27 1.27)) hide)"
_STROKE = "(stroke (width 0) (type default) (color 0 0 0 0))"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mm(v: float) -> str:
    return f"{v:.4f}".rstrip("0").rstrip(".")


def symbol_reference(e: Element) -> str:
    """KiCad reference of an element: its SPICE name, except the source, which KiCad wants numbered."""
    return "V1" if e.letter == "V" else e.name


# ---- library symbols (lib coordinates: y grows upwards) ----------------------------------------

def _pin(number: str, x: float, y: float, angle: int, kind: str = "passive") -> str:
    return (f"(pin {kind} line (at {_mm(x)} {_mm(y)} {angle}) (length 1.27) "
            f"(name \"~\" {_FONT}) (number {_q(number)} {_FONT}))")


def _lib_symbol(letter: str) -> str:
    name = _SYMBOL_NAME[letter]
    spice = {"R": ("R", ""), "C": ("C", ""), "G": ("G", "1 2 3 4"), "V": ("V", "")}[letter]
    props = [("Reference", letter, "(at 2.54 1.27 0)", _FONT), ("Value", name, "(at 2.54 -1.27 0)", _FONT),
             ("Footprint", "", "(at 0 0 0)", _HIDDEN), ("Datasheet", "~", "(at 0 0 0)", _HIDDEN),
             ("Spice_Primitive", spice[0], "(at 0 0 0)", _HIDDEN),
             ("Spice_Netlist_Enabled", "Y", "(at 0 0 0)", _HIDDEN)]
    if spice[1]:
        props.append(("Spice_Node_Sequence", spice[1], "(at 0 0 0)", _HIDDEN))
    body = {
        "R": ["(rectangle (start -0.762 -2.286) (end 0.762 2.286) (stroke (width 0.254) (type default) "
              "(color 0 0 0 0)) (fill (type none)))"],
        "C": ["(polyline (pts (xy -1.524 -0.508) (xy 1.524 -0.508)) (stroke (width 0.3048) (type default) "
              "(color 0 0 0 0)) (fill (type none)))",
              "(polyline (pts (xy -1.524 0.508) (xy 1.524 0.508)) (stroke (width 0.3048) (type default) "
              "(color 0 0 0 0)) (fill (type none)))",
              "(polyline (pts (xy 0 2.54) (xy 0 0.508)) (stroke (width 0) (type default) (color 0 0 0 0)) "
              "(fill (type none)))",
              "(polyline (pts (xy 0 -2.54) (xy 0 -0.508)) (stroke (width 0) (type default) (color 0 0 0 0)) "
              "(fill (type none)))"],
        "G": ["(polyline (pts (xy 0 2.54) (xy 2.54 0) (xy 0 -2.54) (xy -2.54 0) (xy 0 2.54)) (stroke (width 0.254) "
              "(type default) (color 0 0 0 0)) (fill (type none)))",
              "(polyline (pts (xy 0 1.27) (xy 0 -1.27) (xy -0.508 -0.508) (xy 0.508 -0.508) (xy 0 -1.27)) "
              "(stroke (width 0.1524) (type default) (color 0 0 0 0)) (fill (type none)))",
              "(polyline (pts (xy -3.81 2.54) (xy -2.54 2.54)) (stroke (width 0.1524) (type dash) "
              "(color 0 0 0 0)) (fill (type none)))",
              "(polyline (pts (xy -3.81 -2.54) (xy -2.54 -2.54)) (stroke (width 0.1524) (type dash) "
              "(color 0 0 0 0)) (fill (type none)))",
              "(text \"+\" (at -3.302 3.302 0) (effects (font (size 1 1))))"],
        "V": ["(circle (center 0 0) (radius 1.905) (stroke (width 0.254) (type default) (color 0 0 0 0)) "
              "(fill (type none)))",
              "(text \"~\" (at 0 0 0) (effects (font (size 1.27 1.27))))",
              "(text \"+\" (at 0.762 1.016 0) (effects (font (size 1 1))))"],
    }[letter]
    pins = []
    for pin, (dx, dy) in PIN_OFFSETS[letter].items():
        x, y = dx * SCALE_MM, -dy * SCALE_MM
        angle = 270 if y > 0 and dx == 0 else 90 if dx == 0 else 0
        pins.append(_pin(PIN_NUMBERS[pin], x, y, angle))
    props_text = " ".join(f"(property {_q(k)} {_q(v)} (id {i}) {at} {eff})" for i, (k, v, at, eff) in enumerate(props))
    return (f"(symbol \"{LIB}:{name}\" (pin_names (offset 0) hide) (in_bom yes) (on_board yes) {props_text} "
            f"(symbol \"{name}_0_1\" {' '.join(body)}) (symbol \"{name}_1_1\" {' '.join(pins)}))")


_GND_SYMBOL = (
    "(symbol \"power:GND\" (power) (pin_names (offset 0)) (in_bom yes) (on_board yes) "
    "(property \"Reference\" \"#PWR\" (id 0) (at 0 -6.35 0) (effects (font (size 1.27 1.27)) hide)) "
    "(property \"Value\" \"GND\" (id 1) (at 0 -3.81 0) (effects (font (size 1.27 1.27)))) "
    "(property \"Footprint\" \"\" (id 2) (at 0 0 0) (effects (font (size 1.27 1.27)) hide)) "
    "(property \"Datasheet\" \"\" (id 3) (at 0 0 0) (effects (font (size 1.27 1.27)) hide)) "
    "(symbol \"GND_0_1\" (polyline (pts (xy 0 0) (xy 0 -1.27) (xy 1.27 -1.27) (xy 0 -2.54) (xy -1.27 -1.27) "
    "(xy 0 -1.27)) (stroke (width 0) (type default) (color 0 0 0 0)) (fill (type none)))) "
    "(symbol \"GND_1_1\" (pin power_in line (at 0 0 270) (length 0) hide (name \"GND\" "
    "(effects (font (size 1.27 1.27)))) (number \"1\" (effects (font (size 1.27 1.27)))))))")


# ---- the sheet ----------------------------------------------------------------------------------

def write_schematic(sch: Schematic, dest: IO[str]) -> None:
    """Write an already placed schematic as a KiCad 6 .kicad_sch file."""
    xmin, ymin, xmax, ymax = sch.bbox()
    width, height = (xmax - xmin) * SCALE_MM + 50, (ymax - ymin) * SCALE_MM + 50
    paper = next((p for p in _PAPERS if p[1] >= width and p[2] >= height), _PAPERS[-1])
    # shift onto the page, onto the 1.27 mm grid
    ox = 25.4 - xmin * SCALE_MM
    oy = 25.4 - ymin * SCALE_MM

    def at(x: float, y: float) -> str:
        return f"{_mm(ox + x * SCALE_MM)} {_mm(oy + y * SCALE_MM)}"

    ns = uuid.uuid5(uuid.NAMESPACE_URL, "cktflow:" + sch.title + ":" + repr(sorted(s.element.name for s in sch.symbols)))
    counter = iter(range(1, 1 << 30))

    def uid() -> str:
        return str(uuid.uuid5(ns, str(next(counter))))

    root = uid()
    out = ["(kicad_sch (version 20211123) (generator cktflow)", f"  (uuid {root})", f"  (paper {_q(paper[0])})",
           f"  (title_block (title {_q(sch.title)}) (comment 1 \"generated by cktflow; H(f) = V(out)/V(in)\"))",
           "  (lib_symbols"]
    out += ["    " + _lib_symbol(letter) for letter in sorted({s.element.letter for s in sch.symbols})]
    out += ["    " + _GND_SYMBOL, "  )"]
    out += [f"  (junction (at {at(x, y)}) (diameter 0) (color 0 0 0 0))" for x, y in sch.junctions()]
    for w in sch.wires:
        out.append(f"  (wire (pts (xy {at(w.x1, w.y1)}) (xy {at(w.x2, w.y2)})) {_STROKE} (uuid {uid()}))")
    for lb in sch.labels:
        angle, justify = (0, "left") if lb.text_right else (180, "right")
        out.append(f"  (label {_q(lb.net)} (at {at(lb.x, lb.y)} {angle}) "
                   f"(effects (font (size 1.27 1.27)) (justify {justify} bottom)) (uuid {uid()}))")
    for t in sch.texts:
        out.append(f"  (text {_q(t.text)} (at {at(t.x, t.y)} 0) "
                   f"(effects (font (size 1.27 1.27)) (justify left bottom)) (uuid {uid()}))")
    instances = []
    for s in sch.symbols:
        e = s.element
        ref = symbol_reference(e)
        value = e.spec.lower() if e.value is None else format_spice(e.value)
        u = uid()
        sx, sy = ox + s.x * SCALE_MM, oy + s.y * SCALE_MM
        props = [("Reference", ref, f"{_mm(sx + 2.54)} {_mm(sy - 1.27)}", _FONT),
                 ("Value", value, f"{_mm(sx + 2.54)} {_mm(sy + 1.27)}", _FONT),
                 ("Footprint", "", f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Datasheet", "~", f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Spice_Primitive", e.letter, f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Spice_Model", value, f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Spice_Netlist_Enabled", "Y", f"{_mm(sx)} {_mm(sy)}", _HIDDEN)]
        if e.letter == "G":
            props.append(("Spice_Node_Sequence", "1 2 3 4", f"{_mm(sx)} {_mm(sy)}", _HIDDEN))
        props_text = " ".join(f"(property {_q(k)} {_q(v)} (id {i}) (at {xy} 0) {eff})"
                              for i, (k, v, xy, eff) in enumerate(props))
        pins = " ".join(f"(pin {_q(PIN_NUMBERS[p])} (uuid {uid()}))" for p in PIN_OFFSETS[e.letter])
        mirror = " (mirror y)" if s.flip else ""
        out.append(f"  (symbol (lib_id \"{LIB}:{_SYMBOL_NAME[e.letter]}\") (at {_mm(sx)} {_mm(sy)} 0){mirror} "
                   f"(unit 1) (in_bom yes) (on_board yes) (uuid {u}) {props_text} {pins})")
        instances.append((u, ref, value))
    for k, g in enumerate(sch.grounds, start=1):
        u = uid()
        gx, gy = ox + g.x * SCALE_MM, oy + g.y * SCALE_MM
        ref = f"#PWR{k:03d}"
        out.append(f"  (symbol (lib_id \"power:GND\") (at {_mm(gx)} {_mm(gy)} 0) (unit 1) (in_bom yes) (on_board yes) "
                   f"(uuid {u}) (property \"Reference\" {_q(ref)} (id 0) (at {_mm(gx)} {_mm(gy + 6.35)} 0) {_HIDDEN}) "
                   f"(property \"Value\" \"GND\" (id 1) (at {_mm(gx)} {_mm(gy + 3.81)} 0) {_FONT}) "
                   f"(property \"Footprint\" \"\" (id 2) (at {_mm(gx)} {_mm(gy)} 0) {_HIDDEN}) "
                   f"(property \"Datasheet\" \"\" (id 3) (at {_mm(gx)} {_mm(gy)} 0) {_HIDDEN}) "
                   f"(pin \"1\" (uuid {uid()})))")
        instances.append((u, ref, "GND"))
    out.append("  (sheet_instances (path \"/\" (page \"1\")))")
    out.append("  (symbol_instances")
    for u, ref, value in sorted(instances, key=lambda t: t[1]):
        out.append(f"    (path \"/{u}\" (reference {_q(ref)}) (unit 1) (value {_q(value)}) (footprint \"\"))")
    out += ["  )", ")"]
    dest.write("\n".join(out) + "\n")


def write(c: Circuit, dest: IO[str], *, title: str = "circuit", pdk: Pdk | None = None) -> None:
    """Write the circuit, with its input source, as a KiCad schematic that simulates in KiCad's ngspice."""
    write_schematic(place(c, pdk, title=title), dest)
