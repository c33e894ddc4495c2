"""SVG drawing of a circuit's schematic, for reports and the README.

Drawn from the same placement as the xschem and KiCad files (`layout.place`), with simple symbol
shapes of its own: every device is a `<g id="NAME">` group with a `<title>` and its name and value
written beside it, every net label shows its net, so the picture can be checked against the netlist.
Plain SVG 1.1 with no fonts or scripts outside it; any browser or converter renders it.
"""

from __future__ import annotations

from typing import IO
from xml.sax.saxutils import escape, quoteattr

from ..circuit import Circuit
from ..circuit.pdk import Pdk
from ..units import format_spice
from .layout import PlacedSymbol, Schematic, place

__all__ = ["write", "write_schematic"]

_MARGIN = 40
_STYLE = """
  .wire { stroke: #1f4e9c; stroke-width: 2; fill: none; stroke-linecap: round; }
  .dev { stroke: #2f6b1f; stroke-width: 2; fill: none; stroke-linejoin: round; }
  .dash { stroke: #2f6b1f; stroke-width: 1.5; stroke-dasharray: 3 3; fill: none; }
  .gnd { stroke: #555; stroke-width: 2; fill: none; }
  .dot { fill: #1f4e9c; }
  .name { font: bold 11px sans-serif; fill: #222; }
  .value { font: 11px sans-serif; fill: #444; }
  .net { font: bold 12px sans-serif; fill: #1f4e9c; }
  .caption { font: italic 12px sans-serif; fill: #777; }
  .title { font: bold 14px sans-serif; fill: #222; }
"""

# Symbol outlines in local coordinates (unflipped), pins as in layout.PIN_OFFSETS.
_SHAPES = {
    "R": ['<polyline class="dev" points="0,-30 0,-20 7,-16 -7,-8 7,0 -7,8 7,16 0,20 0,30"/>'],
    "C": ['<polyline class="dev" points="0,-30 0,-5"/>', '<polyline class="dev" points="-11,-5 11,-5"/>',
          '<polyline class="dev" points="-11,5 11,5"/>', '<polyline class="dev" points="0,5 0,30"/>'],
    "V": ['<polyline class="dev" points="0,-30 0,-15"/>', '<circle class="dev" cx="0" cy="0" r="15"/>',
          '<path class="dev" d="M -8 0 q 4 -8 8 0 q 4 8 8 0"/>', '<polyline class="dev" points="0,15 0,30"/>',
          '<text class="value" x="5" y="-18">+</text>'],
    "G": ['<polyline class="dev" points="0,-30 0,-20"/>', '<polygon class="dev" points="0,-20 20,0 0,20 -20,0"/>',
          '<polyline class="dev" points="0,-9 0,9"/>', '<polyline class="dev" points="-4,4 0,9 4,4"/>',
          '<polyline class="dev" points="0,20 0,30"/>', '<polyline class="dash" points="-40,-20 -20,-20"/>',
          '<polyline class="dash" points="-40,20 -20,20"/>', '<text class="value" x="-38" y="-25">+</text>'],
}


def _value_text(s: PlacedSymbol) -> str:
    e = s.element
    return e.spec if e.value is None else format_spice(e.value) + {"R": "\u03a9", "C": "F", "G": "S"}[e.letter]


def write_schematic(sch: Schematic, dest: IO[str]) -> None:
    """Write an already placed schematic as a standalone SVG document."""
    xmin, ymin, xmax, ymax = sch.bbox()
    xmin, ymin = xmin - _MARGIN, ymin - _MARGIN - 20
    xmax, ymax = xmax + _MARGIN + 60, ymax + _MARGIN
    w, h = xmax - xmin, ymax - ymin
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" height="{h}" '
           f'viewBox="{xmin} {ymin} {w} {h}">',
           f"<title>{escape(sch.title)}</title>", f"<style>{_STYLE}</style>",
           f'<rect x="{xmin}" y="{ymin}" width="{w}" height="{h}" fill="white"/>',
           f'<text class="title" x="{xmin + 10}" y="{ymin + 20}">{escape(sch.title)}</text>',
           '<g id="wires">']
    for wire in sch.wires:
        out.append(f'<line class="wire" x1="{wire.x1}" y1="{wire.y1}" x2="{wire.x2}" y2="{wire.y2}">'
                   f"<title>net {escape(wire.net)}</title></line>")
    out += [f'<circle class="dot" cx="{x}" cy="{y}" r="3.5"/>' for x, y in sch.junctions()]
    out.append("</g>")
    for s in sch.symbols:
        e = s.element
        flip = " scale(-1,1)" if s.flip else ""
        tx = s.x - 12 if s.flip else s.x + 12
        anchor = "end" if s.flip else "start"
        if e.letter in ("G", "V"):
            tx = s.x - 24 if s.flip else s.x + 24
        out.append(f"<g id={quoteattr(e.name)} class=\"element\"><title>{escape(e.name)} {escape(_value_text(s))}"
                   f" ({', '.join(f'{p}={n}' for p, n in e.pins.items())})</title>")
        out.append(f'<g transform="translate({s.x},{s.y}){flip}">' + "".join(_SHAPES[e.letter]) + "</g>")
        out.append(f'<text class="name" x="{tx}" y="{s.y - 4}" text-anchor="{anchor}">{escape(e.name)}</text>')
        out.append(f'<text class="value" x="{tx}" y="{s.y + 10}" text-anchor="{anchor}">'
                   f"{escape(_value_text(s))}</text></g>")
    out.append('<g id="grounds">')
    for g in sch.grounds:
        out.append(f'<path class="gnd" d="M {g.x} {g.y} v 8 m -10 0 h 20 m -15 5 h 10 m -6 5 h 2"/>')
    out.append("</g>")
    out.append('<g id="labels">')
    for lb in sch.labels:
        x = lb.x + 6 if lb.text_right else lb.x - 6
        anchor = "start" if lb.text_right else "end"
        out.append(f'<g class="label"><circle class="dot" cx="{lb.x}" cy="{lb.y}" r="2.5"/>'
                   f'<text class="net" x="{x}" y="{lb.y - 5}" text-anchor="{anchor}">{escape(lb.net)}</text></g>')
    out.append("</g>")
    for t in sch.texts:
        out.append(f'<text class="caption" x="{t.x}" y="{t.y}">{escape(t.text)}</text>')
    out.append("</svg>")
    dest.write("\n".join(out) + "\n")


def write(c: Circuit, dest: IO[str], *, title: str = "circuit", pdk: Pdk | None = None) -> None:
    """Write the circuit, with its input source, as an SVG schematic."""
    write_schematic(place(c, pdk, title=title), dest)
