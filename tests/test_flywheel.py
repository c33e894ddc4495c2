"""The flywheel on a small real dataset: verified circuits are appended with provenance, the model is
fine-tuned from the checkpoint, and a finished run is read back instead of redone."""

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from cli import main  # noqa: E402
from cktflow.dataset import Dataset  # noqa: E402
from cktflow.model.sample import default_checkpoint  # noqa: E402

SPECS = """\
- name: easy
  targets:
    gain_db: {min: 60dB}
    ugf_hz: {min: 100MHz}
    pm_deg: {min: 60deg}
"""


@pytest.fixture
def small_dataset(tmp_path, example_dataset):
    if not default_checkpoint().is_file():
        pytest.skip(f"the shipped checkpoint {default_checkpoint()} does not exist yet")
    path = tmp_path / "data.sqlite"
    example_dataset(path, 40, 10)
    return path


def test_flywheel_appends_with_provenance_and_resumes(tmp_path, small_dataset):
    specs = tmp_path / "specs.yaml"
    specs.write_text(SPECS)
    out = tmp_path / "fly"
    args = ["flywheel", "--specs", str(specs), "--rounds", "1", "--dataset", str(small_dataset), "-n", "6",
            "--budget", "40", "--epochs", "1", "--out", str(out), "--json"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)["rounds"][0]
    assert summary["success"] == 1 and summary["appended"] >= 1
    assert summary["simulations_per_success"] == summary["simulations"] <= 40
    with Dataset.open(small_dataset) as ds:
        new = [x for x in ds.records() if x.provenance.get("source") == "generate"]
    assert len(new) == summary["appended"]
    for rec in new:
        p = rec.provenance
        assert p["model"] == str(default_checkpoint()) and len(p["model_sha256"]) == 16
        assert p["run_id"] == summary["rows"][0]["run_id"] and p["flywheel_round"] == 1
        assert p["spec"]["name"] == "easy" and "sizing" in p
        assert rec.split in ("train", None) and rec.performance is not None
    # every appended (verified) circuit passes an independent re-measurement, implicit targets included
    from cktflow.flow import load_spec_list
    from cktflow.simulate import simulate
    spec = load_spec_list(specs)[0]
    assert spec.implicit_bounds and all(spec.passes(r.performance) for r in simulate([x.circuit for x in new]))
    assert summary["train_circuits"] >= 30          # the dataset's labelled training rows, not the default set
    model = out / "round-1" / "model" / "model.pt"
    assert model.is_file() and json.loads((out / "round-1" / "model" / "finetune.json").read_text())["source"] \
        == str(default_checkpoint())
    again = CliRunner().invoke(main, args, catch_exceptions=False)       # finished: read back, nothing redone
    assert json.loads(again.stdout)["rounds"][0]["rows"] == summary["rows"]


def test_spec_list_errors_name_file_and_item(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- targets:\n    gain_db: {min: 60}\n- targets:\n    nonsense_db: {min: 1}\n")
    r = CliRunner().invoke(main, ["flywheel", "--specs", str(bad)])
    assert r.exit_code == 2 and "item 2" in r.output and "nonsense_db" in r.output
