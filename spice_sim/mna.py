"""Exact poles of a linear deck from its modified-nodal-analysis matrices.

A deck of linear elements only (R, C, L, G, E, independent V and I sources) is the system
(G + sC) x = b. Its natural frequencies are the generalised eigenvalues of the pencil (G, -C) with
every independent source at zero (V shorted, I open). Two loops matter to an op-amp
(metrics.md, "usable in feedback"):

- open loop: the input source shorted, V(in) = 0;
- closed loop in unity negative feedback: V(in) = -s * V(out), an ideal subtractor with the sign s
  that makes the loop gain L = s*H positive at DC (the input polarity of negative feedback).

A deck with any other element (transistors, diodes, subcircuits, behavioural sources) is not linear
in this sense: `parse_linear` returns None and stability has to come from a transient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LinearDeck", "Poles", "parse_linear", "spice_number", "poles"]

_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "mil": 25.4e-6, "m": 1e-3, "u": 1e-6, "n": 1e-9,
           "p": 1e-12, "f": 1e-15}
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)(meg|mil|[tgkmunpf])?[a-z]*$", re.IGNORECASE)
_GROUND = {"0", "gnd"}
#: Eigenvalues beyond this (rad/s) are the infinite ones of a singular C, not poles.
MAX_POLE_RAD_S = 1e16


def spice_number(token: str) -> float | None:
    """A SPICE number with its scale suffix ("1.5k", "50f", "1meg", "2.2e-12F"); None if not one."""
    m = _NUMBER.match(token.strip())
    if not m:
        return None
    value = float(m.group(1))
    if m.group(2):
        value *= _SUFFIX[m.group(2).lower()]
    return value


@dataclass
class LinearDeck:
    """The linear elements of a deck, by kind, with node names lower-cased."""
    resistors: list[tuple[str, str, float]] = field(default_factory=list)
    capacitors: list[tuple[str, str, float]] = field(default_factory=list)
    inductors: list[tuple[str, str, float]] = field(default_factory=list)
    vccs: list[tuple[str, str, str, str, float]] = field(default_factory=list)   # G: out+, out-, in+, in-, gm
    vcvs: list[tuple[str, str, str, str, float]] = field(default_factory=list)   # E
    vsources: list[tuple[str, str, str]] = field(default_factory=list)           # name, n+, n-

    def nodes(self) -> list[str]:
        seen: dict[str, None] = {}
        for group in (self.resistors, self.capacitors, self.inductors):
            for a, b, _ in group:
                seen.update({a: None, b: None})
        for a, b, c, d, _ in self.vccs + self.vcvs:
            seen.update({a: None, b: None, c: None, d: None})
        for _, a, b in self.vsources:
            seen.update({a: None, b: None})
        return [n for n in seen if n not in _GROUND]


def parse_linear(deck: str) -> LinearDeck | None:
    """The deck's linear elements, or None when it holds anything else (or a value it cannot read).
    The first line is the title; comments, continuation lines and dot-directives other than
    .subckt/.include/.lib/.model/.param are understood."""
    out = LinearDeck()
    logical: list[str] = []
    for k, raw in enumerate(deck.splitlines()):
        line = raw.split(";", 1)[0].strip()
        if k == 0 or not line or line.startswith("*"):
            continue
        if line.startswith("+") and logical:
            logical[-1] += " " + line[1:].strip()
        else:
            logical.append(line)
    for line in logical:
        tok = line.split()
        word = tok[0].lower()
        if word.startswith("."):
            if word in (".subckt", ".include", ".inc", ".lib", ".model", ".param", ".func"):
                return None
            continue
        kind = word[0]
        try:
            if kind in "rcl":
                value = spice_number(tok[3])
                if value is None:
                    return None
                group = {"r": out.resistors, "c": out.capacitors, "l": out.inductors}[kind]
                group.append((tok[1].lower(), tok[2].lower(), value))
            elif kind in "ge":
                value = spice_number(tok[5])
                if value is None or len(tok) != 6:
                    return None
                (out.vccs if kind == "g" else out.vcvs).append(
                    (tok[1].lower(), tok[2].lower(), tok[3].lower(), tok[4].lower(), value))
            elif kind == "v":
                out.vsources.append((word, tok[1].lower(), tok[2].lower()))
            elif kind == "i":
                continue       # an independent current source is open at zero value
            else:
                return None
        except IndexError:
            return None
    return out


@dataclass(frozen=True)
class Poles:
    """Natural frequencies in rad/s (complex), open loop and closed loop in unity feedback."""
    open_loop: tuple[complex, ...]
    closed_loop: tuple[complex, ...]
    sign: int                            # s of L = s*H, from the DC solution

    @staticmethod
    def rhp(poles: tuple[complex, ...]) -> list[complex]:
        scale = max((abs(p) for p in poles), default=1.0)
        return [p for p in poles if p.real > 1e-9 * scale]

    @property
    def stable(self) -> bool:
        return not self.rhp(self.closed_loop)

    @property
    def open_loop_stable(self) -> bool:
        return not self.rhp(self.open_loop)

    def to_dict(self) -> dict:
        def pairs(ps):
            return [[p.real, p.imag] for p in ps]
        return {"open_loop": pairs(self.open_loop), "closed_loop": pairs(self.closed_loop), "sign": self.sign,
                "stable": self.stable, "open_loop_rhp": len(self.rhp(self.open_loop))}


def poles(deck: LinearDeck, input_node: str, output_node: str) -> Poles | None:
    """Open- and closed-loop poles of the amplifier from `input_node` to `output_node`; the source
    that drives the input is replaced by the loop closure. None when the DC gain cannot be solved
    (singular network)."""
    from scipy.linalg import eig

    inp, outp = input_node.lower(), output_node.lower()
    nodes = deck.nodes()
    if inp not in nodes or outp not in nodes:
        return None
    index = {n: i for i, n in enumerate(nodes)}
    # branch unknowns: every V source except the input's driver, every E, every L, plus one for the
    # input constraint itself
    others = [v for v in deck.vsources if not _drives(v, inp)]
    n = len(nodes)
    nb = len(others) + len(deck.vcvs) + len(deck.inductors) + 1
    size = n + nb
    G = np.zeros((size, size))
    C = np.zeros((size, size))

    def at(node: str) -> int | None:
        return None if node in _GROUND else index[node]

    def stamp(M, a, b, y):
        ia, ib = at(a), at(b)
        if ia is not None:
            M[ia, ia] += y
        if ib is not None:
            M[ib, ib] += y
        if ia is not None and ib is not None:
            M[ia, ib] -= y
            M[ib, ia] -= y

    def branch(row: int, a: str, b: str):
        """KCL coupling of a branch current j (column/row `row`) flowing from a to b through it."""
        ia, ib = at(a), at(b)
        if ia is not None:
            G[ia, row] += 1
            G[row, ia] += 1
        if ib is not None:
            G[ib, row] -= 1
            G[row, ib] -= 1

    for a, b, r in deck.resistors:
        if r == 0:
            return None
        stamp(G, a, b, 1.0 / r)
    for a, b, c in deck.capacitors:
        stamp(C, a, b, c)
    for a, b, cp, cn, gm in deck.vccs:        # current gm*V(cp,cn) flows from a through the source to b
        for node, sgn in ((a, 1.0), (b, -1.0)):
            i = at(node)
            if i is None:
                continue
            for ctl, s2 in ((cp, 1.0), (cn, -1.0)):
                j = at(ctl)
                if j is not None:
                    G[i, j] += sgn * s2 * gm
    row = n
    for _, a, b in others:
        branch(row, a, b)
        row += 1
    for a, b, cp, cn, mu in deck.vcvs:        # V(a,b) - mu*V(cp,cn) = 0
        branch(row, a, b)
        for ctl, s2 in ((cp, 1.0), (cn, -1.0)):
            j = at(ctl)
            if j is not None:
                G[row, j] -= s2 * mu
        row += 1
    for a, b, ind in deck.inductors:          # V(a,b) - sL*j = 0
        branch(row, a, b)
        C[row, row] -= ind
        row += 1
    drive = row                                # the input's constraint row and its current
    i_in, i_out = index[inp], index[outp]
    G[i_in, drive] += 1
    G[drive, i_in] += 1
    # DC gain with V(in) = 1: the sign of the loop
    rhs = np.zeros(size)
    rhs[drive] = 1.0
    try:
        x = np.linalg.solve(G, rhs)
    except np.linalg.LinAlgError:
        return None
    h0 = x[i_out]
    sign = 1 if h0 >= 0 else -1

    def natural(Gm: np.ndarray) -> tuple[complex, ...]:
        # A singular C gives infinite eigenvalues (QZ returns them as inf or as noise beyond
        # 1e16 rad/s, far above any physical pole of these networks): they are not poles.
        w = eig(Gm, -C, right=False)
        keep = [complex(v) for v in w if np.isfinite(v) and abs(v) < MAX_POLE_RAD_S]
        return tuple(sorted(keep, key=lambda p: (abs(p), p.imag)))

    open_loop = natural(G)
    Gc = G.copy()
    Gc[drive, i_out] += sign                  # V(in) + s*V(out) = 0
    return Poles(open_loop, natural(Gc), sign)


def _drives(v: tuple[str, str, str], node: str) -> bool:
    """A V source between `node` and ground: the input's driver, replaced by the loop closure."""
    _, a, b = v
    return (a == node and b in _GROUND) or (b == node and a in _GROUND)
