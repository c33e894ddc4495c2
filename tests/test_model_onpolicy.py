"""The predictor's on-policy round: the generator's decodes for training conditions and their
refinements, measured by real ngspice, fine-tune the predictor; `cktflow train` runs the round once.
Its coverage round keeps only measured circuits away from the training data."""

import math

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)   # small models; extra threads only contend on a shared machine

from cktflow.circuit.validity import is_valid  # noqa: E402
from cktflow.model.data import build_tensor_data, load_examples  # noqa: E402
from cktflow.model import onpolicy as op  # noqa: E402
from cktflow.model.onpolicy import coverage_examples, coverage_train_predictor, onpolicy_examples, \
    self_train_predictor  # noqa: E402
from cktflow.model.predictor import load_predictor, train_predictor  # noqa: E402
from cktflow.model.sample import Refinement, default_checkpoint, load_model  # noqa: E402
from cktflow.model.checkpoint import load_checkpoint  # noqa: E402
from cktflow.model.pipeline import run_recipe  # noqa: E402


@pytest.fixture(scope="module")
def train_examples():
    return [e for e in load_examples() if e.split == "train"][:40]


@pytest.fixture(scope="module")
def small_predictor(tmp_path_factory, train_examples):
    path = tmp_path_factory.mktemp("onpolicy") / "predictor.pt"
    train_predictor(build_tensor_data(train_examples), path, epochs=20, d=32, members=1, batch_size=16,
                    device="cpu")
    return path


def test_onpolicy_examples_are_measured_decodes_and_refinements(train_examples, small_predictor):
    model = load_model()
    train = build_tensor_data(train_examples)
    refine = Refinement(load_predictor(small_predictor), steps=20)
    got = onpolicy_examples(model, refine, train, 16, batch=8, seed=3)
    # 16 decodes (two batches: one per conditioning mode), each with its refinement, minus
    # duplicates and invalid decodes; every one measured by ngspice
    assert 16 <= len(got) <= 32
    assert len({e.circuit.canonical_hash() for e in got}) == len(got)
    assert all(e.split == "train" and e.performance is not None and e.performance.gain_db is not None
               for e in got)
    assert all(is_valid(e.circuit) for e in got)
    # refinements keep a decode's topology with other values: topologies repeat, values do not
    assert len({e.circuit.topology_hash() for e in got}) < len(got)
    # seeded: the same call gives the same circuits
    again = onpolicy_examples(model, refine, train, 16, batch=8, seed=3)
    assert [e.circuit.canonical_hash() for e in again] == [e.circuit.canonical_hash() for e in got]


def test_self_train_fine_tunes_the_predictor_and_records_the_round(tmp_path, train_examples, small_predictor):
    out = tmp_path / "predictor.pt"
    info = self_train_predictor(load_model(), small_predictor, train_examples, out, n=8, rounds=2, epochs=2,
                                device="cpu")
    # two rounds of 8 decodes and their refinements, every measured circuit kept for the second
    assert info["decodes"] == 8 and info["rounds"] == 2 and 16 <= info["measured"] <= 32
    # measured circuits without a label (no unity-gain crossing, negative PM class) train nothing
    assert len(build_tensor_data(train_examples)) < info["circuits"] <= len(train_examples) + info["measured"]
    state = load_checkpoint(out)
    assert state["onpolicy"]["measured"] == info["measured"] and state["circuits"] == info["circuits"]
    before, after = load_predictor(small_predictor), load_predictor(out)
    x = build_tensor_data(train_examples[:8]).x
    with torch.no_grad():
        assert not torch.equal(before(x), after(x))


def test_train_runs_the_onpolicy_round_once(tmp_path, example_dataset, monkeypatch):
    db = tmp_path / "data.sqlite"
    example_dataset(db, 40, 8)
    out = tmp_path / "run"
    summary = run_recipe("tiny", db=db, out_dir=out, epochs=1, onpolicy=16, coverage=16, evaluator=False,
                         device="cpu", progress=False)
    assert summary["onpolicy"]["decodes"] == 16 and (out / "evaluator.pt").is_file() is False
    assert summary["coverage"]["decodes"] == 16
    recorded = load_checkpoint(out / "predictor.pt")["onpolicy"]
    # the coverage round keeps the on-policy rounds' record beside its own
    assert recorded["decodes"] == 16 and recorded["rounds"] == 2 and recorded["coverage"]["decodes"] == 16
    # a resumed run finds both steps done and repeats neither

    def fail(*args, **kwargs):
        raise AssertionError("a predictor step ran twice")
    monkeypatch.setattr(op, "self_train_predictor", fail)
    monkeypatch.setattr(op, "coverage_train_predictor", fail)
    again = run_recipe("tiny", db=db, out_dir=out, epochs=1, onpolicy=16, coverage=16, evaluator=False,
                       device="cpu", resume=True, progress=False)
    assert again["onpolicy"] is None and again["coverage"] is None
    for name in ("onpolicy", "coverage"):
        with pytest.raises(ValueError, match=name):
            run_recipe("tiny", db=db, out_dir=out, progress=False, **{name: -1})


def _shortfall_units(perf):
    return (perf.gain_db / 20.0, math.log10(perf.ugf_hz), perf.pm_deg / 30.0)


def test_coverage_examples_are_measured_and_away_from_the_training_data(train_examples, small_predictor):
    model = load_model()
    train = build_tensor_data(train_examples)
    refine = Refinement(load_predictor(small_predictor), steps=10)
    got = coverage_examples(model, refine, train, 24, batch=8, seed=5)
    assert got, "24 pushed-out decodes against 40 training circuits should leave some far from all of them"
    reference = [_shortfall_units(e.performance) for e in train_examples if e.performance is not None
                 and e.performance.ugf_hz and e.performance.pm_deg is not None and e.performance.gain_db is not None]
    cells = {}
    for e in got:
        assert e.split == "train" and is_valid(e.circuit)
        x = _shortfall_units(e.performance)      # measured by ngspice: it must have all three
        assert min(math.dist(x, r) for r in reference) >= op.COVERAGE_MIN_DISTANCE
        cell = tuple(math.floor(v / op.COVERAGE_CELL) for v in x)
        cells[cell] = cells.get(cell, 0) + 1
    assert max(cells.values()) <= op.COVERAGE_PER_CELL
    assert len({e.circuit.canonical_hash() for e in got}) == len(got)
    again = coverage_examples(model, refine, train, 24, batch=8, seed=5)
    assert [e.circuit.canonical_hash() for e in again] == [e.circuit.canonical_hash() for e in got]


def test_coverage_round_fine_tunes_the_predictor(tmp_path, train_examples, small_predictor):
    out = tmp_path / "predictor.pt"
    info = coverage_train_predictor(load_model(), small_predictor, train_examples, out, n=16, epochs=2,
                                    device="cpu")
    assert info["decodes"] == 16 and info["kept"] >= 1
    assert info["circuits"] == len(build_tensor_data(train_examples)) + info["kept"]
    assert load_checkpoint(out)["onpolicy"]["coverage"]["kept"] == info["kept"]
    before, after = load_predictor(small_predictor), load_predictor(out)
    x = build_tensor_data(train_examples[:8]).x
    with torch.no_grad():
        assert not torch.equal(before(x), after(x))


def test_the_shipped_predictor_had_its_onpolicy_round():
    info = load_checkpoint(default_checkpoint().parent / "predictor.pt").get("onpolicy")
    assert info is not None and info["decodes"] >= 10000 and info["rounds"] >= 2
    assert info["measured"] > info["decodes"] * info["rounds"]
    # the coverage round is opt-in (cktflow train --coverage N) and was not given to the shipped one
    assert "coverage" not in info
