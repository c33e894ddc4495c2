"""Validity of a circuit: CktGen's definition plus the structure the OCB netlister can realise.

CktGen calls a generated graph valid when it is a DAG with exactly one input and one output, no
dangling node, and no feedback-gm type on the main path (positions 2-4). cktflow adds what a
netlist needs: the main path In -> S1 -> S2 (-> S3) -> Out at positions 2, 3, (4); every side
node (positions 5-7) a two-terminal network with one predecessor (In or a stage) and one successor
(a stage or Out) on different nets; device values present for exactly the type's devices and
inside the PDK's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx

from .basis import (BRANCH_POSITIONS, IN_TYPE, OUT_TYPE, POS_IN, POS_OUT, STAGE_POSITIONS)
from .ir import Circuit
from .pdk import Pdk, load_pdk

__all__ = ["Structure", "analyse", "validity_problems", "is_valid", "InvalidCircuitError"]


class InvalidCircuitError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid circuit: " + "; ".join(problems))


@dataclass
class Structure:
    """What realisation needs to know: the main path and the net at each node's output."""
    input: int | None = None
    output: int | None = None
    stages: list[int] = field(default_factory=list)
    nets: dict[int, str] = field(default_factory=dict)   # net driven by / standing for a node
    problems: list[str] = field(default_factory=list)


def _name(c: Circuit, i: int) -> str:
    n = c.nodes[i]
    return f"node {i} ({n.kind.name} at position {n.pos})"


def analyse(c: Circuit, pdk: Pdk | None = None) -> Structure:
    pdk = pdk or load_pdk()
    s = Structure()
    p = s.problems
    ins = [i for i, n in enumerate(c.nodes) if n.type == IN_TYPE]
    outs = [i for i, n in enumerate(c.nodes) if n.type == OUT_TYPE]
    if len(ins) != 1:
        p.append(f"needs exactly one input node (type 0), found {len(ins)}")
    if len(outs) != 1:
        p.append(f"needs exactly one output node (type 1), found {len(outs)}")
    for i, n in enumerate(c.nodes):
        if n.type == IN_TYPE and n.pos != POS_IN or n.type == OUT_TYPE and n.pos != POS_OUT:
            p.append(f"{_name(c, i)}: In must sit at position 0 and Out at position 1")
        if n.type not in (IN_TYPE, OUT_TYPE) and n.pos in (POS_IN, POS_OUT):
            p.append(f"{_name(c, i)}: positions 0 and 1 are reserved for In and Out")
        expected = set(n.kind.devices)
        if set(n.values) != expected:
            p.append(f"{_name(c, i)}: needs values for {sorted(expected) or 'no devices'}, has {sorted(n.values)}")
        for kind, v in n.values.items():
            if not math.isfinite(v) or v <= 0:
                p.append(f"{_name(c, i)}: {kind} = {v} must be a positive finite number")
            elif not pdk.in_range(kind, v):
                lo, hi = pdk.value_range[kind]
                p.append(f"{_name(c, i)}: {kind} = {v:.4g} is outside the PDK range [{lo:.4g}, {hi:.4g}]")
    seen_pos: dict[int, int] = {}
    for i, n in enumerate(c.nodes):
        if n.pos in seen_pos:
            p.append(f"{_name(c, i)}: position {n.pos} is already taken by node {seen_pos[n.pos]}")
        seen_pos.setdefault(n.pos, i)
    g = c.to_networkx()
    if any(s_ == d for s_, d in c.edges):
        p.append("an edge joins a node to itself")
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        p.append("the graph has a cycle: " + " -> ".join(str(e[0]) for e in cycle) + f" -> {cycle[0][0]}")
        return s
    if len(ins) != 1 or len(outs) != 1 or p:
        return s
    s.input, s.output = ins[0], outs[0]
    if c.predecessors(s.input):
        p.append("the input node has incoming edges")
    if c.successors(s.output):
        p.append("the output node has outgoing edges")
    reach_from_in = nx.descendants(g, s.input) | {s.input}
    reach_out = nx.ancestors(g, s.output) | {s.output}
    for i in range(len(c.nodes)):
        if i not in reach_from_in:
            p.append(f"{_name(c, i)} is not reachable from the input (dangling)")
        elif i not in reach_out:
            p.append(f"{_name(c, i)} does not lead to the output (dangling)")
    if p:
        return s

    # Main path: stages at positions 2, 3 (, 4) chained In -> S1 -> S2 (-> S3) -> Out.
    stage_at = {c.nodes[i].pos: i for i in range(len(c.nodes)) if c.nodes[i].pos in STAGE_POSITIONS}
    stages = [stage_at[q] for q in STAGE_POSITIONS if q in stage_at]
    if [c.nodes[i].pos for i in stages] not in ([2, 3], [2, 3, 4]):
        p.append(f"the main path needs stages at positions 2, 3 and optionally 4; found {sorted(stage_at)}")
        return s
    for i in stages:
        t = c.nodes[i].kind
        if not t.has_gm or t.feedback:
            p.append(f"{_name(c, i)}: a main-path stage must be a feedforward gm type, not {t.name}")
    chain = [s.input] + stages + [s.output]
    for a, b in zip(chain, chain[1:]):
        if (a, b) not in c.edges:
            p.append(f"the main path is broken: no edge {_name(c, a)} -> {_name(c, b)}")
    if p:
        return s
    s.stages = stages
    s.nets = {s.input: "in", s.output: "out"}
    for k, i in enumerate(stages):
        s.nets[i] = "out" if i == stages[-1] else f"n{k + 1}"
    main = set(chain)
    anchors_in = {s.input, *stages}
    anchors_out = {s.output, *stages}
    for a, b in c.edges:
        if a in main and b in main and chain.index(b) != chain.index(a) + 1:
            p.append(f"edge {_name(c, a)} -> {_name(c, b)} bypasses the main path; "
                     "connect them through a side branch")
    for i in range(len(c.nodes)):
        if i in main:
            continue
        if c.nodes[i].pos not in BRANCH_POSITIONS:
            p.append(f"{_name(c, i)}: side branches sit at positions 5-7")
            continue
        preds, succs = c.predecessors(i), c.successors(i)
        if len(preds) != 1 or len(succs) != 1:
            p.append(f"{_name(c, i)}: a side branch needs one predecessor and one successor, "
                     f"has {len(preds)} and {len(succs)}")
            continue
        if preds[0] not in anchors_in or succs[0] not in anchors_out:
            p.append(f"{_name(c, i)}: a side branch runs from In or a stage to a stage or Out")
            continue
        if s.nets[preds[0]] == s.nets[succs[0]]:
            p.append(f"{_name(c, i)}: both ends are on net '{s.nets[preds[0]]}' (shorted)")
    return s


def validity_problems(c: Circuit, pdk: Pdk | None = None) -> list[str]:
    """Every reason the circuit is not valid, in words; empty when it is valid."""
    return analyse(c, pdk).problems


def is_valid(c: Circuit, pdk: Pdk | None = None) -> bool:
    return not validity_problems(c, pdk)
