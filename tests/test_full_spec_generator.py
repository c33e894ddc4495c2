"""The full-spec generator at sky130 (cktflow.model.full_spec*): the spec vector and its presence
mask, the fine-tune's start from the behavioural model, the training pairs of a real sky130 store
(measured by real ngspice on a local Ray pool), training and resuming, proposals realised as
generate's candidates, and `cktflow train --pdk`'s generator step."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from pdk_required import require_pdk

require_pdk()

from cktflow.circuit import Circuit  # noqa: E402
from cktflow.circuit.validity import is_valid  # noqa: E402
from cktflow.dataset import Dataset  # noqa: E402
from cktflow.flow.candidates import Candidate, Skipped  # noqa: E402
from cktflow.flow.transistor_design import model_candidates  # noqa: E402
from cktflow.model.checkpoint import default_checkpoint, load_checkpoint, model_from_checkpoint  # noqa: E402
from cktflow.model.config import TrainConfig  # noqa: E402
from cktflow.model.full_spec import (FULL_SPEC_DIM, FULL_SPEC_METRICS, condition_vector, full_spec_data,  # noqa: E402
                                     full_target, normalise_metric)
from cktflow.model.full_spec_proposals import full_shortfall, is_full_spec, load_full_spec_model, propose_full  # noqa: E402
from cktflow.model.full_spec_training import full_spec_config, init_from_behavioural, train_full_spec  # noqa: E402
from cktflow.model.network import CktGen  # noqa: E402
from cktflow.spec import parse_spec  # noqa: E402
from cktflow.technology import load_technology  # noqa: E402
from cli import main  # noqa: E402

SPEC = parse_spec("""name: t
pdk: sky130
conditions: {load_cap: 2pF}
targets:
  gain_db: {min: 60}
  ugf_hz: {min: 10MHz}
  power_w: {max: 500uW}
  swing_v: {min: 1.0, max: 1.6}
""")


def test_the_full_target_reads_every_bound_the_implicit_ones_and_the_conditions():
    t = full_target(SPEC, 2e-12, 1.8)
    named = {FULL_SPEC_METRICS[i] for i in range(FULL_SPEC_DIM) if t.present[i]}
    assert named == {"gain_db", "ugf_hz", "power_w", "swing_v", "stable", "pm_min_deg", "peaking_db", "all_saturated"}
    g = FULL_SPEC_METRICS.index("gain_db")
    # gain, UGF and PM on the behavioural vector's scales; a one-sided bound conditions inside it
    assert t.lower[g] == pytest.approx(0.6) and math.isinf(t.upper[g]) and t.value[g] > t.lower[g]
    p = FULL_SPEC_METRICS.index("power_w")
    assert t.upper[p] == pytest.approx(normalise_metric("power_w", 500e-6)) and t.value[p] < t.upper[p]
    s = FULL_SPEC_METRICS.index("swing_v")
    assert t.value[s] == pytest.approx(0.5 * (t.lower[s] + t.upper[s]))         # a window: its middle
    assert t.value[FULL_SPEC_METRICS.index("stable")] == 1.0
    assert torch.allclose(t.conditions, torch.tensor(condition_vector(2e-12, 1.8)))
    assert condition_vector(5e-12, 1.8) == [0.0, 0.0]


def test_a_finetune_starts_reading_gain_ugf_and_pm_as_the_behavioural_model_does():
    state = load_checkpoint(default_checkpoint())
    beh = model_from_checkpoint(state)
    model = CktGen(full_spec_config(beh.config))
    init_from_behavioural(model, state)
    model.eval()
    spec = torch.tensor([[0.7, -2.0, 0.8], [0.4, -1.0, 0.6]])
    present = torch.tensor([[True, True, False], [True, False, True]])
    full = torch.zeros(2, FULL_SPEC_DIM)
    full[:, :3] = spec
    fpresent = torch.zeros(2, FULL_SPEC_DIM, dtype=torch.bool)
    fpresent[:, :3] = present
    with torch.no_grad():
        mu_v, lv_v = beh.encode_vector(spec, present)
        mu_f, lv_f = model.encode_full(full, fpresent, torch.zeros(2, 2))
        z = torch.randn(3, beh.config.d_latent)
        assert torch.allclose(model.heads.full(z)[:, :3], beh.heads.vector(z), atol=1e-6)
    assert torch.allclose(mu_v, mu_f, atol=1e-6) and torch.allclose(lv_v, lv_f, atol=1e-6)
    # the shared parts are the behavioural model's
    assert torch.equal(model.decoder.state_dict()[next(iter(model.decoder.state_dict()))],
                       beh.decoder.state_dict()[next(iter(beh.decoder.state_dict()))])


def test_the_store_pairs_behavioural_circuits_with_their_realisations_full_spec(sky130_store):
    data = full_spec_data(sky130_store)
    with Dataset.open(sky130_store) as ds:
        rows = [r for r in ds.records() if r.performance is not None]
    realised = [r for r in rows if r.provenance.get("source") == "realised"]
    assert sum(len(d) for d in data.values()) == len(realised) < len(rows)      # the template has no source
    for split, d in data.items():
        mine = [r for r in realised if r.split == split]
        for i, r in enumerate(mine):
            assert d.hashes[i] == Circuit.from_dict(r.provenance["behavioural"]).canonical_hash()
            assert d.spec[i, 0].item() == pytest.approx(max(-20.0, r.performance.gain_db) / 100, abs=1e-5)
            assert d.conditions[i, 0].item() == pytest.approx(math.log10(r.provenance["conditions"]["cl"] / 5e-12),
                                                              abs=1e-5)
    assert not torch.isnan(data["train"].spec[:, 0]).any()


@pytest.fixture(scope="module")
def trained(sky130_store, tmp_path_factory):
    data = full_spec_data(sky130_store)
    out = tmp_path_factory.mktemp("gen")
    state = train_full_spec(data["train"], out, TrainConfig(epochs=8, batch_size=8, lr=1e-3),
                            init_from=default_checkpoint(), test=data["test"], model_name="g.pt")
    return data, out, state


def test_training_fits_the_pairs_and_a_killed_run_resumes_to_the_same_weights(trained, tmp_path):
    data, out, state = trained
    hist = state["history"]
    assert hist[-1]["total"] < hist[1]["total"]
    assert {"test_loss", "test_type_acc", "test_edge_acc", "test_head_mae"} <= set(hist[-1])
    # the same run stopped after 3 epochs and continued ends where the uninterrupted one did
    cfg = TrainConfig(epochs=8, batch_size=8, lr=1e-3)
    train_full_spec(data["train"], tmp_path, cfg, init_from=default_checkpoint(), test=data["test"], stop_after=3,
                    model_name="g.pt")
    again = train_full_spec(data["train"], tmp_path, cfg, init_from=default_checkpoint(), test=data["test"],
                            model_name="g.pt")
    for k, v in state["model"].items():
        assert torch.allclose(v, again["model"][k], atol=1e-5), k
    # another starting point in the same folder is refused, not mixed in
    with pytest.raises(ValueError, match="another run"):
        train_full_spec(data["train"], tmp_path, cfg, init_from=None, model_name="g.pt")


def test_proposals_are_valid_distinct_and_realised_as_generate_candidates(trained):
    _, out, _ = trained
    path = out / "g.pt"
    assert is_full_spec(path) and not is_full_spec(default_checkpoint())
    model = load_full_spec_model(path)
    got = propose_full(model, SPEC, 3, load_f=2e-12, vdd=1.8, seed=1)
    assert 1 <= len(got) <= 3 and all(is_valid(c) for c in got)
    assert len({c.canonical_hash() for c in got}) == len(got)
    # ranked by the head's predicted shortfall (one topology at a time keeps the order within ties)
    score = full_shortfall(model, got, full_target(SPEC, 2e-12, 1.8))
    assert score.shape == (len(got),) and torch.isfinite(score).all()
    cands = model_candidates(SPEC, load_technology("sky130"), n=3, checkpoint=str(path), seed=1)
    assert cands and all(isinstance(c, (Candidate, Skipped)) for c in cands)
    names = [c.origin for c in cands]
    assert all(n.startswith("full-spec model proposal") for n in names), names
    # the behavioural model is still asked when named
    beh = model_candidates(SPEC, load_technology("sky130"), n=2, checkpoint=str(default_checkpoint()), seed=1)
    assert all(not c.origin.startswith("full-spec") for c in beh)


def test_train_pdk_trains_the_generator_and_refuses_what_does_not_apply(sky130_store, tmp_path):
    r = CliRunner().invoke(main, ["train", "--pdk", "sky130", "--db", str(sky130_store), "--from-scratch",
                                  "--no-generator", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--from-scratch" in r.output and not (tmp_path / "x").exists()
    r = CliRunner().invoke(main, ["train", "--from-scratch", "-o", str(tmp_path / "y")])
    assert r.exit_code == 2 and "--pdk" in r.output
    r = CliRunner().invoke(main, ["train", "--pdk", "sky130", "--db", str(sky130_store), "--epochs", "2",
                                  "--from-scratch", "-o", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    g = json.loads(r.output)["generator"]
    assert g["source"] == "scratch" and g["train_pairs"] > 0 and g["validation_topologies"] >= 1
    assert 1 <= g["chosen_epoch"] <= g["epochs"]
    assert (tmp_path / "run" / "generator" / "sky130_generator.pt").is_file()
    assert json.loads((tmp_path / "run" / "generator" / "generator.json").read_text())["chosen_epoch"] == g["chosen_epoch"]
