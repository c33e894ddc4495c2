"""Sizing at transistor level with real ngspice and the sky130 models: a spec the start sizes miss
is met, typical first (other corners only for points that pass typical), resume without
re-simulation, grid and bounds, min_power, and the objectives' level checks."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pdk_required import require_pdk

require_pdk()

from cktflow.flow.transistor import conditions_of  # noqa: E402
from cktflow.sizing.transistor import (TRANSISTOR_CONFIG, TransistorSpace, size_transistor,  # noqa: E402
                                       typical_first)
from cktflow.spec import SpecError, parse_spec  # noqa: E402
from cktflow.technology import load_technology  # noqa: E402
from cktflow.transistor import Conditions, from_template  # noqa: E402
from cktflow.transistor.jobs import KeyedLocalSimulator  # noqa: E402

TECH = load_technology("sky130")
# the 5T OTA at its own sizes: UGF 4.6 MHz at 5 pF (docs/transistor-level.md), so 8 MHz is missed
UGF_SPEC = """
name: faster-ota
pdk: sky130
conditions: {{vcm: 1.1V, load_cap: 5pF, corners: {corners}, temperatures: [27]}}
targets:
  ugf_hz: {{min: 8MHz}}
  gain_db: {{min: 36dB}}
  pm_deg: {{min: 60deg}}
objective: {objective}
"""


def spec(corners="[tt]", objective="max_margin"):
    return parse_spec(UGF_SPEC.format(corners=corners, objective=objective))


@pytest.fixture(scope="module")
def sim():
    with KeyedLocalSimulator(timeout_s=180) as s:
        yield s


def test_space_is_log_scaled_within_bounds_and_snapped_to_the_grid():
    c = from_template("miller2")
    space = TransistorSpace.of(c)
    dims = {d.name: d for d in space.dimensions()}
    assert dims["w_in"].prior == "log-uniform" and (dims["w_in"].low, dims["w_in"].high) == (0.42, 100.0)
    assert (dims["ibias"].low, dims["ibias"].high) == (1e-6, 200e-6)     # the template's *@ param line
    x = space.snap([1e9 if k == "w_in" else 0.0123456 if k == "l_in" else v
                    for k, v in zip(space.names, space.start())])
    sizes = dict(zip(space.names, x))
    assert sizes["w_in"] == 100.0                                         # clipped to the PDK's limit
    assert sizes["l_in"] == 0.15                                          # clipped, then on the grid
    for k, v in sizes.items():
        p = c.param(k)
        assert p.problem(v) is None, p.problem(v)
        if p.grid:
            assert abs(v / p.grid - round(v / p.grid)) < 1e-9
    kinds = {k: kind for k, kind in space.keys}
    assert kinds["w_in"] == "mos.w" and kinds["l_cc"] == "cap.l" and kinds["ibias"] == "i"


def test_typical_condition_comes_first():
    conds = [Conditions(corner=k, temp_c=t) for k in ("ss", "tt", "ff") for t in (-40, 125, 30)]
    first = typical_first(conds, "tt")
    assert (first[0].corner, first[0].temp_c) == ("tt", 30)
    assert len(first) == len(conds) and set(map(id, first)) == set(map(id, conds))


def test_sizer_meets_a_ugf_the_start_sizes_miss_typical_first_and_resumes(tmp_path, sim):
    s = spec("[tt, ss]")
    c = from_template("ota5t")
    conds = conditions_of(s, TECH, c)
    hist = tmp_path / "h.jsonl"
    r = size_transistor(c, s, conds, sim, history_path=hist, seed=1)
    assert r.met, r.to_dict()
    # the start point missed (UGF 4.6 MHz), the sized one meets at both corners
    first = json.loads(hist.read_text().splitlines()[1])
    assert first["condition"] == "tt 27C" and first["performance"]["ugf_hz"] < 8e6
    assert [x.condition for x in r.runs] == ["tt 27C", "ss 27C"]
    assert all(x.performance.ugf_hz >= 8e6 for x in r.runs)
    # typical first: ss ran only for the points that met every target at tt
    lines = [json.loads(ln) for ln in hist.read_text().splitlines()[1:]]
    ss = [ln for ln in lines if ln["condition"] == "ss 27C"]
    assert len(ss) == r.passed_typical == r.other_simulations >= 1
    tt = {json.dumps(sorted(ln["sizes"].items())): ln for ln in lines if ln["condition"] == "tt 27C"}
    for ln in ss:
        typ = tt[json.dumps(sorted(ln["sizes"].items()))]["performance"]
        assert typ["ugf_hz"] >= 8e6 and typ["gain_db"] >= 36 and typ["pm_deg"] >= 60
    assert r.typical_simulations > len(ss)               # most points were never simulated at ss
    assert r.simulations == len(lines) == r.new_simulations
    # resumed: the same result, nothing simulated again
    again = size_transistor(c, s, conds, sim, history_path=hist, seed=1)
    assert again.new_simulations == 0 and again.simulations == r.simulations
    assert again.circuit.sizes() == r.circuit.sizes() and again.best.y == r.best.y


def test_a_point_stops_at_the_first_condition_it_misses(tmp_path, sim):
    # near the edge points pass typical and miss at a corner or temperature: the conditions after
    # the miss are not simulated, so such a point costs a few simulations, not one per condition
    s = parse_spec(UGF_SPEC.format(corners="[tt, ss, ff]", objective="max_margin")
                   .replace("temperatures: [27]", "temperatures: [-40, 27, 125]").replace("36dB", "38dB"))
    c = from_template("ota5t")
    hist = tmp_path / "h.jsonl"
    r = size_transistor(c, s, conditions_of(s, TECH, c), sim, history_path=hist, seed=1)
    assert r.met and len(r.runs) == 9
    by_point: dict[str, list[dict]] = {}
    for ln in hist.read_text().splitlines()[1:]:
        d = json.loads(ln)
        by_point.setdefault(json.dumps(sorted(d["sizes"].items())), []).append(d)

    def misses(d):     # the user's three targets (the implicit ones can stop a point too)
        p = d.get("performance") or {}
        return (p.get("ugf_hz") or 0) < 8e6 or (p.get("gain_db") or 0) < 38 or (p.get("pm_deg") or 0) < 60

    stopped = 0
    for runs in by_point.values():
        assert runs[0]["condition"] == "tt 27C"
        # the history is in the order of the simulations: nothing after a condition the point missed
        missed = [i for i, d in enumerate(runs) if misses(d)]
        assert not missed or missed[0] == len(runs) - 1
        stopped += 1 < len(runs) < 9
    assert stopped >= 1 and r.simulations == sum(len(v) for v in by_point.values())


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, sim):
    s = spec()
    c = from_template("ota5t")
    conds = conditions_of(s, TECH, c)
    whole = size_transistor(c, s, conds, sim, history_path=tmp_path / "whole.jsonl", seed=2)
    cut = tmp_path / "cut.jsonl"
    part = size_transistor(c, s, conds, sim, history_path=cut, seed=2, config=replace(TRANSISTOR_CONFIG, budget=5))
    assert part.simulations == 5 and not part.met
    rest = size_transistor(c, s, conds, sim, history_path=cut, seed=2)
    assert rest.new_simulations == whole.simulations - 5      # the first five were not simulated again
    assert rest.circuit.sizes() == whole.circuit.sizes() and rest.simulations == whole.simulations


@pytest.mark.slow      # ~110 s under load: dozens of sizing points after the spec holds
def test_min_power_lowers_the_power_once_the_spec_holds(sim):
    s = spec(objective="min_power")
    c = from_template("ota5t")
    conds = conditions_of(s, TECH, c)
    r = size_transistor(c, s, conds, sim, seed=3, extra_after_met=40)
    assert r.met
    assert r.sims_to_met is not None and r.simulations > r.sims_to_met
    # the first point that met the spec vs the best one found afterwards
    base = size_transistor(c, spec(), conds, sim, seed=3)
    assert base.met
    assert r.best.performance.power_w < 0.9 * base.best.performance.power_w, (
        r.best.performance.power_w, base.best.performance.power_w)


def test_history_of_another_run_is_refused(tmp_path, sim):
    c = from_template("ota5t")
    hist = tmp_path / "h.jsonl"
    s = spec()
    conds = conditions_of(s, TECH, c)
    from cktflow.sizing import SizingConfig
    size_transistor(c, s, conds, sim, history_path=hist, config=SizingConfig(budget=1))
    other = parse_spec(UGF_SPEC.format(corners="[tt]", objective="max_margin").replace("8MHz", "9MHz"))
    with pytest.raises(ValueError, match="another sizing run"):
        size_transistor(c, other, conds, sim, history_path=hist, config=SizingConfig(budget=1))


def test_power_and_area_objectives_are_refused_on_a_behavioural_spec():
    with pytest.raises(SpecError, match=r"<spec>:3: objective 'min_area' applies to transistor op-amps only"):
        parse_spec("targets:\n  gain_db: {min: 40dB}\nobjective: min_area\n")
    with pytest.raises(SpecError, match="behavioural circuits only"):
        parse_spec("pdk: sky130\ntargets:\n  gain_db: {min: 40dB}\nobjective: min_total_gm\n")
    assert parse_spec("pdk: sky130\ntargets:\n  gain_db: {min: 40dB}\nobjective: min_power\n").objective == "min_power"
