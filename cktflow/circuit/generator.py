"""Seedable OCB-style random circuit generator (the Ckt-Bench-101 procedure).

Follows shared/design/ocb-generator.md section 2-3: slots drawn in table order, branch anchors
drawn with Python's `random`, device values drawn with numpy, and the K = 20 rule (the topology
is redrawn only every 20th circuit; values are redrawn for every circuit).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .basis import BRANCH_TYPES, IN_TYPE, OUT_TYPE, PASSIVE_TYPES, STAGE_TYPES, subgraph_type
from .ir import Circuit, Node
from .pdk import Pdk, load_pdk

__all__ = ["Topology", "OcbGenerator", "K_VALUES_PER_TOPOLOGY", "SLOT_PROBABILITIES"]

#: Circuits per topology draw (the K = 20 rule).
K_VALUES_PER_TOPOLOGY = 20

#: (slot, position, P(present), types drawn uniformly), in draw order.
SLOT_PROBABILITIES = (
    ("S1", 2, 1.0, STAGE_TYPES),
    ("S2", 3, 1.0, STAGE_TYPES),
    ("S3", 4, 0.8, STAGE_TYPES),
    ("A", 5, 0.6, BRANCH_TYPES),
    ("P", 6, 0.6, PASSIVE_TYPES),
    ("B", 7, 0.6, BRANCH_TYPES),
)


@dataclass(frozen=True)
class Topology:
    """Types at positions and edges between indices (0 = In, 1 = Out, then slots in table order)."""
    types: tuple[int, ...]
    positions: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]
    anchors: tuple[tuple[str, tuple[str, str]], ...]   # (branch slot, (src, dst)) for the record


class OcbGenerator:
    """Draws Bench-101-style circuits. `mode` is "discrete" (v in 1..101) or "continuous" (0.1 steps).

    >>> gen = OcbGenerator(seed=1)
    >>> c = gen.next()
    """

    def __init__(self, seed: int = 1, mode: str = "discrete", pdk: Pdk | None = None):
        if mode not in ("discrete", "continuous"):
            raise ValueError(f"mode must be 'discrete' or 'continuous', got {mode!r}")
        self.seed = seed
        self.mode = mode
        self.pdk = pdk or load_pdk()
        self._np = np.random.RandomState(seed)
        self._py = random.Random(seed)
        self._counter = 0
        self._topology: Topology | None = None

    @property
    def counter(self) -> int:
        return self._counter

    def draw_topology(self) -> Topology:
        rng = self._np
        present: dict[str, int] = {}
        for slot, pos, prob, types in SLOT_PROBABILITIES:
            if rng.uniform() < prob:
                present[slot] = int(types[rng.randint(len(types))])
        index = {"In": 0, "Out": 1}
        types, positions = [IN_TYPE, OUT_TYPE], [0, 1]
        for slot, pos, _, _ in SLOT_PROBABILITIES:
            if slot in present:
                index[slot] = len(types)
                types.append(present[slot])
                positions.append(pos)
        three = "S3" in present
        stages = ["S1", "S2", "S3"] if three else ["S1", "S2"]
        edges = [(index["In"], index["S1"])]
        edges += [(index[a], index[b]) for a, b in zip(stages, stages[1:])]
        edges.append((index[stages[-1]], index["Out"]))
        # Branch anchors: two distinct anchors among In, Out, S1 (, S2); S3 never anchors.
        pool = ["In", "Out", "S1", "S2"] if three else ["In", "Out", "S1"]
        anchors = []
        for branch in ("A", "B"):
            if branch not in present:
                continue
            first = self._py.choice(pool)
            second = self._py.choice([x for x in pool if x != first])
            if "Out" in (first, second):
                src, dst = (second if first == "Out" else first), "Out"
            else:
                src, dst = sorted((first, second), key=lambda x: index[x])
            anchors.append((branch, (src, dst)))
            edges += [(index[src], index[branch]), (index[branch], index[dst])]
        if "P" in present:
            src = "S1"
            if three and rng.uniform() < 0.5:
                src = "S2"
            edges += [(index[src], index["P"]), (index["P"], index["Out"])]
        return Topology(tuple(types), tuple(positions), tuple(edges), tuple(anchors))

    def draw_values(self, topo: Topology) -> Circuit:
        rng = self._np
        nodes = []
        for t, pos in zip(topo.types, topo.positions):
            kinds = subgraph_type(t).devices
            if self.mode == "discrete":
                raw = rng.randint(1, 102, size=len(kinds)).astype(float)
            else:
                raw = rng.randint(0, 1001, size=len(kinds)) / 10.0
            values = {k: float(v) * self.pdk.value_scale[k] for k, v in zip(kinds, raw)}
            nodes.append(Node(int(t), int(pos), values))
        return Circuit(tuple(nodes), topo.edges)

    def next(self) -> Circuit:
        if self._counter % K_VALUES_PER_TOPOLOGY == 0:
            self._topology = self.draw_topology()
        self._counter += 1
        return self.draw_values(self._topology)

    def __iter__(self) -> Iterator[Circuit]:
        while True:
            yield self.next()

    def take(self, n: int) -> list[Circuit]:
        return [self.next() for _ in range(n)]
