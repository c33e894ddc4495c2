"""Sampling: spec -> valid, distinct Circuits; guidance moves the predicted spec toward the target."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)   # small models; extra threads only contend on a shared machine

from cktflow.circuit import Circuit, is_valid  # noqa: E402
from cktflow.model.sample import (Guidance, class_objective, default_checkpoint, guide, load_model,  # noqa: E402
                                  propose, vector_objective, vector_target)
from cktflow.spec import parse_spec  # noqa: E402

SPEC = parse_spec("targets:\n  gain_db: {min: 60}\n  ugf_hz: {min: 100MHz}\n  pm_deg: {min: 60}\n")


def test_shipped_model_exists_and_is_small():
    path = default_checkpoint()
    assert path.is_file()
    assert path.stat().st_size <= 20 * 2**20


@pytest.mark.parametrize("guided", [True, False])
def test_propose_returns_distinct_valid_circuits(guided):
    circuits = propose(SPEC, 8, guidance=guided, seed=3)
    assert len(circuits) == 8
    assert all(isinstance(c, Circuit) and is_valid(c) for c in circuits)
    assert len({c.canonical_hash() for c in circuits}) == 8


def test_propose_spreads_over_topologies():
    circuits = propose(SPEC, 12, seed=3)
    topologies = [c.topology_hash() for c in circuits]
    # as many distinct topologies as the first picks can have: a repeat only after every one is used
    first_repeat = next((i for i, t in enumerate(topologies) if t in topologies[:i]), len(topologies))
    assert len(set(topologies)) == first_repeat >= 2


def test_wider_proposal_reaches_more_topologies():
    # the closed loop's second batch (cktflow.flow.generate) samples at WIDER_TEMPERATURES
    from cktflow.model.sample import WIDER_TEMPERATURES
    narrow = propose(SPEC, 20, seed=5, temperatures=(1.0,), refine=False)
    wide = propose(SPEC, 20, seed=5, temperatures=WIDER_TEMPERATURES, refine=False)
    assert len(wide) == 20 and all(is_valid(c) for c in wide)
    assert len({c.topology_hash() for c in wide}) > len({c.topology_hash() for c in narrow})


def test_propose_is_seeded():
    a = [c.canonical_hash() for c in propose(SPEC, 4, seed=7)]
    b = [c.canonical_hash() for c in propose(SPEC, 4, seed=7)]
    assert a == b


def test_propose_rejects_a_spec_it_cannot_condition_on():
    with pytest.raises(ValueError, match="bounds none"):
        propose(parse_spec("targets:\n  bw_hz: {min: 1kHz}\n"), 2)


def test_class_guidance_raises_target_likelihood():
    model = load_model()
    torch.manual_seed(0)
    z = torch.randn(64, model.config.d_latent)
    target = torch.tensor([[3, 5, 1]]).repeat(64, 1)
    objective = class_objective(model, target)
    guided = guide(model, z, objective, Guidance(steps=20, lr=0.05, prior=0.0))
    with torch.no_grad():
        assert float(objective(guided).mean()) < 0.5 * float(objective(z).mean())


def test_vector_guidance_moves_prediction_into_bounds():
    model = load_model()
    target = vector_target(SPEC)
    torch.manual_seed(0)
    z = torch.randn(64, model.config.d_latent)
    objective = vector_objective(model, target)
    before = objective(z).detach()
    after = objective(guide(model, z, objective, Guidance())).detach()
    assert float(after.mean()) < 0.5 * float(before.mean())
