"""The closed loop's second batch: asked for only when the first candidates miss, simulated within
the same budget, its repeats dropped (real ngspice throughout)."""

import pytest

from cktflow.circuit import Circuit
from cktflow.flow import design_loop
from cktflow.simulate import simulate
from cktflow.sizing import SerialPool
from cktflow.spec import Bound, Spec

MILLER = "examples/circuits/two_stage_miller.json"


@pytest.fixture(scope="module")
def pool():
    with SerialPool() as p:
        yield p


@pytest.fixture(scope="module")
def circuits(pool):
    """The example Miller op-amp, two variants, and a spec window around the Miller's measured
    gain / UGF / PM (the variants miss it)."""
    miller = Circuit.from_json(open(MILLER).read())
    weak = miller.with_values({(2, "gm"): 1e-6, (3, "gm"): 1e-6})     # ~ -120 dB of gain
    slow = miller.with_values({(4, "C"): 1e-11})                        # UGF down 10 x
    p = simulate([miller], pool)[0].performance
    spec = Spec((Bound("gain_db", min=p.gain_db - 3, max=p.gain_db + 3),
                 Bound("ugf_hz", min=p.ugf_hz / 1.5, max=p.ugf_hz * 1.5),
                 Bound("pm_deg", min=p.pm_deg - 5, max=p.pm_deg + 5)), name="around-miller")
    for c in (weak, slow):
        assert not spec.passes(simulate([c], pool)[0].performance)
    return miller, weak, slow, spec


class Asked:
    def __init__(self, batch):
        self.batch, self.calls = batch, 0

    def __call__(self):
        self.calls += 1
        return self.batch


def test_second_batch_is_simulated_when_the_first_misses(circuits, pool):
    miller, weak, slow, spec = circuits
    more = Asked([weak, miller])                      # weak again: a repeat, dropped
    res = design_loop(spec, [weak, slow], "test", pool, budget=3, top_k=1, more=[("more", more)])
    assert more.calls == 1 and res.second_batch == 1 and res.duplicates == 1
    assert res.simulations == 3 and res.candidates == 3
    assert res.verified and res.verified[0].circuit.canonical_hash() == miller.canonical_hash()


def test_no_second_batch_when_the_first_meets_the_spec(circuits, pool):
    miller, weak, slow, spec = circuits
    more = Asked([slow])
    res = design_loop(spec, [miller, weak], "test", pool, budget=10, top_k=1, more=[("more", more)])
    assert more.calls == 0 and res.second_batch == 0 and res.simulations == 2 and res.verified


def test_second_batch_stays_within_the_budget(circuits, pool):
    miller, weak, slow, spec = circuits
    more = Asked([slow, miller])
    res = design_loop(spec, [weak], "test", pool, budget=2, top_k=1, more=[("more", more)])
    assert more.calls == 1 and res.second_batch == 1 and res.simulations == 2     # miller never ran
    assert not res.verified
    spent = Asked([miller])
    res = design_loop(spec, [weak], "test", pool, budget=1, top_k=1, more=[("more", spent)])
    assert spent.calls == 0 and res.simulations == 1                                 # no room left


def test_sizing_takes_one_topology_at_a_time(circuits, pool):
    """Two near-copies of the Miller rank first, but the second sized circuit is the other topology."""
    miller, weak, slow, spec = circuits
    slower = miller.with_values({(4, "C"): 5e-12})
    other = Circuit.from_json(open("examples/circuits/three_stage_feedforward.json").read())
    first = simulate([slow, slower, other], pool)
    gaps = [spec.shortfall(r.performance if r.ok else None) for r in first]
    assert max(gaps[:2]) < gaps[2]                     # the Miller variants are the two best guesses
    res = design_loop(spec, [slow, slower, other], "test", pool, budget=12, top_k=2, waves=1)
    sized = {o.circuit.topology_hash() for o in res.outcomes if o.sizing is not None}
    assert sized == {miller.topology_hash(), other.topology_hash()}
