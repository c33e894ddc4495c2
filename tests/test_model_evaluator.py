"""The evaluator network (the paper's learned judge): it learns the classes it is trained on, reloads
to the same outputs, and refuses weights of another architecture with a clear message."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)   # small models; extra threads only contend on a shared machine

from cktflow.model.data import build_tensor_data, load_examples  # noqa: E402
from cktflow.model.evaluator import load_evaluator, train_evaluator  # noqa: E402
from cktflow.model.checkpoint import save_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = build_tensor_data([e for e in load_examples() if e.split == "train"][:32])
    path = tmp_path_factory.mktemp("ev") / "evaluator.pt"
    return data, train_evaluator(data, path, epochs=200, batch_size=16, lr=3e-3, device="cpu"), path


def test_evaluator_names_the_classes_it_was_trained_on(trained):
    data, model, _ = trained
    with torch.no_grad():
        predicted = model.predict_classes(model.embed_circuits(data.x))
    assert (predicted == data.classes).all(-1).float().mean() >= 0.9
    # and its circuit embeddings rank a circuit's own spec above the others more often than chance
    with torch.no_grad():
        c = torch.nn.functional.normalize(model.embed_circuits(data.x), dim=-1)
        s = torch.nn.functional.normalize(model.embed_specs(data.classes), dim=-1)
    top1 = ((c @ s.T).argmax(-1) == torch.arange(len(data))).float().mean()
    assert top1 > 3 / len(data)


def test_evaluator_reloads_to_identical_outputs(trained):
    data, model, path = trained
    again = load_evaluator(path)
    with torch.no_grad():
        assert torch.equal(model.embed_circuits(data.x), again.embed_circuits(data.x))


def test_evaluator_of_another_architecture_is_refused(tmp_path, trained):
    _, model, _ = trained
    old = tmp_path / "evaluator.pt"
    save_checkpoint(old, {"config": model.config.to_dict(), "model": {}, "epochs": 1})
    with pytest.raises(ValueError, match="earlier cktflow"):
        load_evaluator(old)


def test_shipped_weights_load_with_this_code():
    """The shipped evaluator and predictor load into the networks this code builds (an output
    added to one must not break the other's weights)."""
    from cktflow.model.checkpoint import default_checkpoint
    from cktflow.model.predictor import load_predictor
    weights = default_checkpoint().parent
    load_evaluator(weights / "evaluator.pt")
    assert load_predictor(weights / "predictor.pt").predicts_usable
