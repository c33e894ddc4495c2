"""Sizing with real ngspice: reachable targets are met, unreachable ones are reported as such."""

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner

from cktflow.circuit import Circuit
from cktflow.simulate import simulate
from cktflow.sizing import (SerialPool, Sizer, SizingConfig, failed_penalty, score, size, size_many)
from cktflow.spec import parse_spec
from cli import main
from spice_sim import SimResult

MILLER = "examples/circuits/two_stage_miller.json"
# Reachable: the example Miller op-amp (140 dB, 160 MHz, 87 deg) needs wider bandwidth and less C.
REACHABLE = "name: reach\ntargets: {gain_db: {min: 120}, ugf_hz: {min: 1GHz}, pm_deg: {min: 70}}\n"
# Unreachable: two gm stages with 1 Mohm outputs and gm <= 0.1 S give at most 2 x 100 dB.
UNREACHABLE = "name: never\ntargets: {gain_db: {min: 400}, ugf_hz: {min: 1GHz}}\n"


@pytest.fixture(scope="module")
def miller():
    return Circuit.from_json(open(MILLER).read())


@pytest.fixture(scope="module")
def pool():
    with SerialPool() as p:
        yield p


def test_reachable_target_is_met_within_budget_and_re_measures(miller, pool):
    spec = parse_spec(REACHABLE)
    assert not spec.passes(simulate([miller], pool)[0].performance)   # sizing has work to do
    result = size(miller, spec, pool=pool, config=SizingConfig(budget=80), seed=3)
    assert result.met and result.stop_reason == "met"
    assert result.evaluations <= 80 and result.evals_to_met <= result.evaluations
    assert result.best.min_margin >= 0.01
    again = simulate([result.circuit], pool)[0]          # a fresh simulation of the sized circuit
    assert spec.passes(again.performance)


def test_unreachable_target_is_reported_unmet(miller, pool):
    spec = parse_spec(UNREACHABLE)
    result = size(miller, spec, pool=pool, config=SizingConfig(budget=24), seed=1)
    assert not result.met
    assert result.stop_reason == "budget" and result.evaluations == 24
    assert result.best.shortfall > 0 and result.evals_to_met is None
    assert not spec.passes(simulate([result.circuit], pool)[0].performance)


def test_feasibility_dominates_the_secondary_goal(miller):
    spec = parse_spec(REACHABLE.replace("name: reach", "name: gm\nobjective: min_total_gm"))
    from spice_sim import Performance
    usable = dict(stable=True, pm_min_deg=80, peaking_db=0.0)
    ok = SimResult(performance=Performance(gain_db=130, ugf_hz=2e9, pm_deg=80, **usable))
    close = SimResult(performance=Performance(gain_db=119.9, ugf_hz=2e9, pm_deg=80, **usable))
    ringing = SimResult(performance=Performance(gain_db=130, ugf_hz=2e9, pm_deg=80, stable=True, pm_min_deg=30,
                                                peaking_db=0.0))
    assert score(spec, miller, ringing) > 0          # the implicit pm_min target is part of feasibility
    assert score(spec, miller, ok) <= 0 < score(spec, miller, close)
    big = miller.with_values({(3, "gm"): 0.1})
    assert score(spec, miller, ok) < score(spec, big, ok)            # less gm is better once met


def test_failed_simulation_gets_the_penalty_and_keeps_its_reason(miller, tmp_path):
    spec = parse_spec(REACHABLE)
    sizer = Sizer(miller, spec, SizingConfig(budget=8), seed=0, history_path=tmp_path / "h.jsonl")
    xs = sizer.ask()
    # a faked failure: only the error handling is under test here
    sizer.tell(xs, [SimResult(failure="timeout", message="took too long")] * len(xs))
    assert all(ev.y == failed_penalty(spec) for ev in sizer.history)
    assert failed_penalty(spec) > 10 * len(spec.targets)
    rows = [json.loads(ln) for ln in (tmp_path / "h.jsonl").read_text().splitlines()[1:]]
    assert rows[0]["failure"] == "timeout" and rows[0]["message"] == "took too long"
    assert sizer.result().failures == {"timeout": len(xs)}


def test_history_resumes_and_rejects_another_run(miller, pool, tmp_path):
    spec = parse_spec(UNREACHABLE)
    path = tmp_path / "run.jsonl"
    first = size(miller, spec, pool=pool, config=SizingConfig(budget=12), seed=5, history_path=path)
    assert first.evaluations == 12
    resumed = Sizer(miller, spec, SizingConfig(budget=20), seed=5, history_path=path)
    assert resumed.evaluations == 12 and resumed.best.y == first.best.y
    second = size(miller, spec, pool=pool, config=SizingConfig(budget=20), seed=5, history_path=path)
    assert second.evaluations == 20
    assert len(path.read_text().splitlines()) == 1 + 20                 # header + one line per simulation
    with pytest.raises(ValueError, match="another sizing run"):
        Sizer(miller, parse_spec(REACHABLE), SizingConfig(budget=20), history_path=path)


def test_seeded_and_leaves_global_rngs_alone(miller, pool):
    spec = parse_spec(UNREACHABLE)
    np_state, py_state = np.random.get_state(), random.getstate()
    runs = []
    for _ in range(2):
        sizer = Sizer(miller, spec, SizingConfig(budget=12, n_initial=4), seed=11)
        while not sizer.done:
            xs = sizer.ask()
            sizer.tell(xs, simulate([sizer.space.circuit_at(x) for x in xs], pool))
        runs.append([ev.x for ev in sizer.history])
    assert runs[0] == runs[1]
    assert random.getstate() == py_state
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(np.random.get_state(), np_state))


class CountingPool:
    """A real pool that records the batch sizes it was handed (to check batching, not to fake work)."""

    def __init__(self, pool):
        self.pool, self.batches = pool, []

    def map(self, jobs):
        self.batches.append(len(jobs))
        return self.pool.map(jobs)


def test_batches_of_several_sizers_go_through_the_ray_pool(miller):
    from cktflow.simulate import open_pool
    spec = parse_spec(UNREACHABLE)
    others = miller.with_values({(4, "C"): 3e-12})
    with open_pool(num_workers=2, progress=False) as ray_pool:
        counting = CountingPool(ray_pool)
        results = size_many([miller, others], spec, pool=counting, config=SizingConfig(budget=12, batch=4), seed=2)
    assert [r.evaluations for r in results] == [12, 12]
    assert sum(counting.batches) == 24
    assert max(counting.batches) == 8          # one pool call carries both sizers' batches


def test_cli_size_exit_codes_and_json(tmp_path):
    reach, never = tmp_path / "reach.yaml", tmp_path / "never.yaml"
    reach.write_text(REACHABLE)
    never.write_text(UNREACHABLE)
    out = tmp_path / "sized.json"
    r = CliRunner().invoke(main, ["size", "--spec", str(reach), "--budget", "80", "--seed", "3", "--json",
                                  "--out", str(out), MILLER], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["met"] is True and data["evaluations"] <= 80
    assert Circuit.from_json(out.read_text()) == Circuit.from_dict(data["circuit"])
    r = CliRunner().invoke(main, ["size", "--spec", str(never), "--budget", "12", MILLER], catch_exceptions=False)
    assert r.exit_code == 1 and "NOT met within 12 simulations" in r.output
    r = CliRunner().invoke(main, ["size", "--spec", str(reach), "examples/netlists/miller.cir"])
    assert r.exit_code == 2 and "circuit JSON" in r.output


def test_shared_budget_goes_to_the_better_half(miller, pool):
    spec = parse_spec(UNREACHABLE)
    weak = miller.with_values({(2, "gm"): 1e-6, (3, "gm"): 1e-6})    # far from any gain target
    config = SizingConfig(budget=100, batch=4, n_initial=4)
    results = size_many([miller, weak], spec, pool=pool, config=config, seed=4, total_budget=40)
    assert sum(r.evaluations for r in results) == 40
    good, bad = results
    assert good.best.y < bad.best.y and good.evaluations > bad.evaluations >= 4


def test_later_waves_join_only_while_no_sizer_meets_the_spec(miller, pool):
    spec = parse_spec(UNREACHABLE)
    second = miller.with_values({(4, "C"): 3e-12})
    config = SizingConfig(budget=100, batch=4, n_initial=4)
    starts = simulate([miller, second], pool, progress=False)
    waiting = size_many([miller, second], spec, pool=pool, config=config, seed=4, total_budget=40, wave=1,
                        wave_sims=16, start_results=starts)
    assert waiting[0].evaluations >= 16 and waiting[1].evaluations >= 4       # the second wave joined
    assert sum(r.evaluations - 1 for r in waiting) == 40                      # new simulations only
    patient = size_many([miller, second], spec, pool=pool, config=config, seed=4, total_budget=40, wave=1,
                        wave_sims=1000, start_results=starts)
    assert patient[0].evaluations == 41 and patient[1].evaluations == 1       # never needed to join
    with pytest.raises(ValueError, match="start result"):
        size_many([miller, second], spec, pool=pool, config=config, total_budget=8, wave=1)
