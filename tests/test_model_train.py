"""Training: checkpoints hold everything, resume makes the same updates, CLI errors are exit code 2."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)   # small models; extra threads only contend on a shared machine

from click.testing import CliRunner  # noqa: E402

from cktflow.circuit import OcbGenerator  # noqa: E402
from cktflow.model.config import recipe  # noqa: E402
from cktflow.model.data import TensorData, encode_circuits  # noqa: E402
from cktflow.model.checkpoint import CHECKPOINT_NAME, MODEL_NAME, load_checkpoint, model_from_checkpoint  # noqa: E402
from cktflow.model.train import train  # noqa: E402

from cli import main  # noqa: E402


def _data(n=24):
    circuits = OcbGenerator(seed=9).take(n)
    g = torch.Generator().manual_seed(0)
    classes = torch.stack([torch.randint(0, k, (n,), generator=g) for k in (4, 32, 6)], dim=1)
    return TensorData(circuits, encode_circuits(circuits), classes, torch.randn(n, 3, generator=g),
                      [c.canonical_hash() for c in circuits])


def _tiny(epochs):
    cfg, tcfg = recipe("tiny")
    tcfg.epochs = epochs
    tcfg.batch_size = 8
    return cfg, tcfg


def test_checkpoint_contents_and_reload_give_identical_outputs(tmp_path):
    cfg, tcfg = _tiny(1)
    state = train(cfg, _data(), tmp_path, tcfg, device="cpu", progress=False)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert {"model", "config", "train_config", "optimizer", "scheduler", "epoch", "history"} <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["config"] == cfg.to_dict()
    x = _data(4).x
    a = model_from_checkpoint(state)
    b = model_from_checkpoint(load_checkpoint(tmp_path / MODEL_NAME))
    with torch.no_grad():
        assert torch.equal(a.encode(x)[0], b.encode(x)[0])
        z = torch.randn(4, cfg.d_latent)
        ga, gb = a.decoder.generate(z), b.decoder.generate(z)
    assert torch.equal(ga.types, gb.types) and torch.equal(ga.adj, gb.adj) and torch.equal(ga.values, gb.values)


def test_resume_continues_exactly(tmp_path):
    cfg, tcfg = _tiny(2)
    data = _data()
    straight = train(cfg, data, tmp_path / "a", tcfg, device="cpu", progress=False)
    train(cfg, data, tmp_path / "b", tcfg, device="cpu", progress=False, stop_after=1)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["epoch"] == 1
    resumed = train(cfg, data, tmp_path / "b", tcfg, device="cpu", progress=False, resume=True)
    assert resumed["epoch"] == 2
    for k, v in straight["model"].items():
        assert torch.allclose(v, resumed["model"][k], atol=1e-6), k


def test_resume_refuses_another_architecture(tmp_path):
    cfg, tcfg = _tiny(1)
    train(cfg, _data(), tmp_path, tcfg, device="cpu", progress=False)
    cfg.d_model = 48
    with pytest.raises(ValueError, match="another model config"):
        train(cfg, _data(), tmp_path, tcfg, device="cpu", progress=False, resume=True)


def test_cli_train_and_evaluate_report_bad_input():
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--recipe", "nope"])
    assert res.exit_code == 2 and "unknown recipe 'nope'" in res.output
    res = runner.invoke(main, ["evaluate", "--checkpoint", "/nonexistent/model.pt"])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert runner.invoke(main, ["train", "--help"]).exit_code == 0
