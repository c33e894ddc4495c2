"""Placement of a circuit's schematic, shared by the xschem, KiCad and SVG exporters.

One placement, three renderers: the circuit looks the same in every tool, and the connectivity
tests of one format check the geometry all of them use. Coordinates are xschem units (y grows
downwards, 10 units = one 50-mil grid step in KiCad); pin offsets are those of xschem's standard
symbols (res.sym, capa.sym, vsource.sym, vccs.sym), which the KiCad and SVG symbols copy.

The drawing reads like a designer's sketch of the op-amp:
- the input source at the left, then the main-path stages left to right (S1, S2, S3);
- side branches (positions 5-7: branch A, passive network P, branch B) in rows above, each near
  the nets it joins, feedback branches mirrored so that they read right to left;
- every ground below its device.
Each subgraph node is one group: its gm cell (VCCS with R0 and C0 to ground) on a wire carrying
the node's output net, its R/C network above between the input-net wire and the output-net wire.
Groups meet through net labels (lab_pin in xschem, labels in KiCad), so no wire crosses another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..circuit import Circuit, load_pdk
from ..circuit.pdk import Pdk
from .elements import GROUND, SOURCE_NODE, Element, circuit_elements

__all__ = ["PIN_OFFSETS", "PlacedSymbol", "Wire", "Label", "Ground", "Text", "Schematic", "place", "place_devices"]

#: Pin offsets from a symbol's origin (unflipped), in xschem units, per element letter.
PIN_OFFSETS = {
    "R": {"p": (0, -30), "m": (0, 30)},
    "C": {"p": (0, -30), "m": (0, 30)},
    "V": {"p": (0, -30), "m": (0, 30)},
    "G": {"p": (0, -30), "m": (0, 30), "cp": (-40, -20), "cm": (-40, 20)},
    "I": {"p": (0, -30), "m": (0, 30)},
    # PDK devices, as the sky130 xschem symbols place their pins (nfet_01v8.sym, pfet_01v8.sym,
    # cap_mim_m3_1.sym, res_high_po.sym): a PMOS has its source on top
    "nmos": {"d": (20, -30), "g": (-20, 0), "s": (20, 30), "b": (20, 0)},
    "pmos": {"d": (20, 30), "g": (-20, 0), "s": (20, -30), "b": (20, 0)},
    "capacitor": {"c0": (0, -30), "c1": (0, 30)},
    "resistor": {"r0": (0, -30), "r1": (0, 30), "b": (-20, 0)},
}

_COLUMN = 90          # horizontal pitch between devices of a group (room for "1.5Meg" beside a symbol)
_BUS_B = -50          # y of the output-net wire of a group
_PASSIVE_BOTTOM = -90  # y of the bottom pin of the lowest device in an R/C chain
_GROUP_BOTTOM = 50    # lowest y a group draws (grounds below the gm row)
_ROW_GAP = 60         # vertical space between rows of groups
_GROUP_GAP = 100      # horizontal gap between neighbouring groups


@dataclass(frozen=True)
class PlacedSymbol:
    element: Element
    x: int
    y: int
    flip: bool = False      # mirrored left-right

    def pin(self, name: str) -> tuple[int, int]:
        dx, dy = PIN_OFFSETS[self.element.key][name]
        return (self.x - dx if self.flip else self.x + dx, self.y + dy)

    def pins(self) -> dict[str, tuple[int, int]]:
        return {n: self.pin(n) for n in PIN_OFFSETS[self.element.key]}


@dataclass(frozen=True)
class Wire:
    x1: int
    y1: int
    x2: int
    y2: int
    net: str


@dataclass(frozen=True)
class Label:
    x: int
    y: int
    net: str
    text_right: bool        # the text extends to the right of the point (label at a wire's right end)


@dataclass(frozen=True)
class Ground:
    x: int
    y: int


@dataclass(frozen=True)
class Text:
    x: int
    y: int
    text: str


@dataclass
class Schematic:
    title: str
    symbols: list[PlacedSymbol] = field(default_factory=list)
    wires: list[Wire] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    grounds: list[Ground] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    ports: list[Label] = field(default_factory=list)     # a subcircuit's ports (pins by name)

    def bbox(self) -> tuple[int, int, int, int]:
        """(xmin, ymin, xmax, ymax) over every placed point, symbols' extent included."""
        xs, ys = [], []
        for s in self.symbols:
            for x, y in s.pins().values():
                xs.append(x)
                ys.append(y)
        for w in self.wires:
            xs += [w.x1, w.x2]
            ys += [w.y1, w.y2]
        for p in [*self.labels, *self.grounds, *self.texts, *self.ports]:
            xs.append(p.x)
            ys.append(p.y)
        return min(xs), min(ys), max(xs), max(ys) + 20

    def junctions(self) -> list[tuple[int, int]]:
        """Points (sorted) where three or more wire ends and pins meet: where a schematic draws a dot.

        A pin counts only where a wire ends on it, so a pin touching nothing makes no dot. One
        definition for every renderer, so the KiCad and SVG drawings dot the same points.
        """
        ends: dict[tuple[int, int], int] = {}
        for w in self.wires:
            for p in ((w.x1, w.y1), (w.x2, w.y2)):
                ends[p] = ends.get(p, 0) + 1
        for s in self.symbols:
            for p in s.pins().values():
                if p in ends:
                    ends[p] += 1
        return sorted(p for p, n in ends.items() if n >= 3)


class _Group:
    """A node's symbols in local coordinates (origin at the group's left, y = 0 on the gm row)."""

    def __init__(self, caption: str):
        self.caption = caption
        self.symbols: list[PlacedSymbol] = []
        self.wires: list[Wire] = []
        self.labels: list[Label] = []
        self.grounds: list[Ground] = []
        self.width = 0
        self.top = _BUS_B - 40     # highest y the group draws, its caption included
        self.bottom = _BUS_B       # lowest y it draws

    def wire_path(self, net: str, points: list[tuple[int, int]]) -> None:
        for (x1, y1), (x2, y2) in zip(points, points[1:]):
            if (x1, y1) != (x2, y2):
                self.wires.append(Wire(x1, y1, x2, y2, net))

    def bus(self, net: str, y: int, xs: list[int]) -> None:
        """A horizontal wire at y through the given x's, split at each so every join is end-to-end."""
        xs = sorted(set(xs))
        self.wire_path(net, [(x, y) for x in xs])

    def placed(self, dx: int, dy: int, mirror: bool) -> tuple[list, list, list, list]:
        def tx(x: int) -> int:
            return dx + (self.width - x if mirror else x)

        syms = [PlacedSymbol(s.element, tx(s.x), dy + s.y, s.flip != mirror) for s in self.symbols]
        wires = [Wire(tx(w.x1), dy + w.y1, tx(w.x2), dy + w.y2, w.net) for w in self.wires]
        labels = [Label(tx(lb.x), dy + lb.y, lb.net, lb.text_right != mirror) for lb in self.labels]
        grounds = [Ground(tx(g.x), dy + g.y) for g in self.grounds]
        return syms, wires, labels, grounds


def _node_group(caption: str, elements: list[Element]) -> _Group:
    """Lay out one subgraph node: gm cell on the output-net wire, R/C chains above it."""
    g = _Group(caption)
    gms = [e for e in elements if e.letter == "G"]
    shunts = [e for e in elements if e.letter != "G" and GROUND in e.nets]
    passives = [e for e in elements if e.letter != "G" and GROUND not in e.nets]
    if len(gms) > 1:
        raise ValueError(f"{caption}: a node with {len(gms)} gm devices cannot be laid out")
    if gms:
        a, b = gms[0].pins["cp"], gms[0].pins["p"]
    elif passives:
        a, b = passives[0].nets[0], passives[-1].nets[-1]
    else:
        raise ValueError(f"{caption}: nothing to draw")
    bus_b_x: list[int] = []
    x = 0
    if gms:
        gm = PlacedSymbol(gms[0], 60, 0)
        g.symbols.append(gm)
        g.bottom = _GROUP_BOTTOM
        for pin in ("m", "cm"):
            g.grounds.append(Ground(*gm.pin(pin)))
        px, py = gm.pin("p")
        g.wire_path(b, [(px, py), (px, _BUS_B)])
        bus_b_x.append(px)
        cx, cy = gm.pin("cp")
        x = 60
        for s in shunts:
            if s.nets[0] != b:
                raise ValueError(f"{caption}: {s.name} does not load the node's output net")
            x += _COLUMN
            sym = PlacedSymbol(s, x, 0)
            g.symbols.append(sym)
            g.grounds.append(Ground(*sym.pin("m")))
            g.wire_path(b, [sym.pin("p"), (x, _BUS_B)])
            bus_b_x.append(x)
        if not passives:
            g.wire_path(a, [(cx, cy), (cx - 20, cy)])
            g.labels.append(Label(cx - 20, cy, a, False))
    elif shunts:
        raise ValueError(f"{caption}: ground loads without a gm cannot be laid out")
    bus_a_x: list[int] = []
    chains = _chains(passives, a, b, caption)
    # the input-net wire runs 20 units above the top of the tallest chain (60 per device, 20 between)
    bus_a = _PASSIVE_BOTTOM - 20 - max((80 * len(ch) - 20 for ch in chains), default=0)
    for chain in chains:
        x += _COLUMN
        y_bottom = _PASSIVE_BOTTOM
        g.wire_path(b, [(x, y_bottom), (x, _BUS_B)])
        bus_b_x.append(x)
        for k, e in enumerate(reversed(chain)):     # bottom (net b) to top (net a)
            sym = PlacedSymbol(e, x, y_bottom - 30)
            g.symbols.append(sym)
            top = sym.pin("p")[1]
            if k < len(chain) - 1:
                g.wire_path(e.nets[0], [(x, top), (x, top - 20)])
                y_bottom = top - 20
            else:
                g.wire_path(a, [(x, top), (x, bus_a)])
        bus_a_x.append(x)
    if passives:
        left = 0
        if gms:
            cx, cy = g.symbols[0].pin("cp")
            g.wire_path(a, [(cx, cy), (left, cy), (left, bus_a)])
        bus_a_x.append(left)
        g.bus(a, bus_a, bus_a_x)
        g.labels.append(Label(left, bus_a, a, False))
        g.top = bus_a - 40
    right = x + 40
    bus_b_x.append(right)
    g.bus(b, _BUS_B, bus_b_x)
    g.labels.append(Label(right, _BUS_B, b, True))
    g.width = right
    return g


def _chains(passives: list[Element], a: str, b: str, caption: str) -> list[list[Element]]:
    """Split the R/C devices into series chains from net a to net b (top to bottom)."""
    left = list(passives)
    chains = []
    while left:
        start = next((e for e in left if e.nets[0] == a), None)
        if start is None:
            raise ValueError(f"{caption}: R/C devices do not form chains from {a} to {b}")
        chain = [start]
        left.remove(start)
        while chain[-1].nets[1] != b:
            nxt = next((e for e in left if e.nets[0] == chain[-1].nets[1]), None)
            if nxt is None:
                raise ValueError(f"{caption}: R/C chain from {a} does not reach {b}")
            chain.append(nxt)
            left.remove(nxt)
        chains.append(chain)
    return chains


def _source_group(source: Element) -> _Group:
    g = _Group("input source")
    sym = PlacedSymbol(source, 40, 0)
    g.symbols.append(sym)
    g.grounds.append(Ground(*sym.pin("m")))
    px, py = sym.pin("p")
    net = source.nets[0]
    g.wire_path(net, [(px, py), (px, _BUS_B), (px + 40, _BUS_B)])
    g.labels.append(Label(px + 40, _BUS_B, net, True))
    g.width = px + 40
    g.bottom = _GROUP_BOTTOM
    return g


def _caption(c: Circuit, i: int) -> str:
    node = c.nodes[i]
    slot = {2: "S1", 3: "S2", 4: "S3", 5: "branch A", 6: "P", 7: "branch B"}.get(node.pos, f"pos {node.pos}")
    return f"{slot}: {node.kind.name} (node {i})"


def place(c: Circuit, pdk: Pdk | None = None, title: str = "circuit") -> Schematic:
    """The placed schematic of a circuit with its testbench source (see the module docstring)."""
    pdk = pdk or load_pdk()
    elements = circuit_elements(c, pdk)
    by_node: dict[int, list[Element]] = {}
    for e in elements:
        by_node.setdefault(e.node, []).append(e)
    sch = Schematic(title=title)
    net_x: dict[str, int] = {}       # x of the label that names each net on the main row

    def put(group: _Group, dx: int, dy: int, mirror: bool = False) -> None:
        syms, wires, labels, grounds = group.placed(dx, dy, mirror)
        sch.symbols += syms
        sch.wires += wires
        sch.labels += labels
        sch.grounds += grounds
        sch.texts.append(Text(dx, dy + group.top, group.caption))

    x, top = 0, 0
    main = [SOURCE_NODE] + [i for i in c.topological_order() if i in by_node and c.nodes[i].pos in (2, 3, 4)]
    previous: Label | None = None      # the right-hand label of the group placed last
    for i in main:
        group = _source_group(by_node[i][0]) if i == SOURCE_NODE else _node_group(_caption(c, i), by_node[i])
        put(group, x, 0)
        first = group.labels[0]
        if previous is not None and not first.text_right and first.net == previous.net:
            # draw the main path through: previous output net -> this stage's input, across the gap
            x2, mid = x + first.x, previous.x + _GROUP_GAP // 2
            path = [(previous.x, previous.y), (mid, previous.y), (mid, first.y), (x2, first.y)]
            sch.wires += [Wire(a[0], a[1], b[0], b[1], first.net) for a, b in zip(path, path[1:]) if a != b]
            sch.labels.remove(Label(x2, first.y, first.net, first.text_right))   # the wire names it now
        last = group.labels[-1]
        previous = Label(x + last.x, last.y, last.net, last.text_right)
        for lb in group.labels:
            net_x.setdefault(lb.net, x + lb.x)
        net_x[group.labels[-1].net] = x + group.labels[-1].x
        x += group.width + _GROUP_GAP
        top = min(top, group.top)
    for i in sorted(by_node, key=lambda k: (c.nodes[k].pos if k >= 0 else -1, k)):
        if i == SOURCE_NODE or i in main:
            continue
        group = _node_group(_caption(c, i), by_node[i])
        ends = [net_x.get(lb.net, 0) for lb in group.labels]
        mid = (min(ends) + max(ends)) // 2
        left = max(0, (mid - group.width // 2) // 10 * 10)
        dy = top - _ROW_GAP - group.bottom
        put(group, left, dy, mirror=c.nodes[i].kind.feedback)
        top = dy + group.top
    sch.texts.append(Text(0, 100, f"{title}: H(f) = V(out)/V(in), 1 V AC at in"))
    return sch


_DEVICE_PITCH = 200   # grid pitch of place_devices: a device, its stubs and their labels fit in it
_STUB = 20            # length of the wire from a pin to its net label


def place_devices(elements: list[Element], title: str, ports: tuple[str, ...] = (), columns: int = 6) -> Schematic:
    """A transistor-level schematic: devices on a grid, every pin on a short wire ending in a label
    of its net (nets join by name, so no wire crosses another), the subcircuit's ports in a column
    at the left. A designer rearranges it in the tool; what matters is that it is complete and
    connected exactly as the netlist."""
    sch = Schematic(title=title)
    for k, e in enumerate(elements):
        sym = PlacedSymbol(e, (k % columns) * _DEVICE_PITCH, (k // columns) * _DEVICE_PITCH)
        sch.symbols.append(sym)
        for pin, net in e.pins.items():
            px, py = sym.pin(pin)
            dx, dy = PIN_OFFSETS[e.key][pin]
            if abs(dx) >= abs(dy):          # a side pin: the stub leaves sideways
                ex, ey = px + (_STUB if dx > 0 else -_STUB), py
            else:                           # a top or bottom pin: the stub leaves vertically
                ex, ey = px, py + (_STUB if dy > 0 else -_STUB)
            sch.wires.append(Wire(px, py, ex, ey, net))
            sch.labels.append(Label(ex, ey, net, ex >= px))
    for k, net in enumerate(ports):
        sch.ports.append(Label(-_DEVICE_PITCH, k * 40, net, False))
    sch.texts.append(Text(-_DEVICE_PITCH, -100, title))
    return sch
