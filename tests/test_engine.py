"""The ngspice engine itself: stack-notes pitfalls handled, failures typed, memory kept flat."""

import pytest

from spice_sim import NetlistError, SimJob, SimulationError
from spice_sim.engine import get_engine

GMIN = """gmin stepping needed
.options noopiter
D1 a 0 dmod
R1 in a 1k
G1 out 0 a 0 1m
R2 out 0 1Meg
V0 in 0 DC 5 AC 1
.model dmod d is=1e-14
.ac dec 10 1 1G
.end
"""

CONFLICT = """two sources fight over one node
V1 a 0 DC 1
V2 a 0 DC 2
R9 a out 1k
R2 out 0 1k
V0 in 0 DC 0 AC 1
R3 in 0 1k
.ac dec 10 1 1G
.end
"""


@pytest.fixture(scope="module")
def engine():
    return get_engine()


def test_gmin_stepping_notes_are_not_errors(engine):
    # PySpice's own run() raises NgSpiceCommandError on these stderr notes although the analysis
    # finished; the engine must return the data.
    data = engine.run_ac(GMIN)
    assert "gmin stepping" in engine.last_log.lower()
    assert len(data.freq) == 91
    from PySpice.Spice.NgSpice.Shared import NgSpiceCommandError
    ng = engine._ng
    ng.load_circuit(GMIN)
    with pytest.raises(NgSpiceCommandError):
        ng.run()
    engine._cleanup()


def test_nonconvergence_is_a_typed_error(engine):
    with pytest.raises(SimulationError) as err:
        engine.run_ac(CONFLICT)
    assert err.value.kind == "nonconvergence"
    assert "timestep too small" in str(err.value).lower()


def test_bad_netlist_is_a_typed_error_and_engine_recovers(engine):
    with pytest.raises(NetlistError) as err:
        engine.run_ac(GMIN.replace("R2 out 0 1Meg", "R2 out 0 1Meg 3 4"))
    assert err.value.kind == "bad_netlist"
    assert len(engine.run_ac(GMIN).freq) == 91


def test_one_thread_and_no_plots_left_behind(engine):
    out, _ = engine._command("echo $num_threads")
    assert out.strip().endswith("1")
    for _ in range(5):
        engine.run_ac(GMIN)
    assert engine._plots() == ["const"]


def test_memory_stays_flat_over_many_runs(engine):
    import resource
    for _ in range(50):
        engine.run_ac(GMIN)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(400):
        engine.run_ac(GMIN)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 10   # without removing circuits and plots it grew 40 MB over these 400 runs (measured)


def test_local_simulator_time_limit_and_recovery(simulator):
    hang = "hangs\nR1 in 0 1k\nV1 in 0 SIN(0 1 1G)\nR2 in out 1k\nR3 out 0 1k\n.tran 1f 1\n.end\n"
    old = simulator.timeout_s
    simulator.timeout_s = 1.5
    try:
        res = simulator.run(SimJob(hang))
    finally:
        simulator.timeout_s = old
    assert res.failure == "timeout" and res.seconds < 10
    assert simulator.run(SimJob(GMIN)).ok   # a fresh ngspice took over
