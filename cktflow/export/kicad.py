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
from .elements import PIN_NAMES, Element
from .layout import PIN_OFFSETS, Schematic, place

__all__ = ["write", "write_schematic", "LIB", "SCALE_MM", "PIN_NUMBERS", "symbol_reference", "symbol_name",
           "pin_number"]

#: Library nickname of the symbols this file defines.
LIB = "cktflow_sim"
#: Millimetres per layout unit.
SCALE_MM = 0.127
#: Pin number per layout pin name; the SPICE node order is the pin order 1, 2 (, 3, 4).
PIN_NUMBERS = {"p": "1", "m": "2", "cp": "3", "cm": "4"}
_SYMBOL_NAME = {"R": "R", "C": "C", "G": "VCCS", "V": "VSOURCE", "I": "ISOURCE"}
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
    return "V1" if e.letter == "V" and not e.shape else e.name.upper() if e.shape else e.name


def symbol_name(e: Element) -> str:
    """The library symbol an element is drawn with: one per letter, one per PDK device kind."""
    return e.symbol.rpartition("/")[2].removesuffix(".sym") if e.symbol else _SYMBOL_NAME[e.letter]


def pin_number(e: Element, pin: str) -> str:
    """Pins are numbered in SPICE node order, so KiCad's netlist lists the nodes as SPICE wants."""
    return PIN_NUMBERS[pin] if not e.shape else str(PIN_NAMES[e.key].index(pin) + 1)


# ---- library symbols (lib coordinates: y grows upwards) ----------------------------------------

def _pin(number: str, x: float, y: float, angle: int, kind: str = "passive") -> str:
    return (f"(pin {kind} line (at {_mm(x)} {_mm(y)} {angle}) (length 1.27) "
            f"(name \"~\" {_FONT}) (number {_q(number)} {_FONT}))")


def _line(*pts: tuple[float, float], width: float = 0.254) -> str:
    xy = " ".join(f"(xy {_mm(x)} {_mm(y)})" for x, y in pts)
    return f"(polyline (pts {xy}) (stroke (width {width}) (type default) (color 0 0 0 0)) (fill (type none)))"


_MOS = [_line((-2.54, 0), (-0.762, 0)), _line((-0.762, 1.905), (-0.762, -1.905)),
        _line((0, 2.286), (0, -2.286)), _line((0, 1.905), (2.54, 1.905), (2.54, 3.81)),
        _line((0, -1.905), (2.54, -1.905), (2.54, -3.81)), _line((0, 0), (2.54, 0))]
_BODIES = {
    "R": ["(rectangle (start -0.762 -2.286) (end 0.762 2.286) (stroke (width 0.254) (type default) "
          "(color 0 0 0 0)) (fill (type none)))"],
    "C": [_line((-1.524, -0.508), (1.524, -0.508), width=0.3048), _line((-1.524, 0.508), (1.524, 0.508), width=0.3048),
          _line((0, 2.54), (0, 0.508), width=0), _line((0, -2.54), (0, -0.508), width=0)],
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
    # current flows from pin p through the source to pin m (SPICE's convention): the arrow points down
    "I": ["(circle (center 0 0) (radius 1.905) (stroke (width 0.254) (type default) (color 0 0 0 0)) "
          "(fill (type none)))", _line((0, 1.27), (0, -1.27), (-0.508, -0.508), (0.508, -0.508), (0, -1.27))],
    "nmos": _MOS + [_line((1.27, 0.508), (0.254, 0), (1.27, -0.508))],
    "pmos": _MOS + ["(circle (center -0.508 0) (radius 0.254) (stroke (width 0.254) (type default) "
                    "(color 0 0 0 0)) (fill (type none)))", _line((1.27, 0), (2.286, 0.508), (2.286, -0.508), (1.27, 0))],
    "resistor": ["(rectangle (start -0.762 -2.286) (end 0.762 2.286) (stroke (width 0.254) (type default) "
                 "(color 0 0 0 0)) (fill (type none)))", _line((-2.54, 0), (-0.762, 0), width=0)],
}
_BODIES["capacitor"] = _BODIES["C"]


def _pin_angle(x: float, y: float) -> int:
    """The direction a pin points from its end (x, y) toward the symbol's body."""
    if abs(y) >= abs(x):
        return 270 if y > 0 else 90
    return 0 if x < 0 else 180


def _lib_symbol(e: Element) -> str:
    name = symbol_name(e)
    prefix = "X" if e.shape else e.letter
    spice = {"R": ("R", ""), "C": ("C", ""), "G": ("G", "1 2 3 4"), "V": ("V", ""), "I": ("I", "")}.get(
        e.letter if not e.shape else "", ("X", ""))
    props = [("Reference", prefix, "(at 2.54 1.27 0)", _FONT), ("Value", name, "(at 2.54 -1.27 0)", _FONT),
             ("Footprint", "", "(at 0 0 0)", _HIDDEN), ("Datasheet", "~", "(at 0 0 0)", _HIDDEN),
             ("Spice_Primitive", spice[0], "(at 0 0 0)", _HIDDEN),
             ("Spice_Netlist_Enabled", "Y", "(at 0 0 0)", _HIDDEN)]
    if spice[1]:
        props.append(("Spice_Node_Sequence", spice[1], "(at 0 0 0)", _HIDDEN))
    pins = []
    for pin, (dx, dy) in PIN_OFFSETS[e.key].items():
        x, y = dx * SCALE_MM, -dy * SCALE_MM
        pins.append(_pin(pin_number(e, pin), x, y, _pin_angle(x, y)))
    props_text = " ".join(f"(property {_q(k)} {_q(v)} (id {i}) {at} {eff})" for i, (k, v, at, eff) in enumerate(props))
    return (f"(symbol \"{LIB}:{name}\" (pin_names (offset 0) hide) (in_bom yes) (on_board yes) {props_text} "
            f"(symbol \"{name}_0_1\" {' '.join(_BODIES[e.key])}) (symbol \"{name}_1_1\" {' '.join(pins)}))")


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
    kinds = {symbol_name(s.element): s.element for s in sch.symbols}
    out += ["    " + _lib_symbol(kinds[k]) for k in sorted(kinds, key=lambda k: (kinds[k].letter, k))]
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
        value = (symbol_name(e) if e.shape else e.spec.lower()) if e.value is None else format_spice(e.value)
        model = e.spec if e.shape else value
        u = uid()
        sx, sy = ox + s.x * SCALE_MM, oy + s.y * SCALE_MM
        props = [("Reference", ref, f"{_mm(sx + 2.54)} {_mm(sy - 1.27)}", _FONT),
                 ("Value", value, f"{_mm(sx + 2.54)} {_mm(sy + 1.27)}", _FONT),
                 ("Footprint", "", f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Datasheet", "~", f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Spice_Primitive", e.letter, f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Spice_Model", model, f"{_mm(sx)} {_mm(sy)}", _HIDDEN),
                 ("Spice_Netlist_Enabled", "Y", f"{_mm(sx)} {_mm(sy)}", _HIDDEN)]
        props += [(k, v, f"{_mm(sx)} {_mm(sy)}", _HIDDEN) for k, v in e.attrs if k != "name"]
        if e.letter == "G":
            props.append(("Spice_Node_Sequence", "1 2 3 4", f"{_mm(sx)} {_mm(sy)}", _HIDDEN))
        props_text = " ".join(f"(property {_q(k)} {_q(v)} (id {i}) (at {xy} 0) {eff})"
                              for i, (k, v, xy, eff) in enumerate(props))
        pins = " ".join(f"(pin {_q(pin_number(e, p))} (uuid {uid()}))" for p in PIN_OFFSETS[e.key])
        mirror = " (mirror y)" if s.flip else ""
        out.append(f"  (symbol (lib_id \"{LIB}:{symbol_name(e)}\") (at {_mm(sx)} {_mm(sy)} 0){mirror} "
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
    for p in sch.ports:
        shape = {"inp": "input", "inn": "input", "out": "output"}.get(p.net, "bidirectional")
        out.append(f"  (hierarchical_label {_q(p.net)} (shape {shape}) (at {at(p.x, p.y)} 180) "
                   f"(effects (font (size 1.27 1.27)) (justify right)) (uuid {uid()}))")
    out.append("  (sheet_instances (path \"/\" (page \"1\")))")
    out.append("  (symbol_instances")
    for u, ref, value in sorted(instances, key=lambda t: t[1]):
        out.append(f"    (path \"/{u}\" (reference {_q(ref)}) (unit 1) (value {_q(value)}) (footprint \"\"))")
    out += ["  )", ")"]
    dest.write("\n".join(out) + "\n")


def write(c: Circuit, dest: IO[str], *, title: str = "circuit", pdk: Pdk | None = None) -> None:
    """Write the circuit, with its input source, as a KiCad schematic that simulates in KiCad's ngspice."""
    write_schematic(place(c, pdk, title=title), dest)
