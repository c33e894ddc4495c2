"""Fine-tuning starts from the checkpoint's weights and resumes like a training run."""

import json

import pytest

torch = pytest.importorskip("torch")

from cktflow.model.config import recipe  # noqa: E402
from cktflow.model.data import build_tensor_data, load_examples  # noqa: E402
from cktflow.model.finetune import FINETUNE_INFO, finetune  # noqa: E402
from cktflow.model.checkpoint import MODEL_NAME, load_checkpoint  # noqa: E402
from cktflow.model.train import train  # noqa: E402


@pytest.fixture(scope="module")
def data():
    examples = [e for e in load_examples() if e.split == "train"][:48]
    return build_tensor_data(examples)


@pytest.fixture(scope="module")
def source(tmp_path_factory, data):
    cfg, tcfg = recipe("tiny")
    tcfg.epochs = 2
    out = tmp_path_factory.mktemp("src")
    train(cfg, data, out, tcfg, device="cpu", progress=False)
    return out / MODEL_NAME


def test_finetune_starts_from_the_checkpoint(tmp_path, data, source):
    state = finetune(source, data, tmp_path / "ft", epochs=1, device="cpu", progress=False)
    cfg, tcfg = recipe("tiny")
    tcfg.epochs = 1
    scratch = train(cfg, data, tmp_path / "scratch", tcfg, device="cpu", progress=False)
    # two epochs of pre-training show in the first fine-tune epoch's loss
    assert state["history"][0]["total"] < scratch["history"][0]["total"]
    info = json.loads((tmp_path / "ft" / FINETUNE_INFO).read_text())
    assert info["source"] == str(source) and info["circuits"] == len(data)


def test_interrupted_finetune_resumes_to_the_same_weights(tmp_path, data, source):
    whole = finetune(source, data, tmp_path / "whole", epochs=2, device="cpu", progress=False)
    part = finetune(source, data, tmp_path / "part", epochs=2, device="cpu", progress=False, stop_after=1)
    assert part["epoch"] == 1
    resumed = finetune(source, data, tmp_path / "part", epochs=2, device="cpu", progress=False)
    assert resumed["epoch"] == 2
    for k, v in whole["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    assert load_checkpoint(tmp_path / "part" / MODEL_NAME)["epoch"] == 2


def test_finetune_carries_the_predictor_along(tmp_path, data, source):
    from cktflow.model.predictor import PREDICTOR_NAME, load_predictor, train_predictor
    src = tmp_path / "src"
    src.mkdir()
    (src / MODEL_NAME).write_bytes(source.read_bytes())
    train_predictor(data, src / PREDICTOR_NAME, epochs=1, d=16, members=1, device="cpu")
    finetune(src / MODEL_NAME, data, tmp_path / "ft", epochs=1, device="cpu", progress=False)
    before, after = load_predictor(src / PREDICTOR_NAME), load_predictor(tmp_path / "ft" / PREDICTOR_NAME)
    assert after.d == 16 and any(not torch.equal(v, after.state_dict()[k]) for k, v in before.state_dict().items())
    # a model without a predictor is fine-tuned without one
    finetune(source, data, tmp_path / "plain", epochs=1, device="cpu", progress=False)
    assert not (tmp_path / "plain" / PREDICTOR_NAME).exists()


def test_run_finetune_uses_the_datasets_training_split(tmp_path, source, example_dataset):
    from cktflow.model.finetune import run_finetune
    db = tmp_path / "grown.sqlite"
    rows = example_dataset(db, 30, 5)
    summary = run_finetune(source, db=db, out_dir=tmp_path / "ft", epochs=1, device="cpu", progress=False)
    assert summary["epochs"] == 1 and summary["source"] == str(source)
    assert summary["train_circuits"] == len(build_tensor_data([e for e in rows if e.split == "train"]))
    assert summary["final_test_loss"] is not None


def test_cli_train_finetune(tmp_path, source, example_dataset):
    from click.testing import CliRunner

    from cli import main
    db = tmp_path / "d.sqlite"
    example_dataset(db, 20)
    r = CliRunner().invoke(main, ["train", "--finetune", "--checkpoint", str(source), "--db", str(db), "--out",
                                  str(tmp_path / "ft"), "--epochs", "1", "--device", "cpu", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["epochs"] == 1 and summary["source"] == str(source)
    assert (tmp_path / "ft" / "model.pt").is_file()
    r = CliRunner().invoke(main, ["train", "--finetune", "--checkpoint", str(tmp_path / "nope.pt")])
    assert r.exit_code == 2 and "does not exist" in r.output
