"""SessionJobs through the local simulator (time limit, child process) and the Ray pool: the deck
stays loaded in the worker between jobs, unsafe decks are refused there too, a hung analysis ends
at the time limit. Real ngspice; the sky130 case needs the installed PDK (slow: it loads the
library in a fresh worker)."""

from __future__ import annotations

import math
import tempfile

import pytest

from spice_sim import LocalSimulator
from spice_sim.session_jobs import Analysis, SessionJob

RC = "v1 in 0 dc {vin} ac 1\nr1 in out {r}\nc1 out 0 1n\nr2 out 0 {r}"
PARAMS = (("vin", 2.0), ("r", 1e3))


def _job(vin: float, *analyses: Analysis) -> SessionJob:
    return SessionJob(RC, analyses or (Analysis("op"),), params=PARAMS, values=(("vin", vin),))


def test_the_deck_stays_loaded_between_jobs_in_the_worker():
    with LocalSimulator(timeout_s=20) as sim:
        first = sim.run(_job(2.0))
        second = sim.run(_job(4.0, Analysis("op"), Analysis("ac", (1e3, 1e7, 10), ("out",))))
        third = sim.run(SessionJob(RC, (Analysis("op"),), params=PARAMS))     # no values: the load values
        assert third.ok and not third.loaded and third.outputs[0].voltages["out"] == pytest.approx(1.0)
        assert first.ok and second.ok, (first.message, second.message)
        assert first.loaded and not second.loaded
        assert first.outputs[0].voltages["out"] == pytest.approx(1.0)
        assert second.outputs[0].voltages["out"] == pytest.approx(2.0)
        ac = second.outputs[1]
        assert abs(ac["out"][0]) == pytest.approx(0.5 / abs(1 + 2j * math.pi * 1e3 * 500 * 1e-9), rel=1e-6)


def test_unsafe_decks_and_time_limits_are_results():
    with LocalSimulator(timeout_s=3) as sim:
        bad = sim.run(SessionJob(RC + "\n.include /etc/passwd", params=PARAMS))
        assert bad.failure == "unsafe_netlist" and "outside the PDK folder" in bad.message
        ctl = sim.run(SessionJob(RC + "\n.control\nshell ls\n.endc", params=PARAMS))
        assert ctl.failure == "unsafe_netlist" and ".control" in ctl.message
        hung = sim.run(_job(2.0, Analysis("tran", (1e-15, 1.0))))
        assert hung.failure == "timeout"
        after = sim.run(_job(3.0))         # a fresh worker loads the deck again
        assert after.ok and after.loaded and after.outputs[0].voltages["out"] == pytest.approx(1.5)


@pytest.mark.slow
def test_session_jobs_on_the_ray_pool():
    pytest.importorskip("ray")
    import ray
    from spice_sim.pool import SimPool
    if ray.is_initialized():
        ray.shutdown()
    with tempfile.TemporaryDirectory(prefix="ckt-ray-") as tmp:
        with SimPool(num_workers=2, timeout_s=20, temp_dir=tmp, progress=False) as pool:
            results = pool.map([_job(float(v)) for v in range(1, 9)])
    assert all(r.ok for r in results)
    assert [r.outputs[0].voltages["out"] for r in results] == pytest.approx([v / 2 for v in range(1, 9)])
    assert sum(r.loaded for r in results) <= 2          # once per worker, not once per job


@pytest.mark.slow
def test_sky130_library_loads_once_per_worker():
    from cktflow.technology import load_technology
    from cktflow.transistor import model_library
    tech = load_technology("sky130")
    if not tech.is_installed():
        pytest.skip("the sky130 PDK is not installed: run `cktflow pdk install sky130`")
    nfet = "sky130_fd_pr__nfet_01v8"
    deck = f"vdd vdd 0 1.8\nvin g 0 dc 0.75 ac 1\nrd vdd d 50k\nxm1 d g 0 0 {nfet} W={{wn}} L=1 nf=1"
    lib = model_library(tech, "tt")
    with LocalSimulator(timeout_s=60) as sim:
        res = [sim.run(SessionJob(deck, (Analysis("op"),), library=lib, params=(("wn", 2.0),),
                                  values=(("wn", w),), device_models=frozenset({nfet}))) for w in (2.0, 4.0, 8.0)]
    assert all(r.ok for r in res), [r.message for r in res]
    assert [r.loaded for r in res] == [True, False, False]
    assert res[0].load_seconds > 1.0 and max(r.seconds for r in res[1:]) < 1.0
    gms = [r.outputs[0].devices["xm1"].gm for r in res]
    assert gms[0] < gms[1] < gms[2]
