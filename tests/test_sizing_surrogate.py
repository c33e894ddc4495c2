"""The local metric models of sizing: fitted on known functions, and their steps on a real circuit."""

import math

import numpy as np
import pytest

from cktflow.circuit import Circuit
from cktflow.simulate import simulate
from cktflow.sizing import SerialPool, Sizer, SizingConfig
from cktflow.sizing.surrogate import fit_models, propose
from cktflow.spec import parse_spec
from spice_sim import Performance

MILLER = "examples/circuits/two_stage_miller.json"
# the user's targets only: these tests fit synthetic gain and UGF data, which has no stability metrics
WINDOW = "name: w\ntargets: {gain_db: {min: 50, max: 70}, ugf_hz: {min: 10MHz, max: 100MHz}}\nimplicit: false\n"


def _perf(gain_db: float, ugf_hz: float) -> Performance:
    return Performance(gain_db=gain_db, ugf_hz=ugf_hz)


def test_metric_scale_uses_decades_for_hz_and_the_shortfall_scale_otherwise():
    spec = parse_spec(WINDOW)
    gain, ugf = spec.targets
    assert gain.scaled(60.0) == pytest.approx(3.0)        # 60 dB / 20 dB
    assert ugf.scaled(1e8) == pytest.approx(8.0)
    assert math.isnan(ugf.scaled(None))


def test_linear_models_recover_a_linear_metric_and_step_into_the_window():
    # gain = 40 dB + 20 dB per decade of x0; log10 ugf = 6 + x1: the window needs x0 in [0.5, 1.5],
    # x1 in [1, 2]; the points sit at x = 0 and around it, all outside the window
    spec = parse_spec(WINDOW)
    rng = np.random.default_rng(0)
    xs = rng.normal(0.0, 0.2, (8, 3))
    perfs = [_perf(40 + 20 * x[0], 10 ** (6 + x[1])) for x in xs]
    models = fit_models(spec, xs, perfs, centre=np.zeros(3), radius=1.0, ridge=1e-6)
    assert models.slope[0] == pytest.approx([1.0, 0.0, 0.0], abs=1e-3)   # gain/20 per decade
    assert models.slope[1] == pytest.approx([0.0, 1.0, 0.0], abs=1e-3)
    steps = propose(models, ["R", "C", "gm"], np.full(3, -5.0), np.full(3, 5.0), radius=2.0, n=3, margin=0.01,
                    rng=np.random.default_rng(1), samples=3000)
    assert len(steps) == 3
    for u in steps:
        gain, log_ugf = 40 + 20 * u[0], 6 + u[1]
        assert 50 < gain < 70 and 7 < log_ugf < 8


def test_models_need_two_measured_points():
    spec = parse_spec(WINDOW)
    assert fit_models(spec, np.zeros((2, 3)), [_perf(60, 1e7), None], np.zeros(3), 1.0) is None


def test_sizer_asks_model_steps_once_the_initial_design_is_measured():
    miller = Circuit.from_json(open(MILLER).read())
    spec = parse_spec(WINDOW)
    with SerialPool() as pool:
        sizer = Sizer(miller, spec, SizingConfig(budget=12, batch=4, n_initial=4), seed=2)
        phases = []
        while not sizer.done:
            xs = sizer.ask()
            phases += list(sizer._phases)
            sizer.tell(xs, simulate([sizer.space.circuit_at(x) for x in xs], pool, progress=False))
    assert phases[:4] == ["start", "init", "init", "init"]
    assert "model" in phases[4:]
    assert sizer.evaluations <= 12
