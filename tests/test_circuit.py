"""Circuit IR: JSON round trip, canonical hash, validity messages."""

import json

import pytest

from cktflow.circuit import (Circuit, CircuitFormatError, Node, OcbGenerator, one_topology_at_a_time,
                             validity_problems)


def miller() -> Circuit:
    return Circuit((Node(0, 0), Node(1, 1), Node(6, 2, {"gm": 1e-3}), Node(6, 3, {"gm": 10e-3}),
                    Node(3, 6, {"C": 1e-12})), ((0, 2), (2, 3), (3, 1), (2, 4), (4, 1)))


def test_json_round_trip_of_generated_circuits():
    for c in OcbGenerator(seed=3).take(200):
        again = Circuit.from_json(c.to_json())
        assert again == c
        assert again.canonical_hash() == c.canonical_hash()


def test_hash_invariant_under_node_order():
    gen = OcbGenerator(seed=5)
    for c in gen.take(100):
        n = len(c.nodes)
        for order in (list(reversed(range(n))), [1, 0] + list(range(2, n))[::-1]):
            shuffled = c.reordered(order)
            assert shuffled.nodes != c.nodes or n < 2
            assert shuffled.canonical_hash() == c.canonical_hash()


def test_hash_differs_for_different_circuits():
    c = miller()
    changed_value = c.with_values({(4, "C"): 2e-12})
    changed_type = Circuit(c.nodes[:3] + (Node(7, 3, {"gm": 10e-3}),) + c.nodes[4:], c.edges)
    rewired = Circuit(c.nodes, ((0, 2), (2, 3), (3, 1), (0, 4), (4, 1)))
    hashes = {x.canonical_hash() for x in (c, changed_value, changed_type, rewired)}
    assert len(hashes) == 4
    assert c.topology_hash() == changed_value.topology_hash()
    assert c.topology_hash() != rewired.topology_hash()


def test_hashes_of_many_generated_circuits_are_distinct():
    cs = OcbGenerator(seed=11).take(400)
    assert len({c.canonical_hash() for c in cs}) == len({json.dumps(c.to_dict(), sort_keys=True) for c in cs})


def test_hash_ignores_float_noise():
    c = miller()
    assert c.with_values({(2, "gm"): 1e-3 * (1 + 1e-12)}).canonical_hash() == c.canonical_hash()


def test_generated_circuits_are_valid():
    assert all(not validity_problems(c) for c in OcbGenerator(seed=2).take(1000))


@pytest.mark.parametrize("mutate, message", [
    (lambda c: Circuit(c.nodes, c.edges + ((1, 2),)), "cycle"),
    (lambda c: Circuit(c.nodes + (Node(2, 7, {"R": 1e6}),), c.edges), "dangling"),
    (lambda c: Circuit(c.nodes[:3] + (Node(8, 3, {"gm": 1e-3}),) + c.nodes[4:], c.edges), "feedforward gm"),
    (lambda c: Circuit(c.nodes + (Node(0, 0),), c.edges), "exactly one input"),
    (lambda c: c.with_values({(2, "gm"): 5.0}), "outside the PDK range"),
    (lambda c: c.with_values({(4, "C"): -1e-12}), "positive"),
    (lambda c: Circuit(c.nodes, ((0, 2), (2, 3), (3, 1), (3, 4), (4, 1))), "shorted"),
    (lambda c: Circuit(c.nodes, c.edges + ((0, 3),)), "bypasses the main path"),
    (lambda c: Circuit(c.nodes[:4] + (Node(3, 4, {"C": 1e-12}),), c.edges), "main path"),
])
def test_validity_explains_what_is_wrong(mutate, message):
    assert validity_problems(miller()) == []
    problems = validity_problems(mutate(miller()))
    assert problems, "the mutated circuit must be invalid"
    assert any(message in p for p in problems), problems


def test_missing_values_are_named():
    c = Circuit((Node(0, 0), Node(1, 1), Node(6, 2, {}), Node(6, 3, {"gm": 1e-3})), ((0, 2), (2, 3), (3, 1)))
    assert any("needs values for ['gm']" in p for p in validity_problems(c))


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "JSON object"),
    ('{"nodes": [], "edges": [], "colour": 1}', "unknown circuit field"),
    ('{"nodes": [{"type": 99, "pos": 2}], "edges": []}', "nodes[0]: subgraph type"),
    ('{"nodes": [{"type": 6, "pos": 2, "values": {"L": 1}}], "edges": []}', "unknown device kind"),
    ('{"nodes": [{"type": 0, "pos": 0}], "edges": [[0, 5]]}', "names node 5"),
    ("{nope", "not valid JSON"),
])
def test_bad_json_is_rejected_with_a_message(text, message):
    with pytest.raises(CircuitFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Circuit.from_json(text)


def test_one_topology_at_a_time_keeps_rank_order_within_each_round():
    a1, a2, a3 = (miller().with_values({(4, "C"): v}) for v in (1e-12, 2e-12, 3e-12))
    other = Circuit.from_json(open("examples/circuits/three_stage_feedforward.json").read())
    assert other.topology_hash() != a1.topology_hash()
    node, kind, value = other.device_values()[0]
    b1, b2 = other, other.with_values({(node, kind): 2 * value})
    assert one_topology_at_a_time([a1, a2, b1, a3, b2]) == [a1, b1, a2, b2, a3]
    # on indices, with the topology looked up
    ranked = [a1, a2, b1]
    assert one_topology_at_a_time([0, 1, 2], lambda i: ranked[i].topology_hash()) == [0, 2, 1]
    assert one_topology_at_a_time([]) == []
