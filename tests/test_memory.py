"""The closed loop's memory: stored circuits nearest a spec by measured performance, read from a real
dataset store, tried after the model's proposals (real ngspice, real SQLite)."""

import json
import math

import pytest
from click.testing import CliRunner

from cktflow.circuit import OcbGenerator
from cktflow.dataset import Dataset, NearestCircuits, Record
from cktflow.flow import design_loop
from cktflow.simulate import simulate, testbench_version
from cktflow.sizing import SerialPool
from cktflow.spec import SHORTFALL_SCALE, Bound, Spec


@pytest.fixture(scope="module")
def measured():
    """Eighty generated circuits and their ngspice results, those with gain, UGF and PM (most OCB
    circuits are not usable in feedback; eighty hold a few that are, see _usable)."""
    circuits = OcbGenerator(seed=11).take(80)
    results = simulate(circuits, progress=False)
    pairs = [(c, r) for c, r in zip(circuits, results)
             if r.ok and r.performance.ugf_hz and r.performance.pm_deg is not None]
    assert len(pairs) >= 8
    return pairs


def _usable(measured) -> int:
    """The first measured circuit that is usable in feedback (meets a window spec around itself,
    implicit targets included): only such a circuit can be verified against its own window."""
    return next(i for i, (_, r) in enumerate(measured) if _window(r.performance).passes(r.performance))


def _window(p, name="around"):
    return Spec((Bound("gain_db", min=p.gain_db - 1, max=p.gain_db + 1),
                 Bound("ugf_hz", min=p.ugf_hz / 1.05, max=p.ugf_hz * 1.05),
                 Bound("pm_deg", min=p.pm_deg - 1, max=p.pm_deg + 1)), name=name)


def _distance(p, q):
    return math.dist((p.gain_db / SHORTFALL_SCALE["dB"], math.log10(p.ugf_hz), p.pm_deg / SHORTFALL_SCALE["deg"]),
                     (q.gain_db / SHORTFALL_SCALE["dB"], math.log10(q.ugf_hz), q.pm_deg / SHORTFALL_SCALE["deg"]))


def test_nearest_orders_by_measured_performance(measured):
    index = NearestCircuits((c, r.performance) for c, r in measured)
    assert len(index) == len(measured)
    target_circuit, target = measured[3][0], measured[3][1].performance
    got = index.nearest(_window(target).without_implicit(), 5)
    assert got[0].canonical_hash() == target_circuit.canonical_hash()     # a window centred on it
    perf = {c.canonical_hash(): r.performance for c, r in measured}
    d = [_distance(perf[c.canonical_hash()], target) for c in got]
    assert d == sorted(d)
    others = [_distance(r.performance, target) for c, r in measured if c.canonical_hash() not in
              {g.canonical_hash() for g in got}]
    assert max(d) <= min(others)
    assert index.nearest(_window(target), 0) == []
    assert len(index.nearest(_window(target), 100)) == len(measured)


def test_nearest_puts_circuits_that_meet_the_implicit_targets_first(measured):
    index = NearestCircuits((c, r.performance) for c, r in measured)
    # far from the usable circuits (pm_min >= 30 deg): distance alone would rank others first
    spec = Spec((Bound("gain_db", min=120), Bound("pm_deg", min=30)), name="implicit targets")
    usable = {c.canonical_hash() for c, r in measured
              if all(b.passes(r.performance.get(b.metric)) for b in spec.implicit_bounds)}
    assert 0 < len(usable) < len(measured)
    got = [c.canonical_hash() for c in index.nearest(spec, len(measured))]
    assert set(got[:len(usable)]) == usable                  # every usable one before any other
    rest = index.nearest(spec.without_implicit(), len(measured))
    assert [c.canonical_hash() for c in rest] != got         # without implicit targets: distance alone


def test_nearest_uses_only_the_metrics_a_spec_names(measured):
    index = NearestCircuits((c, r.performance) for c, r in measured)
    gains = sorted(measured, key=lambda cr: cr[1].performance.gain_db)
    top = gains[-1][1].performance.gain_db
    got = index.nearest(Spec((Bound("gain_db", min=top),), name="gain only", implicit=False), 1)
    assert got[0].canonical_hash() == gains[-1][0].canonical_hash()
    assert index.nearest(Spec((Bound("power_w", max=1.0),), name="no vector metric"), 3) == []


def test_circuits_without_a_unity_crossing_are_left_out(measured):
    c, r = measured[0]
    index = NearestCircuits([(c, r.performance.with_values(ugf_hz=None)), (c, None)])
    assert len(index) == 0 and index.nearest(_window(r.performance), 3) == []


def test_memory_reads_every_split_of_a_store(tmp_path, measured):
    records = [Record.from_result(c, r, {"source": "test"}, simulator="ngspice-test", testbench=testbench_version(),
                                  split=("train", "test", None)[i % 3]) for i, (c, r) in enumerate(measured)]
    path = tmp_path / "d.sqlite"
    with Dataset.open(path) as ds:
        ds.append(records)
    assert len(NearestCircuits.from_dataset(path)) == len(measured)
    with pytest.raises(FileNotFoundError, match="cktflow dataset build"):
        NearestCircuits.from_dataset(tmp_path / "missing.sqlite")


def test_memory_batch_follows_when_the_wider_one_misses(measured):
    """The loop asks its proposals in turn, only while none meets the spec, and keeps each one's origin."""
    target_circuit, result = measured[_usable(measured)]
    spec = _window(result.performance, "around")
    misses = [c for c, r in measured if not spec.passes(r.performance)][:2]
    index = NearestCircuits((c, r.performance) for c, r in measured)
    calls = []

    def wider():
        calls.append("wider")
        return misses[1:]

    def memory():
        calls.append("memory")
        return index.nearest(spec, 1)

    def never():
        calls.append("never")
        return []

    with SerialPool() as pool:
        res = design_loop(spec, misses[:1], "model", pool, budget=10, top_k=1,
                          more=[("model-wider", wider), ("memory", memory), ("late", never)])
    assert calls == ["wider", "memory"]
    assert res.second_batch == 2 and res.simulations == 3
    assert res.verified and res.verified[0].origin == "memory"
    assert res.verified[0].circuit.canonical_hash() == target_circuit.canonical_hash()


def test_generate_memory_needs_a_dataset(tmp_path):
    from cli import main
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\ntargets:\n  gain_db: {min: 40dB}\n")
    out = CliRunner().invoke(main, ["generate", "--spec", str(spec), "--memory",
                                    "--dataset", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "o")])
    assert out.exit_code == 2
    assert "--memory" in out.output and "none.sqlite" in out.output
    assert not (tmp_path / "none.sqlite").exists()


def test_generate_with_memory_returns_a_stored_circuit_the_model_missed(tmp_path, measured):
    """End to end on the shipped model: a window this narrow around one stored circuit is missed by
    the model's few proposals, and the memory's nearest circuit is verified (and says where it came from)."""
    from cli import main
    from cktflow.model.sample import default_checkpoint
    if not default_checkpoint().is_file():
        pytest.skip("the shipped checkpoint does not exist yet (make model)")
    path = tmp_path / "d.sqlite"
    with Dataset.open(path) as ds:
        ds.append([Record.from_result(c, r, {"source": "test"}, simulator="ngspice-test",
                                      testbench=testbench_version(), split="train") for c, r in measured])
    target_circuit, result = measured[_usable(measured)]
    p = result.performance
    spec = tmp_path / "narrow.yaml"
    spec.write_text(f"name: narrow\ntargets:\n  gain_db: {{min: {p.gain_db - 0.5}, max: {p.gain_db + 0.5}}}\n"
                    f"  ugf_hz: {{min: {p.ugf_hz / 1.02}, max: {p.ugf_hz * 1.02}}}\n"
                    f"  pm_deg: {{min: {p.pm_deg - 0.5}, max: {p.pm_deg + 0.5}}}\n")
    out = tmp_path / "gen"
    r = CliRunner().invoke(main, ["generate", "--spec", str(spec), "-n", "2", "--budget", "6", "--want", "1",
                                  "--memory", "--dataset", str(path), "--out", str(out), "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    verified = [o for o in report["outcomes"] if o["verified"]]
    assert verified[0]["origin"] == "memory" and report["second_batch"] >= 3
    assert "(from: memory)" in (out / "report.md").read_text()
    # an independent verify of what generate called verified, implicit targets included
    again = CliRunner().invoke(main, ["verify", "--spec", str(spec), "--json",
                                      *(str(out / o["files"]["json"]) for o in verified)], catch_exceptions=False)
    assert again.exit_code == 0 and json.loads(again.output)["passed"]
