"""The network on tiny configs: shapes, masking, causality, each loss term, and overfitting."""

import dataclasses

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)   # small models; extra threads only contend on a shared machine

from cktflow.circuit import OcbGenerator, is_valid  # noqa: E402
from cktflow.model.config import CktGenConfig, LossWeights  # noqa: E402
from cktflow.model.data import CircuitTensors, decode_circuit, encode_circuits  # noqa: E402
from cktflow.model.losses import gaussian_kl, loss_terms, masked_info_nce, reconstruction  # noqa: E402
from cktflow.model.network import CktGen  # noqa: E402

TINY = CktGenConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, d_ff=64, d_latent=8, dropout=0.0)


def _batch(n=6, seed=2):
    circuits = OcbGenerator(seed=seed).take(20 * n)[::20]
    classes = torch.tensor([[i % 4, i % 32, i % 6] for i in range(n)])
    spec = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return circuits, encode_circuits(circuits), classes, spec


def test_shapes():
    torch.manual_seed(0)
    model = CktGen(TINY)
    _, x, classes, spec = _batch()
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (6, 8)
    assert model.encode_classes(classes)[0].shape == (6, 8)
    assert model.encode_vector(spec)[0].shape == (6, 8)
    out = model.decode(mu, x)
    assert out["type"].shape == (6, 8, 26) and out["pos"].shape == (6, 8, 8)
    assert out["values"].shape == (6, 8, 3) and out["edge"].shape == (6, 8, 8)
    logits, vec = model.heads(mu)
    assert [lg.shape[-1] for lg in logits] == [4, 32, 6] and vec.shape == (6, 3)


def test_padding_does_not_change_the_encoding():
    torch.manual_seed(0)
    model = CktGen(TINY).eval()
    _, x, _, _ = _batch()
    noisy = dataclasses.replace(x, types=torch.where(x.nmask, x.types, torch.full_like(x.types, 7)),
                                pos=torch.where(x.nmask, x.pos, torch.full_like(x.pos, 5)))
    assert torch.allclose(model.encode(x)[0], model.encode(noisy)[0], atol=1e-5)


def test_decoder_is_causal():
    """Outputs for node t depend only on nodes before t (and, through the heads, node t's own type/pos)."""
    torch.manual_seed(0)
    model = CktGen(TINY).eval()
    _, x, _, _ = _batch()
    z = torch.randn(6, 8)
    later = dataclasses.replace(x, types=x.types.clone(), values=x.values.clone())
    later.types[:, 4:] = 3
    later.values[:, 4:] = 0.5
    a, b = model.decode(z, x), model.decode(z, later)
    assert torch.allclose(a["type"][:, :5], b["type"][:, :5], atol=1e-5)
    assert not torch.allclose(a["type"][:, 5:], b["type"][:, 5:], atol=1e-5)


def test_every_loss_term_is_finite_and_weighted():
    torch.manual_seed(0)
    model = CktGen(TINY)
    _, x, classes, spec = _batch()
    present = torch.ones_like(spec, dtype=torch.bool)
    total, terms = loss_terms(model, x, classes, spec, present, LossWeights())
    expected = {f"{k}_{s}" for k in ("type", "pos", "edge", "value") for s in ("circuit", "spec")}
    assert set(terms) == expected | {"kl", "align", "nce", "cls", "reg"}
    assert all(torch.isfinite(v) and v >= 0 for v in terms.values())
    zero = LossWeights(**{f.name: 0.0 for f in dataclasses.fields(LossWeights) if f.name != "nce_temperature"})
    torch.manual_seed(0)
    total0, _ = loss_terms(model, x, classes, spec, present, zero)
    assert float(total0.detach()) == 0.0 and float(total.detach()) > 0


def test_reconstruction_is_zero_for_a_perfect_decoder():
    _, x, _, _ = _batch()
    big = 50.0
    out = {"type": torch.nn.functional.one_hot(x.types, 26).float() * big,
           "pos": torch.nn.functional.one_hot(x.pos, 8).float() * big,
           "values": x.values.clone(), "edge": (x.adj * 2 - 1) * big}
    rec = reconstruction(out, x)
    assert all(float(v) < 1e-6 for v in rec.values())


def test_gaussian_kl_and_masked_info_nce_by_hand():
    mu, lv = torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2)
    assert float(gaussian_kl(mu, lv)) == pytest.approx(0.5)              # 0.5 * |mu|^2
    assert float(gaussian_kl(mu, lv, mu, lv)) == pytest.approx(0.0)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    same = torch.zeros(2, 2, dtype=torch.bool)
    expected = torch.log(1 + torch.exp(torch.tensor(-1.0 / 0.1)))       # -log(e^10 / (e^10 + e^0))
    assert float(masked_info_nce(a, a, same, 0.1)) == pytest.approx(float(expected), rel=1e-4)
    # with the other pair sharing the spec, nothing is left to push apart: the loss is zero
    assert float(masked_info_nce(a, a.flip(0), torch.ones(2, 2, dtype=torch.bool), 0.1)) == pytest.approx(0.0)


def test_tiny_model_overfits_a_handful_of_circuits():
    torch.manual_seed(0)
    cfg = CktGenConfig(d_model=64, n_heads=2, enc_layers=1, dec_layers=2, d_ff=128, d_latent=16, dropout=0.0)
    model = CktGen(cfg)
    circuits, x, classes, spec = _batch(n=8, seed=3)
    opt = model.configure_optimizer(3e-3, 0.0, (0.9, 0.99))
    present = torch.ones_like(spec, dtype=torch.bool)
    for _ in range(300):
        total, _ = loss_terms(model, x, classes, spec, present, LossWeights())
        opt.zero_grad()
        total.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        mu, _ = model.encode(x)
        out = model.decode(mu, x)
        m = x.nmask
        assert bool((out["type"].argmax(-1)[m] == x.types[m]).all())
        assert bool((out["pos"].argmax(-1)[m] == x.pos[m]).all())
        gen: CircuitTensors = model.decoder.generate(mu)
    for i, c in enumerate(circuits):          # free-running decode from the latent: same topology
        n = int(gen.nmask[i].sum())
        back = decode_circuit(gen.types[i, :n].tolist(), gen.pos[i, :n].tolist(), gen.values[i, :n].numpy(),
                              gen.adj[i, :n, :n].numpy())
        assert is_valid(back)
        assert back.topology_hash() == c.topology_hash()
