"""Circuits and their measured specs as tensors, and back.

A circuit becomes a node sequence in topological order (In first, Out last), each node with its
type, position and device values, plus the predecessor matrix. Values are log-normalised per
device kind onto [0, 1] by the PDK range, so that the decoder's sigmoid output is always a legal
value. A measured `Performance` becomes two spec forms:

- the paper's classes: floors of the OCB label normalisation (ocb-generator.md sections 5 and 7):
  gain = floor(dB/100 + 1.19531), pm = floor(-ocb_pm/90 + 2.00001), bw = floor(UGF/1e9 + 1e-5);
- the continuous vector users' specs map to: gain_db/100, log10(UGF) - 9, design pm_deg/90.

Circuits without a unity-gain crossing have neither and are left out (the OCB placeholder rows).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..circuit import Circuit, Node, load_pdk
from ..circuit.ocb_labels import normalise
from ..circuit.basis import DEVICE_KINDS, NUM_POSITIONS, NUM_TYPES, OUT_TYPE, subgraph_type
from ..circuit.pdk import Pdk
from spice_sim.measure import Performance

__all__ = ["MAX_NODES", "CLASS_SIZES", "SPEC_DIM", "Example", "spec_classes", "spec_vector",
           "normalise_value", "denormalise_value", "CircuitTensors", "encode_circuits", "decode_circuit",
           "TensorData", "build_tensor_data", "load_examples", "build_ocb_examples", "usable_vector", "USABLE_DIM",
           "PEAKING_SCALE_DB"]

log = logging.getLogger(__name__)

#: Longest node sequence (In, Out, three stages, three side slots).
MAX_NODES = NUM_POSITIONS
#: Number of classes of the gain, bandwidth (UGF) and phase-margin labels (Ckt-Bench-101).
CLASS_SIZES = (4, 32, 6)
#: Length of the continuous spec vector (gain, log-UGF, design PM).
SPEC_DIM = 3
#: Scales of the continuous spec vector: dB per unit, log10(Hz) offset, degrees per unit.
GAIN_SCALE_DB, LOG_UGF_OFFSET, PM_SCALE_DEG = 100.0, 9.0, 90.0
#: The usable-in-feedback labels: pm_min_deg / PM_SCALE_DEG, peaking_db / PEAKING_SCALE_DB, stable.
USABLE_DIM, PEAKING_SCALE_DB = 3, 20.0


@dataclass(frozen=True)
class Example:
    """One labelled circuit: what the model trains and is tested on."""
    circuit: Circuit
    performance: Performance
    split: str          # "train" or "test"


# ---- specs -------------------------------------------------------------------------------------
def spec_classes(perf: Performance | None) -> tuple[int, int, int] | None:
    """(gain, bw, pm) class indices of the paper, or None when the circuit has no label.

    Circuits with a negative normalised phase margin are dropped, as in the paper; indices above
    the table size are clipped into the last class.
    """
    if perf is None or perf.gain_db is None or perf.ugf_hz is None or perf.ocb_pm_deg is None:
        return None
    gain, pm, bw = (math.floor(x) for x in normalise(perf.gain_db, perf.ocb_pm_deg, perf.ugf_hz))
    if pm < 0 or gain < 0:
        return None
    return (min(gain, CLASS_SIZES[0] - 1), min(bw, CLASS_SIZES[1] - 1), min(pm, CLASS_SIZES[2] - 1))


def spec_vector(perf: Performance | None) -> tuple[float, float, float] | None:
    """The continuous, normalised spec (gain_db/100, log10 UGF - 9, pm_deg/90), or None."""
    if perf is None or perf.gain_db is None or perf.ugf_hz is None or perf.pm_deg is None or perf.ugf_hz <= 0:
        return None
    return (perf.gain_db / GAIN_SCALE_DB, math.log10(perf.ugf_hz) - LOG_UGF_OFFSET, perf.pm_deg / PM_SCALE_DEG)


# ---- device values -----------------------------------------------------------------------------
def normalise_value(kind: str, value: float, pdk: Pdk) -> float:
    lo, hi = pdk.value_range[kind]
    return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))


def denormalise_value(kind: str, x: float, pdk: Pdk) -> float:
    lo, hi = pdk.value_range[kind]
    x = min(max(float(x), 0.0), 1.0)
    return float(math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo))))


# ---- circuits <-> tensors ----------------------------------------------------------------------
@dataclass
class CircuitTensors:
    """A batch of circuits, padded to MAX_NODES. L = MAX_NODES, K = len(DEVICE_KINDS)."""
    types: torch.Tensor      # (B, L) long, 0 where padded
    pos: torch.Tensor        # (B, L) long
    values: torch.Tensor     # (B, L, K) float in [0, 1], 0 where a kind is absent
    vmask: torch.Tensor      # (B, L, K) bool: the node's type has this device
    adj: torch.Tensor        # (B, L, L) float: adj[b, i, j] = 1 when j -> i (j < i)
    nmask: torch.Tensor      # (B, L) bool: a real node

    def to(self, device) -> "CircuitTensors":
        return CircuitTensors(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def index(self, idx) -> "CircuitTensors":
        return CircuitTensors(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def __len__(self) -> int:
        return self.types.shape[0]


#: Which device kinds each type has, as a (NUM_TYPES, K) bool table.
KIND_MASK = torch.tensor([[k in subgraph_type(t).devices for k in DEVICE_KINDS] for t in range(NUM_TYPES)])


def encode_circuits(circuits: Sequence[Circuit], pdk: Pdk | None = None) -> CircuitTensors:
    pdk = pdk or load_pdk()
    b, n, k = len(circuits), MAX_NODES, len(DEVICE_KINDS)
    types = torch.zeros(b, n, dtype=torch.long)
    pos = torch.zeros(b, n, dtype=torch.long)
    values = torch.zeros(b, n, k)
    adj = torch.zeros(b, n, n)
    nmask = torch.zeros(b, n, dtype=torch.bool)
    for bi, c in enumerate(circuits):
        if len(c.nodes) > n:
            raise ValueError(f"circuit has {len(c.nodes)} nodes; the model takes at most {n}")
        order = c.topological_order()
        where = {old: new for new, old in enumerate(order)}
        for new, old in enumerate(order):
            node = c.nodes[old]
            types[bi, new], pos[bi, new], nmask[bi, new] = node.type, node.pos, True
            for ki, kind in enumerate(DEVICE_KINDS):
                if kind in node.values:
                    values[bi, new, ki] = normalise_value(kind, node.values[kind], pdk)
        for s, d in c.edges:
            adj[bi, where[d], where[s]] = 1.0
    vmask = KIND_MASK[types] & nmask[..., None]
    return CircuitTensors(types, pos, values.clamp(0, 1), vmask, adj, nmask)


def decode_circuit(types: Sequence[int], pos: Sequence[int], values: np.ndarray, adj: np.ndarray,
                   pdk: Pdk | None = None) -> Circuit:
    """One decoded node sequence -> Circuit (may be invalid; the caller checks validity).

    Edges come from adj[i, j] (j -> i); a node left without a successor is wired to the output
    node, as CktGen's decoder does.
    """
    pdk = pdk or load_pdk()
    nodes = []
    for t, p, v in zip(types, pos, values):
        kinds = subgraph_type(int(t)).devices
        vals = {kind: denormalise_value(kind, v[DEVICE_KINDS.index(kind)], pdk) for kind in kinds}
        nodes.append(Node(int(t), int(p), vals))
    n = len(nodes)
    edges = {(j, i) for i in range(n) for j in range(i) if adj[i, j] > 0.5}
    outs = [i for i in range(n) if nodes[i].type == OUT_TYPE]
    if outs:
        o = outs[-1]
        sources = {s for s, _ in edges}
        edges |= {(i, o) for i in range(o) if i not in sources}
    return Circuit(tuple(nodes), tuple(sorted(edges)))


@dataclass
class TensorData:
    """Everything the model trains on, for one split."""
    circuits: list[Circuit]
    x: CircuitTensors
    classes: torch.Tensor    # (B, 3) long: gain, bw, pm class
    spec: torch.Tensor       # (B, SPEC_DIM) float: the continuous spec vector
    hashes: list[str]
    label_pm: torch.Tensor | None = None    # (B,) float: the OCB label PM in degrees (the pm class's source)
    # (B, 3) float: usable-in-feedback labels pm_min_deg/90, peaking_db/20, stable (1/0); NaN where
    # a label lacks them (measured before the stability metrics)
    usable: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.circuits)

    def subset(self, idx: Sequence[int]) -> "TensorData":
        t = torch.as_tensor(list(idx), dtype=torch.long)
        return TensorData([self.circuits[i] for i in idx], self.x.index(t), self.classes[t], self.spec[t],
                          [self.hashes[i] for i in idx], None if self.label_pm is None else self.label_pm[t],
                          None if self.usable is None else self.usable[t])


def build_tensor_data(examples: Iterable[Example], pdk: Pdk | None = None) -> TensorData:
    """Label and encode examples; circuits without a label (no UGF, negative pm class) are dropped."""
    keep, classes, specs, label_pm, usable = [], [], [], [], []
    for ex in examples:
        cls, vec = spec_classes(ex.performance), spec_vector(ex.performance)
        if cls is None or vec is None or len(ex.circuit.nodes) > MAX_NODES:
            continue
        keep.append(ex.circuit)
        classes.append(cls)
        specs.append(vec)
        label_pm.append(ex.performance.ocb_pm_deg)
        usable.append(usable_vector(ex.performance))
    return TensorData(keep, encode_circuits(keep, pdk), torch.tensor(classes, dtype=torch.long).reshape(-1, 3),
                      torch.tensor(specs, dtype=torch.float32).reshape(-1, SPEC_DIM),
                      [c.canonical_hash() for c in keep], torch.tensor(label_pm, dtype=torch.float32),
                      torch.tensor(usable, dtype=torch.float32).reshape(-1, USABLE_DIM))


def usable_vector(perf: Performance) -> tuple[float, float, float]:
    """The usable-in-feedback labels in model units: pm_min_deg/90, peaking_db/20, stable as 1/0
    (NaN for a metric the label lacks)."""
    def scaled(v, scale):
        return math.nan if v is None else float(v) / scale
    return (scaled(perf.pm_min_deg, PM_SCALE_DEG), scaled(perf.peaking_db, PEAKING_SCALE_DB),
            math.nan if perf.stable is None else float(perf.stable))


# ---- where examples come from -----------------------------------------------------------------
def load_examples(db: str | Path | None = None, n: int = 10000, seed: int = 1) -> list[Example]:
    """Labelled circuits from the dataset store; without one, a cached regeneration of the set.

    The store (cktflow.dataset, built by `cktflow dataset build`) is the source of truth. Until it
    exists, `build_ocb_examples` regenerates Ckt-Bench-101 the same way (and caches it as JSONL).
    """
    try:
        from ..dataset import Dataset, default_db_path  # type: ignore[attr-defined]
    except ImportError:
        Dataset = None
    if Dataset is not None:
        path = Path(db) if db else Path(default_db_path())
        if path.exists():
            from ..dataset import stale_count
            with Dataset.open(path) as ds:
                out = [Example(r.circuit, r.performance, r.split) for r in ds.records()
                       if r.performance is not None and r.split in ("train", "test")]
                stale = stale_count(ds)
            log.info("loaded %d labelled circuits from %s", len(out), path)
            if stale:
                log.warning("%s: %d circuit(s) were labelled by an older testbench and lack the stability "
                            "metrics; run `cktflow dataset migrate` to measure them again", path, stale)
            return out
        if db:
            raise FileNotFoundError(f"dataset {path} does not exist (build it with `cktflow dataset build`)")
    elif db:
        raise ValueError("--db needs the dataset store (cktflow.dataset), which is not installed here")
    from ..cache import cache_dir
    from ..simulate import testbench_version
    # the testbench in the name: a cache labelled before the stability metrics is not reused
    cache = cache_dir() / f"ocb101_n{n}_seed{seed}_{testbench_version()}.jsonl"
    if cache.exists():
        return _read_jsonl(cache)
    examples = build_ocb_examples(n, seed)
    _write_jsonl(cache, examples)
    return examples


def build_ocb_examples(n: int, seed: int, test_share: float = 0.1, progress: bool = False) -> list[Example]:
    """Generate n OCB circuits, simulate each in ngspice and split by whole 20-circuit topology blocks."""
    from ..circuit import OcbGenerator
    from ..circuit.generator import K_VALUES_PER_TOPOLOGY
    from ..simulate import simulate

    circuits = OcbGenerator(seed=seed).take(n)
    blocks = (n + K_VALUES_PER_TOPOLOGY - 1) // K_VALUES_PER_TOPOLOGY
    perm = np.random.RandomState(seed).permutation(blocks)
    test_blocks = set(perm[: int(round(blocks * test_share))].tolist())
    out = []
    for i, (c, res) in enumerate(zip(circuits, simulate(circuits, progress=progress))):
        if res.ok:
            split = "test" if i // K_VALUES_PER_TOPOLOGY in test_blocks else "train"
            out.append(Example(c, res.performance, split))
    return out


def _write_jsonl(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for ex in examples:
            f.write(json.dumps({"circuit": ex.circuit.to_dict(), "performance": ex.performance.to_dict(),
                                "split": ex.split}) + "\n")
    tmp.replace(path)


def _read_jsonl(path: Path) -> list[Example]:
    out = []
    with path.open() as f:
        for line in f:
            d = json.loads(line)
            out.append(Example(Circuit.from_dict(d["circuit"]), Performance.from_dict(d["performance"]), d["split"]))
    return out
