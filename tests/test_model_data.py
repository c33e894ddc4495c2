"""Circuit <-> tensors and performance -> spec labels."""

import math

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)   # small models; extra threads only contend on a shared machine

from cktflow.circuit import OcbGenerator, load_pdk  # noqa: E402
from cktflow.model.data import (MAX_NODES, decode_circuit, denormalise_value, encode_circuits,  # noqa: E402
                                normalise_value, spec_classes, spec_vector)
from spice_sim import Performance  # noqa: E402


def test_encode_decode_round_trip_is_exact():
    circuits = OcbGenerator(seed=5).take(60)[::3]
    x = encode_circuits(circuits)
    assert x.types.shape == (20, MAX_NODES) and x.adj.shape == (20, MAX_NODES, MAX_NODES)
    for i, c in enumerate(circuits):
        n = int(x.nmask[i].sum())
        assert n == len(c.nodes)
        assert x.types[i, 0] == 0 and x.types[i, n - 1] == 1          # In first, Out last
        assert torch.all(torch.triu(x.adj[i]) == 0)                     # edges only point back in the order
        back = decode_circuit(x.types[i, :n].tolist(), x.pos[i, :n].tolist(), x.values[i, :n].numpy(),
                              x.adj[i, :n, :n].numpy())
        assert back.canonical_hash() == c.canonical_hash()


def test_value_normalisation_spans_the_pdk_range():
    pdk = load_pdk()
    for kind, (lo, hi) in pdk.value_range.items():
        assert normalise_value(kind, lo, pdk) == pytest.approx(0.0)
        assert normalise_value(kind, hi, pdk) == pytest.approx(1.0)
        assert denormalise_value(kind, normalise_value(kind, 3.3 * lo, pdk), pdk) == pytest.approx(3.3 * lo)
        assert denormalise_value(kind, 1.7, pdk) == pytest.approx(hi)    # clipped into the range


def test_spec_classes_follow_the_ocb_normalisation():
    # gain 150 dB -> floor(1.5 + 1.19531) = 2; ocb pm -45 deg -> floor(0.5 + 2.00001) = 2; 3.5 GHz -> 3
    perf = Performance(gain_db=150.0, ugf_hz=3.5e9, pm_deg=80.0, ocb_pm_deg=-45.0)
    assert spec_classes(perf) == (2, 3, 2)
    assert spec_classes(Performance(gain_db=-50.0, ugf_hz=2e8, pm_deg=10.0, ocb_pm_deg=180.0)) == (0, 0, 0)
    assert spec_classes(Performance(gain_db=-30.0)) is None                    # no UGF: no label
    assert spec_classes(Performance(gain_db=10.0, ugf_hz=1e12, pm_deg=1.0, ocb_pm_deg=-180.0))[1] == 31


def test_spec_vector_is_normalised():
    vec = spec_vector(Performance(gain_db=60.0, ugf_hz=1e8, pm_deg=45.0, ocb_pm_deg=0.0))
    assert vec == pytest.approx((0.6, -1.0, 0.5))
    assert spec_vector(Performance(gain_db=60.0)) is None
    assert math.isfinite(sum(spec_vector(Performance(gain_db=0.0, ugf_hz=1.0, pm_deg=-200.0))))
