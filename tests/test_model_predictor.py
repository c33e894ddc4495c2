"""The performance predictor: target distances by hand, it learns circuits, refinement moves values
toward a target without touching the topology, checkpoints and fine-tunes round-trip."""

import math

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)   # small models; extra threads only contend on a shared machine

from cktflow.circuit import load_pdk  # noqa: E402
from cktflow.model.data import build_tensor_data, load_examples  # noqa: E402
from cktflow.model.predictor import (UGF_WEIGHT, PerformancePredictor, bound_distance, class_distance,  # noqa: E402
                                     finetune_predictor, load_predictor, prediction_targets, refine_values,
                                     train_predictor)
from cktflow.model.sample import (default_checkpoint, load_refinement, propose, refine_for_spec,  # noqa: E402
                                  vector_target)
from cktflow.spec import parse_spec  # noqa: E402


def _pred(gain_db, ugf_hz, label_pm_deg, design_pm_deg=60.0):
    a = math.radians(label_pm_deg)
    return torch.tensor([[gain_db / 100, math.log10(ugf_hz) - 9, design_pm_deg / 90, math.cos(a), math.sin(a)]])


def _classes(gain, bw, pm):
    return torch.tensor([[gain, bw, pm]])


def test_class_distance_by_hand():
    # 50 dB -> OCB gain label 1.69531 (class 1); 2.5 GHz -> bw class 2; label PM 120 deg -> class 0
    p = _pred(50, 2.5e9, 120)
    assert float(class_distance(p, _classes(1, 2, 0))) == pytest.approx(0.0, abs=1e-6)
    assert float(class_distance(p, _classes(2, 2, 0))) == pytest.approx(2 - 1.69531, abs=1e-5)
    assert float(class_distance(p, _classes(1, 5, 0))) == pytest.approx(UGF_WEIGHT * math.log10(5 / 2.5), abs=1e-5)
    assert float(class_distance(p, _classes(1, 2, 1))) == pytest.approx(30 / 90, abs=1e-5)   # (0, 90] misses by 30
    # the first and the last bandwidth classes are open-ended
    assert float(class_distance(_pred(50, 1e6, 120), _classes(1, 0, 0))) == pytest.approx(0.0, abs=1e-6)
    assert float(class_distance(_pred(50, 9e10, 120), _classes(1, 31, 0))) == pytest.approx(0.0, abs=1e-6)


def test_class_distance_wraps_the_label_pm_around_the_circle():
    # class 0 holds (90, 180], class 3 holds (-180, -90]: -179 deg is 1 deg from class 0, inside class 3
    assert float(class_distance(_pred(50, 2.5e9, 179), _classes(1, 2, 0))) == pytest.approx(0.0, abs=1e-5)
    assert float(class_distance(_pred(50, 2.5e9, -179), _classes(1, 2, 0))) == pytest.approx(1 / 90, abs=1e-4)
    assert float(class_distance(_pred(50, 2.5e9, -179), _classes(1, 2, 3))) == pytest.approx(0.0, abs=1e-5)


def test_class_distance_margin_narrows_the_interval():
    p = _pred(50, 2.5e9, 120)                       # gain label 1.69531 in class 1
    assert float(class_distance(p, _classes(1, 2, 0), margin=0.2)) == pytest.approx(0.0, abs=1e-6)
    p = _pred(-9.531, 2.5e9, 135)                   # gain label 1.1: 0.1 inside the lower edge
    assert float(class_distance(p, _classes(1, 2, 0), margin=0.2)) == pytest.approx(0.1, abs=1e-4)
    with pytest.raises(ValueError, match="margin"):
        class_distance(p, _classes(1, 2, 0), margin=0.5)


def test_bound_distance_by_hand():
    target = vector_target(parse_spec("targets:\n  gain_db: {min: 60}\n  ugf_hz: {min: 1GHz, max: 10GHz}\n"))
    zero = torch.zeros(3)
    inside = _pred(70, 3e9, 0)
    assert float(bound_distance(inside, target.lower, target.upper, zero)) == pytest.approx(0.0, abs=1e-6)
    low = _pred(50, 3e9, 0)                          # 10 dB short: 0.1 in gain units
    assert float(bound_distance(low, target.lower, target.upper, zero)) == pytest.approx(0.1, abs=1e-5)
    fast = _pred(70, 20e9, 0)                        # log10(2) decades above the window
    assert float(bound_distance(fast, target.lower, target.upper, zero)) == pytest.approx(
        UGF_WEIGHT * math.log10(2), abs=1e-5)
    # the design PM is unbounded here, so no value of it costs anything
    assert float(bound_distance(_pred(70, 3e9, 0, design_pm_deg=-50), target.lower, target.upper, zero)) == 0.0


@pytest.fixture(scope="module")
def data():
    return build_tensor_data([e for e in load_examples() if e.split == "train"][:24])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("pred") / "predictor.pt"
    model = train_predictor(data, path, epochs=300, d=64, members=1, batch_size=8, lr=3e-3, device="cpu")
    return model, path


def test_predictor_learns_a_handful_of_circuits(data, trained):
    model, _ = trained
    y = prediction_targets(data)
    assert y.shape == (len(data), 8) and torch.isfinite(y).all()     # every label has the usable metrics
    untrained = PerformancePredictor(64, 1)
    with torch.no_grad():
        out, raw = model(data.x), untrained(data.x)
        err = (out[:, :7] - y[:, :7]).abs().mean().item()           # the regression outputs
        base = (raw[:, :7] - y[:, :7]).abs().mean().item()
    assert err < 0.02 < 0.1 < base
    assert torch.equal(out[:, 7] > 0, y[:, 7] > 0.5)                # the stable logit classifies them all


def test_checkpoint_round_trip_gives_identical_outputs(data, trained):
    model, path = trained
    again = load_predictor(path)
    with torch.no_grad():
        assert torch.equal(model(data.x), again(data.x))


def test_refinement_moves_the_prediction_and_keeps_the_topology(data, trained):
    model, _ = trained
    circuits = data.circuits[:8]
    before = model.predict(circuits)
    goal = before[:, 0] + 0.2                     # ask every circuit for 20 dB more gain

    def objective(pred, rows):
        return (pred[:, 0] - goal[rows]) ** 2

    everyone = torch.arange(len(circuits))
    refined = refine_values(model, circuits, objective, steps=60, lr=0.02)
    after = model.predict(refined)
    assert float(objective(after, everyone).mean()) < 0.5 * float(objective(before, everyone).mean())
    pdk = load_pdk()
    for old, new in zip(circuits, refined):
        assert new.topology_hash() == old.topology_hash()
        assert [n.type for n in new.nodes] == [n.type for n in old.nodes] and new.edges == old.edges
        for node in new.nodes:
            for kind, value in node.values.items():
                lo, hi = pdk.value_range[kind]
                assert lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9)
    assert any(new.canonical_hash() != old.canonical_hash() for old, new in zip(circuits, refined))
    assert all(p.requires_grad for p in model.parameters())      # the predictor is left trainable


def test_refinement_stops_moving_a_circuit_once_it_is_there(data, trained):
    model, _ = trained
    circuits = data.circuits[:6]
    before = model.predict(circuits)
    # the first three are already where they should be; the others are asked for 20 dB more gain
    goal = before[:, 0] + torch.tensor([0.0, 0.0, 0.0, 0.2, 0.2, 0.2])

    def objective(pred, rows):
        return torch.relu(goal[rows] - pred[:, 0])

    refined = refine_values(model, circuits, objective, steps=40, lr=0.02)
    assert [c.canonical_hash() for c in refined[:3]] == [c.canonical_hash() for c in circuits[:3]]
    assert all(a.canonical_hash() != b.canonical_hash() for a, b in zip(refined[3:], circuits[3:]))


def test_finetune_predictor_continues_from_the_source(tmp_path, data, trained):
    model, path = trained
    tuned = finetune_predictor(path, data, tmp_path / "tuned.pt", epochs=1, device="cpu")
    assert (tmp_path / "tuned.pt").is_file()
    with torch.no_grad():
        y = prediction_targets(data)
        # a short fine-tune at a fifth of the rate keeps what it knew
        assert (tuned(data.x)[:, :7] - y[:, :7]).abs().mean().item() < 0.1


def test_shipped_model_has_a_predictor_and_propose_refines_toward_the_spec():
    refine = load_refinement(default_checkpoint())
    assert refine is not None
    spec = parse_spec("targets:\n  gain_db: {min: 60}\n  ugf_hz: {min: 100MHz}\n  pm_deg: {min: 60}\n")
    target = vector_target(spec)
    raw = propose(spec, 8, seed=5, refine=False)
    refined = refine_for_spec(refine, raw, target)
    margin = torch.zeros(3)
    d_raw = bound_distance(refine.predictor.predict(raw), target.lower, target.upper, margin)
    d_ref = bound_distance(refine.predictor.predict(refined), target.lower, target.upper, margin)
    assert float(d_ref.sum()) <= float(d_raw.sum())
    assert [c.topology_hash() for c in refined] == [c.topology_hash() for c in raw]


def test_usable_distance_by_hand():
    from cktflow.model.predictor import UsableTarget, usable_distance
    spec = parse_spec("targets:\n  gain_db: {min: 60}\n  pm_deg: {min: 60}\n")
    target = UsableTarget.of(spec)
    assert target.pm_min == pytest.approx(60 / 90) and target.peaking == pytest.approx(6 / 20) and target.stable
    good = torch.tensor([[0.7, 0.0, 0.8, 1.0, 0.0, 80 / 90, 0.0, 5.0]])
    assert float(usable_distance(good, target, 0.0, 0.0)) == 0.0
    ringing = torch.tensor([[0.7, 0.0, 0.8, 1.0, 0.0, 30 / 90, 24 / 20, -1.0]])
    expected = (60 - 30) / 90 + (24 - 6) / 20 + 0.1 * (2.0 + 1.0)
    assert float(usable_distance(ringing, target, 0.0, 0.0)) == pytest.approx(expected, abs=1e-6)
    assert float(usable_distance(ringing[:, :5], target)) == 0.0           # an AC-only predictor
    off = UsableTarget.of(parse_spec("targets:\n  gain_db: {min: 60}\nimplicit: false\n"))
    assert off.empty and float(usable_distance(ringing, off)) == 0.0


def test_model_without_predictor_is_not_refined(tmp_path):
    assert load_refinement(tmp_path / "model.pt") is None
