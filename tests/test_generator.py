"""The OCB generator's statistics match the Ckt-Bench-101 procedure (ocb-generator.md section 2)."""

import math
from collections import Counter

import pytest

from cktflow.circuit import OcbGenerator
from cktflow.circuit.basis import STAGE_TYPES
from cktflow.circuit.generator import K_VALUES_PER_TOPOLOGY

N = 3000


def within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count / n - p) <= sigmas * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def topologies():
    gen = OcbGenerator(seed=123)
    return [gen.draw_topology() for _ in range(N)]


def test_stage_count_frequency(topologies):
    three = sum(4 in t.positions for t in topologies)
    assert within(three, N, 0.8)


@pytest.mark.parametrize("pos", [5, 6, 7])
def test_side_slot_frequencies(topologies, pos):
    assert within(sum(pos in t.positions for t in topologies), N, 0.6)


def test_stage_types_uniform(topologies):
    counts = Counter(t.types[t.positions.index(2)] for t in topologies)
    assert set(counts) == set(STAGE_TYPES)
    assert all(within(c, N, 0.25) for c in counts.values())


def test_passive_slot_types_and_branch_types(topologies):
    p_types = Counter(t.types[t.positions.index(6)] for t in topologies if 6 in t.positions)
    assert set(p_types) == {2, 3, 4, 5}
    a_types = Counter(t.types[t.positions.index(5)] for t in topologies if 5 in t.positions)
    assert set(a_types) <= set(range(2, 26)) and len(a_types) == 24


def test_branch_anchor_pairs_uniform(topologies):
    for three, n_pairs in ((True, 6), (False, 3)):
        pairs = Counter(frozenset(pair) for t in topologies if (4 in t.positions) == three
                        for slot, pair in t.anchors)
        total = sum(pairs.values())
        assert len(pairs) == n_pairs
        assert all(within(c, total, 1 / n_pairs) for c in pairs.values())
        # S3 never anchors a branch; a branch touching Out always ends there
    for t in topologies:
        for slot, (src, dst) in t.anchors:
            assert "S3" not in (src, dst) and src != "Out"


def test_k20_rule_topology_redrawn_only_every_20th():
    gen = OcbGenerator(seed=9)
    circuits = gen.take(10 * K_VALUES_PER_TOPOLOGY)
    blocks = [circuits[i:i + K_VALUES_PER_TOPOLOGY] for i in range(0, len(circuits), K_VALUES_PER_TOPOLOGY)]
    for block in blocks:
        assert len({c.topology_hash() for c in block}) == 1
        assert len({c.canonical_hash() for c in block}) > 1   # values are redrawn
    assert len({b[0].topology_hash() for b in blocks}) > 5


def test_values_in_ocb_discrete_grid():
    gen = OcbGenerator(seed=4)
    scale = gen.pdk.value_scale
    vs = [v / scale[k] for c in gen.take(400) for _, k, v in c.device_values()]
    assert all(abs(v - round(v)) < 1e-9 and 1 <= round(v) <= 101 for v in vs)
    assert round(min(vs)) == 1 and round(max(vs)) == 101


def test_seed_reproducible():
    a = [c.canonical_hash() for c in OcbGenerator(seed=42).take(60)]
    b = [c.canonical_hash() for c in OcbGenerator(seed=42).take(60)]
    c = [c.canonical_hash() for c in OcbGenerator(seed=43).take(60)]
    assert a == b and a != c
