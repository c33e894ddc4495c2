"""The circuit IR: a DAG of typed subgraph nodes carrying device values in physical units.

A `Circuit` is the one representation of a circuit everywhere in cktflow (generator output, model
output, dataset row, sizing input, export input). It is immutable: edits return a new circuit.
Values are magnitudes in ohm, farad and siemens; the sign of a gm comes from the node's type.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import networkx as nx

from ..units import format_si
from .basis import DEVICE_KINDS, NUM_POSITIONS, subgraph_type

T = TypeVar("T")

__all__ = ["Node", "Circuit", "CircuitFormatError", "one_topology_at_a_time"]

#: Significant digits of device values that take part in the canonical hash: values that agree to
#: this many digits are the same design (float noise from JSON or unit conversion must not matter).
HASH_DIGITS = 6

#: Most nodes a circuit file may hold (an OCB circuit has at most 8: one per position).
MAX_NODES = 64


class CircuitFormatError(ValueError):
    """A circuit description (JSON or dict) that cannot be read at all."""


@dataclass(frozen=True)
class Node:
    type: int
    pos: int
    values: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.type, int) or isinstance(self.type, bool):
            raise CircuitFormatError(f"node type must be an integer, got {self.type!r}")
        try:
            subgraph_type(self.type)
        except ValueError as exc:
            raise CircuitFormatError(str(exc)) from None
        if not isinstance(self.pos, int) or isinstance(self.pos, bool) or not 0 <= self.pos < NUM_POSITIONS:
            raise CircuitFormatError(f"node position must be an integer 0-{NUM_POSITIONS - 1}, got {self.pos!r}")
        clean = {}
        try:        # a JSON file may hold a number, a string or a list where the mapping belongs
            values = dict(self.values)
        except (TypeError, ValueError):
            raise CircuitFormatError(f"device values must map R, C or gm to numbers, got {self.values!r:.80}") from None
        for kind, value in values.items():
            if kind not in DEVICE_KINDS:
                raise CircuitFormatError(f"unknown device kind {kind!r} (expected one of {', '.join(DEVICE_KINDS)})")
            try:
                clean[kind] = float(value)
            except (TypeError, ValueError, OverflowError):     # OverflowError: an integer beyond 1e308
                raise CircuitFormatError(f"value of {kind} must be a number, got {value!r}") from None
        object.__setattr__(self, "values", {k: clean[k] for k in DEVICE_KINDS if k in clean})

    @property
    def kind(self):
        return subgraph_type(self.type)

    def label(self) -> tuple:
        """What identifies the node itself (not its place in the graph) for hashing."""
        vals = tuple((k, float(f"{v:.{HASH_DIGITS}g}")) for k, v in self.values.items())
        return (self.type, self.pos, vals)


@dataclass(frozen=True)
class Circuit:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int], ...]

    def __post_init__(self):
        nodes = tuple(self.nodes)
        for n in nodes:
            if not isinstance(n, Node):
                raise CircuitFormatError(f"nodes must be Node objects, got {type(n).__name__}")
        edges = []
        for e in self.edges:
            try:
                s, d = (int(e[0]), int(e[1]))
            except (TypeError, ValueError, IndexError, KeyError, OverflowError):
                raise CircuitFormatError(f"an edge is a pair of node indices, got {e!r:.80}") from None
            if len(e) != 2:
                raise CircuitFormatError(f"an edge is a pair of node indices, got {e!r}")
            for i in (s, d):
                if not 0 <= i < len(nodes):
                    raise CircuitFormatError(f"edge {e!r} names node {i}, but the circuit has {len(nodes)} nodes")
            edges.append((s, d))
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", tuple(sorted(set(edges))))

    # ---- graph queries -------------------------------------------------------------------------
    def predecessors(self, i: int) -> list[int]:
        return [s for s, d in self.edges if d == i]

    def successors(self, i: int) -> list[int]:
        return [d for s, d in self.edges if s == i]

    def to_networkx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for i, n in enumerate(self.nodes):
            g.add_node(i, type=n.type, pos=n.pos, values=dict(n.values))
        g.add_edges_from(self.edges)
        return g

    def topological_order(self) -> list[int]:
        """Node indices in a deterministic topological order (ties broken by position, then index)."""
        g = self.to_networkx()
        return list(nx.lexicographical_topological_sort(g, key=lambda i: (self.nodes[i].pos, i)))

    def index_of_pos(self, pos: int) -> int | None:
        for i, n in enumerate(self.nodes):
            if n.pos == pos:
                return i
        return None

    # ---- editing -------------------------------------------------------------------------------
    def with_values(self, values: Mapping[tuple[int, str], float]) -> "Circuit":
        """A copy with some device values replaced: {(node index, kind): value}."""
        nodes = list(self.nodes)
        for (i, kind), v in values.items():
            n = nodes[i]
            if kind not in n.values:
                raise KeyError(f"node {i} (type {n.type}) has no {kind}")
            nodes[i] = Node(n.type, n.pos, {**n.values, kind: float(v)})
        return Circuit(tuple(nodes), self.edges)

    def device_values(self) -> list[tuple[int, str, float]]:
        """Every device value as (node index, kind, value), in node then kind order."""
        return [(i, k, v) for i, n in enumerate(self.nodes) for k, v in n.values.items()]

    def reordered(self, order: Iterable[int]) -> "Circuit":
        """The same circuit with its nodes listed in `order` (a permutation of the indices)."""
        order = list(order)
        if sorted(order) != list(range(len(self.nodes))):
            raise ValueError("order must be a permutation of the node indices")
        new_index = {old: new for new, old in enumerate(order)}
        return Circuit(tuple(self.nodes[i] for i in order),
                       tuple((new_index[s], new_index[d]) for s, d in self.edges))

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [{"type": n.type, "pos": n.pos, "values": dict(n.values)} for n in self.nodes],
            "edges": [list(e) for e in self.edges],
        }

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, data: Any) -> "Circuit":
        if not isinstance(data, dict):
            raise CircuitFormatError(f"a circuit is a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"nodes", "edges", "name", "meta"}
        if unknown:
            raise CircuitFormatError(f"unknown circuit field(s): {', '.join(sorted(unknown))}")
        for key in ("nodes", "edges"):
            if not isinstance(data.get(key), list):
                raise CircuitFormatError(f"circuit field '{key}' must be a list")
        if len(data["nodes"]) > MAX_NODES:    # hashing costs ~n^2 * edges: a huge file would never finish
            raise CircuitFormatError(f"a circuit has at most {MAX_NODES} nodes, this one {len(data['nodes'])}")
        nodes = []
        for i, nd in enumerate(data["nodes"]):
            if not isinstance(nd, dict):
                raise CircuitFormatError(f"nodes[{i}] must be an object with type, pos and values")
            extra = set(nd) - {"type", "pos", "values"}
            if extra:
                raise CircuitFormatError(f"nodes[{i}]: unknown field(s) {', '.join(sorted(extra))}")
            try:
                nodes.append(Node(nd.get("type"), nd.get("pos"), nd.get("values") or {}))
            except CircuitFormatError as exc:
                raise CircuitFormatError(f"nodes[{i}]: {exc}") from None
        for k, e in enumerate(data["edges"]):   # JSON: exactly two integers (not "01", 0.5 or true)
            if not (isinstance(e, list) and len(e) == 2
                    and all(isinstance(i, int) and not isinstance(i, bool) for i in e)):
                raise CircuitFormatError(f"edges[{k}] must be a pair of node indices, got {e!r:.80}")
        return cls(tuple(nodes), tuple(tuple(e) for e in data["edges"]))

    @classmethod
    def from_json(cls, text: str) -> "Circuit":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CircuitFormatError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:   # an integer of > 4300 digits; thousands of nested [ or {
            raise CircuitFormatError(f"not valid JSON: {'nested too deeply' if isinstance(exc, RecursionError) else exc}"
                                     ) from None
        return cls.from_dict(data)

    # ---- identity ------------------------------------------------------------------------------
    def canonical_order(self) -> list[int]:
        """A node order that depends only on the circuit, not on how its nodes were listed."""
        n = len(self.nodes)
        preds = [sorted(self.predecessors(i)) for i in range(n)]
        succs = [sorted(self.successors(i)) for i in range(n)]
        # Weisfeiler-Lehman colour refinement over node labels and in/out neighbourhoods.
        colour = _rank([self.nodes[i].label() for i in range(n)])
        for _ in range(n):
            sig = [(colour[i], tuple(sorted(colour[p] for p in preds[i])),
                    tuple(sorted(colour[s] for s in succs[i]))) for i in range(n)]
            new = _rank(sig)
            if len(set(new)) == len(set(colour)):
                break
            colour = new
        # Nodes still tied are interchangeable as far as WL sees; try their permutations and keep
        # the lexicographically smallest serialisation (circuits are small, ties are rare).
        classes: dict[int, list[int]] = {}
        for i in range(n):
            classes.setdefault(colour[i], []).append(i)
        groups = [classes[c] for c in sorted(classes)]
        best = None
        count = 0
        # product() materialises each iterable first: all k! orders of a group of k tied nodes (a
        # hostile file with 20 equal nodes never returned). Only the first 5040 products are tried,
        # and they use at most the first 5040 orders of any group, so the cap changes no hash.
        for perm in itertools.product(*(itertools.islice(itertools.permutations(g), 5040) for g in groups)):
            order = [i for g in perm for i in g]
            key = self._serial(order)
            if best is None or key < best[0]:
                best = (key, order)
            count += 1
            if count >= 5040:
                break
        return best[1]

    def _serial(self, order: list[int]) -> tuple:
        pos = {old: new for new, old in enumerate(order)}
        return (tuple(self.nodes[i].label() for i in order),
                tuple(sorted((pos[s], pos[d]) for s, d in self.edges)))

    def canonical_hash(self) -> str:
        """Equal for the same circuit whatever the node order; different for any other circuit."""
        key = self._serial(self.canonical_order())
        return hashlib.sha256(repr(key).encode()).hexdigest()[:32]

    def topology_hash(self) -> str:
        """Like canonical_hash, but ignoring device values: identifies the topology alone."""
        bare = Circuit(tuple(Node(nd.type, nd.pos, {k: 1.0 for k in nd.values}) for nd in self.nodes), self.edges)
        return bare.canonical_hash()

    def __str__(self) -> str:
        parts = []
        for i, nd in enumerate(self.nodes):
            vals = " ".join(f"{k}={format_si(v, sep='')}" for k, v in nd.values.items())
            parts.append(f"{i}:{nd.kind.name}@{nd.pos}" + (f"[{vals}]" if vals else ""))
        return "Circuit(" + ", ".join(parts) + "; " + " ".join(f"{s}->{d}" for s, d in self.edges) + ")"


def _rank(items: list) -> list[int]:
    order = sorted(set(items))
    index = {v: i for i, v in enumerate(order)}
    return [index[v] for v in items]


def one_topology_at_a_time(ranked: Sequence[T], topology: Callable[[T], str] = Circuit.topology_hash) -> list[T]:
    """`ranked` reordered one topology at a time: the best of every topology (in rank order), then
    the second best of each, and so on. Near-copies of one circuit would spend a simulation budget
    on one guess; distinct topologies are distinct guesses. `topology` maps an item to its topology
    (items may be indices into a list of circuits)."""
    groups: dict[str, list[T]] = {}
    for item in ranked:
        groups.setdefault(topology(item), []).append(item)
    out: list[T] = []
    depth = 0
    while len(out) < len(ranked):
        out += [g[depth] for g in groups.values() if len(g) > depth]
        depth += 1
    return out
