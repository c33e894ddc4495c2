"""cktflow.model.usable: the usable-in-feedback training circuits come from the training side only."""

from click.testing import CliRunner

from cli import main
from cktflow.circuit import OcbGenerator
from cktflow.model.data import Example
from cktflow.model.usable import USABLE_SEEDS, held_out_topologies, is_usable, mix, random_examples
from spice_sim.measure import Performance


def _perf(**over):
    base = dict(gain_db=60.0, ugf_hz=1e8, pm_deg=70.0, ocb_pm_deg=-110.0, pm_min_deg=70.0, peaking_db=0.0,
                stable=True)
    return Performance(**{**base, **over})


def test_is_usable_reads_the_implicit_targets_of_its_own_window():
    assert is_usable(_perf())
    assert is_usable(_perf(pm_min_deg=61.0))            # within the window's 10 deg PM floor
    assert not is_usable(_perf(pm_min_deg=55.0))        # conditionally stable below the UGF
    assert not is_usable(_perf(stable=False))
    assert not is_usable(_perf(peaking_db=6.5))
    assert not is_usable(_perf(pm_min_deg=None))        # measured before the stability metrics
    assert not is_usable(_perf(ugf_hz=None))            # no label to train on


def test_random_draws_never_hold_an_excluded_topology_and_use_their_own_seeds():
    assert 1 not in USABLE_SEEDS and not any(1000 <= s <= 1100 for s in USABLE_SEEDS)
    drawn = OcbGenerator(seed=USABLE_SEEDS[0]).take(40)
    banned = {drawn[0].topology_hash()}          # the first K = 20 draws share one topology
    got = random_examples(40, banned, seeds=USABLE_SEEDS[:1])
    assert got and len(got) <= 20 and all(e.circuit.topology_hash() not in banned for e in got)
    # every measured circuit comes back, usable or not (the predictor learns from all of them)
    assert {e.circuit.canonical_hash() for e in got} <= {c.canonical_hash() for c in drawn[20:]}


def test_held_out_topologies_and_the_mix():
    c = OcbGenerator(seed=5).take(60)
    ex = [Example(c[i], _perf(stable=i % 3 == 0), "test" if i >= 40 else "train") for i in range(60)]
    assert held_out_topologies(ex) == {c[40].topology_hash()}
    train = [e for e in ex if e.split == "train"]
    usable = [e for e in train if is_usable(e.performance)]
    mixed = mix(train, usable, share=0.5, seed=1)
    assert len(mixed) == 2 * len(usable) and sum(is_usable(e.performance) for e in mixed) == len(usable)
    assert len(mix(train, usable, share=1.0)) == len(usable)


def test_cli_usable_is_its_own_run():
    r = CliRunner().invoke(main, ["train", "--usable", "--finetune"])
    assert r.exit_code == 2 and "separate runs" in r.output
    r = CliRunner().invoke(main, ["train", "--usable-decodes", "10"])
    assert r.exit_code == 2 and "need --usable" in r.output
