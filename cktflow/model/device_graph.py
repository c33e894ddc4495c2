"""A transistor op-amp as the graph the sky130 predictor reads: devices and nets, joined by terminals.

Every element of the subcircuit is a device node (its kind: nmos, pmos, resistor, capacitor,
current source, voltage source; its W, L, multiplicity nf*m and value, on log scales) and every
net a net node (which port it is: inp, inn, out, vdd, vss, or internal). A device meets a net
through a terminal whose role the graph keeps (drain, gate, source, bulk; the two ends of a
two-terminal element), because a gate on the output and a drain on the output are different
circuits. A netlist's structure is parsed once (`DeviceGraph.of`); its features for any number of
sizings come from one array operation (`features`), which is what makes the predictor cheap
enough to score thousands of sizings while refining one candidate.

A batch pads devices and nets (an op-amp has at most a few dozen of each) and lists the terminals
as edges: types (B, D) long, feats (B, D, F) float, fmask (B, D, F) bool, ports (B, N) long, and per
terminal e_dev, e_net, e_role (B, E) long with e_valid (B, E) bool (a device has 2-4 terminals, so
edge lists cost a fraction of a dense device x net x role incidence).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..transistor.circuit import PORTS, TransistorCircuit

__all__ = ["DeviceGraph", "GraphBatch", "DEVICE_TYPES", "ROLES", "NUM_FEATURES", "collate", "same_graph_batch",
           "load_feature", "REFERENCE_LOAD_F"]

#: Device node kinds (index 0 is padding).
DEVICE_TYPES = ("pad", "nmos", "pmos", "resistor", "capacitor", "isource", "vsource")
#: Terminal roles: a MOS's drain, gate, source and bulk; the first and second end of a two-terminal
#: element (a current source's current flows from its first net through it to its second).
ROLES = ("d", "g", "s", "b", "p", "n")
#: Net node kinds: the five ports, then any internal net (index 0 is padding).
NET_KINDS = ("pad", *PORTS, "internal")
#: The load conditions are measured relative to (the dataset's default).
REFERENCE_LOAD_F = 5e-12
#: Per-device features: log10 W (um), log10 L (um), log10 nf*m, and the element value on the
#: log scale of its kind (module constant _VALUE_SCALE).
FEATURES = ("log_w", "log_l", "log_mult", "value")
NUM_FEATURES = len(FEATURES)

# value -> feature: log10(value) + offset, so that typical values land near 0
_VALUE_OFFSET = {"isource": 5.0, "resistor": -4.0, "capacitor": 12.0}
_SIMPLE = {"r": "resistor", "c": "capacitor", "i": "isource", "v": "vsource"}
_REF = re.compile(r"^\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}


def _number(text: str) -> float:
    """A SPICE number with an optional SI suffix (3.3u, 1meg, 2.5)."""
    t = text.strip().lower()
    m = _NUMBER.match(t)
    if not m:
        raise ValueError(f"not a number: {text!r}")
    rest = t[m.end():]
    for suffix in ("meg", *_SUFFIX):
        if rest.startswith(suffix):
            return float(m.group(0)) * _SUFFIX[suffix]
    return float(m.group(0))


@dataclass(frozen=True)
class DeviceGraph:
    """The parsed structure of one netlist (shared by all its sizings)."""
    params: tuple[str, ...]          # sizing parameter names, in the circuit's order
    types: np.ndarray                # (D,) device kind index
    ports: np.ndarray                # (N,) net kind index
    incidence: np.ndarray            # (R, N, D) 1 where device d meets net n through role r
    source: np.ndarray               # (D, F) the parameter index a feature reads, -1 for a constant
    const: np.ndarray                # (D, F) the raw value of a constant feature
    fmask: np.ndarray                # (D, F) the device has this feature
    kind_of: tuple[str, ...]         # (D,) device kind names (for the value offset)

    @classmethod
    def of(cls, circuit: TransistorCircuit) -> "DeviceGraph":
        tech = circuit.technology
        params = tuple(p.name for p in circuit.params)
        pidx = {p: i for i, p in enumerate(params)}
        devices: list[tuple[str, list[tuple[str, str]], dict[str, object]]] = []
        nets: dict[str, int] = {}
        for ln in circuit.body.splitlines():
            toks = re.sub(r"\s*=\s*", "=", ln.strip()).split()
            if not toks or toks[0].startswith(("*", ".")):
                continue
            letter = toks[0][0].lower()
            plain = [t for t in toks[1:] if "=" not in t]
            keys = {k.lower(): v for k, _, v in (t.partition("=") for t in toks[1:] if "=" in t)}
            if letter == "x":
                dev = tech.device(plain[-1])
                kind = {"nmos": "nmos", "pmos": "pmos"}.get(dev.type, dev.type)
                if kind not in DEVICE_TYPES:
                    raise ValueError(f"{circuit.name}: device kind {dev.type} of {toks[0]} is not one the "
                                     f"predictor reads ({', '.join(DEVICE_TYPES[1:])})")
                terms = plain[:-1]
                roles = ("d", "g", "s", "b") if kind in ("nmos", "pmos") else ("p", "n", "b")
                mult: object = 1.0
                if "nf" in keys or "m" in keys or "mult" in keys:
                    mult = (keys.get("nf", "1"), keys.get("m", keys.get("mult", "1")))
                vals = {"log_w": keys.get("w"), "log_l": keys.get("l"), "log_mult": mult}
            elif letter in _SIMPLE:
                kind = _SIMPLE[letter]
                terms, roles = plain[:2], ("p", "n")
                value = next((t for t in reversed(plain[2:]) if t.lower() not in ("dc", "ac")), None)
                vals = {"value": value}
            else:
                raise ValueError(f"{circuit.name}: element {toks[0]} is not one the predictor reads")
            devices.append((kind, [(r, t.lower()) for r, t in zip(roles, terms)], vals))
            for t in terms:
                nets.setdefault(t.lower(), len(nets))
        d, n = len(devices), len(nets)
        types = np.array([DEVICE_TYPES.index(k) for k, _, _ in devices], dtype=np.int64)
        ports = np.array([NET_KINDS.index(net) if net in PORTS else NET_KINDS.index("internal") for net in nets],
                         dtype=np.int64)
        inc = np.zeros((len(ROLES), n, d), dtype=np.float32)
        source = np.full((d, NUM_FEATURES), -1, dtype=np.int64)
        const = np.ones((d, NUM_FEATURES), dtype=np.float64)
        fmask = np.zeros((d, NUM_FEATURES), dtype=bool)
        mult_params: dict[int, tuple] = {}
        for j, (kind, terms, vals) in enumerate(devices):
            for role, net in terms:
                inc[ROLES.index(role), nets[net], j] = 1.0
            for f, raw in vals.items():
                if raw is None:
                    continue
                fi = FEATURES.index(f)
                fmask[j, fi] = True
                if f == "log_mult" and isinstance(raw, tuple):
                    mult_params[j] = raw
                    continue
                m = _REF.match(str(raw))
                if m:
                    if m.group(1).lower() not in pidx:
                        raise ValueError(f"{circuit.name}: {{{m.group(1)}}} names no sizing parameter")
                    source[j, fi] = pidx[m.group(1).lower()]
                elif isinstance(raw, float):
                    const[j, fi] = raw
                else:
                    const[j, fi] = _number(str(raw))
            if j in mult_params:
                # nf*m: at most one of them a parameter (the realisations size m, the templates neither)
                refs = [_REF.match(str(x)) for x in mult_params[j]]
                fixed = math.prod(_number(str(x)) for x, r in zip(mult_params[j], refs) if not r)
                named = [r.group(1).lower() for r in refs if r]
                if len(named) > 1:
                    raise ValueError(f"{circuit.name}: nf and m of one device are both sizing parameters")
                const[j, 2] = fixed
                if named:
                    source[j, 2] = pidx[named[0]]
        return cls(params, types, ports, inc, source, const, fmask, tuple(k for k, _, _ in devices))

    @property
    def devices(self) -> int:
        return len(self.types)

    @property
    def nets(self) -> int:
        return len(self.ports)

    @property
    def edges(self) -> np.ndarray:
        """(E, 3) rows of (role, net, device), one per terminal."""
        return np.argwhere(self.incidence > 0)

    def features(self, sizes: np.ndarray) -> np.ndarray:
        """(S, P) parameter values (in the circuit's parameter order) -> (S, D, F) features."""
        sizes = np.atleast_2d(np.asarray(sizes, dtype=np.float64))
        s = sizes.shape[0]
        raw = np.broadcast_to(self.const, (s, *self.const.shape)).copy()
        src = self.source
        read = src >= 0
        if read.any():
            di, fi = np.nonzero(read)
            vals = sizes[:, src[di, fi]]
            # a constant factor beside a parameter (nf=2 m={m}) multiplies it
            raw[:, di, fi] = vals * np.where(fi == 2, self.const[di, fi], 1.0)
        out = np.log10(np.clip(np.abs(raw), 1e-30, None))
        offsets = np.array([_VALUE_OFFSET.get(k, 0.0) for k in self.kind_of])
        out[:, :, 3] += offsets
        vsrc = np.array([k == "vsource" for k in self.kind_of])
        out[:, vsrc, 3] = raw[:, vsrc, 3] / 1.8     # a voltage on the supply's scale, sign kept
        return np.where(self.fmask, out, 0.0).astype(np.float32)


@dataclass
class GraphBatch:
    types: torch.Tensor       # (B, D) long, 0 where padded
    feats: torch.Tensor       # (B, D, F) float
    fmask: torch.Tensor       # (B, D, F) bool
    ports: torch.Tensor       # (B, N) long, 0 where padded
    e_dev: torch.Tensor       # (B, E) long: the device of each terminal
    e_net: torch.Tensor       # (B, E) long: its net
    e_role: torch.Tensor      # (B, E) long: its role (ROLES)
    e_valid: torch.Tensor     # (B, E) bool
    cond: torch.Tensor        # (B, 1) float: the load, log10(CL / REFERENCE_LOAD_F)

    def __len__(self) -> int:
        return self.types.shape[0]

    @property
    def dmask(self) -> torch.Tensor:
        return self.types > 0

    @property
    def nmask(self) -> torch.Tensor:
        return self.ports > 0

    def index(self, idx) -> "GraphBatch":
        return GraphBatch(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def flat_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The valid terminals as (device, net) indices into the flattened (B*D) and (B*N) rows, and roles."""
        b, d = self.types.shape
        n = self.ports.shape[1]
        row = torch.arange(b, device=self.types.device)[:, None]
        v = self.e_valid
        return (self.e_dev + row * d)[v], (self.e_net + row * n)[v], self.e_role[v]


def load_feature(cl: float) -> float:
    return math.log10(cl / REFERENCE_LOAD_F)


def collate(graphs: Sequence[DeviceGraph], feats: Sequence[np.ndarray], loads: Sequence[float] | None = None
            ) -> GraphBatch:
    """Pad graphs (each with its (D, F) features, measured at `loads`, farads) into one batch."""
    b = len(graphs)
    d = max(g.devices for g in graphs)
    n = max(g.nets for g in graphs)
    edges = [g.edges for g in graphs]
    e = max(len(x) for x in edges)
    types = np.zeros((b, d), dtype=np.int64)
    ff = np.zeros((b, d, NUM_FEATURES), dtype=np.float32)
    fm = np.zeros((b, d, NUM_FEATURES), dtype=bool)
    ports = np.zeros((b, n), dtype=np.int64)
    ed, en, er = (np.zeros((b, e), dtype=np.int64) for _ in range(3))
    ev = np.zeros((b, e), dtype=bool)
    for i, (g, f, x) in enumerate(zip(graphs, feats, edges)):
        types[i, :g.devices] = g.types
        ff[i, :g.devices] = f
        fm[i, :g.devices] = g.fmask
        ports[i, :g.nets] = g.ports
        er[i, :len(x)], en[i, :len(x)], ed[i, :len(x)] = x[:, 0], x[:, 1], x[:, 2]
        ev[i, :len(x)] = True
    t = torch.from_numpy
    cond = torch.tensor([[load_feature(cl)] for cl in (loads or [REFERENCE_LOAD_F] * b)], dtype=torch.float32)
    return GraphBatch(t(types), t(ff), t(fm), t(ports), t(ed), t(en), t(er), t(ev), cond)


def same_graph_batch(graph: DeviceGraph, sizes: np.ndarray, load: float = REFERENCE_LOAD_F) -> GraphBatch:
    """Many sizings of one netlist, at one load (farads), as a batch (no padding; the structure is shared)."""
    f = graph.features(sizes)
    s = f.shape[0]
    x = graph.edges
    t = torch.from_numpy

    def rows(a: np.ndarray) -> torch.Tensor:
        return t(np.ascontiguousarray(a)).expand(s, *a.shape)

    return GraphBatch(rows(graph.types), t(f), rows(graph.fmask), rows(graph.ports), rows(x[:, 2]), rows(x[:, 1]),
                      rows(x[:, 0]), torch.ones(s, len(x), dtype=torch.bool),
                      torch.full((s, 1), load_feature(load), dtype=torch.float32))
