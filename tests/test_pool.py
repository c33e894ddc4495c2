"""SimPool on a real local Ray with real ngspice: order, per-item failures, hung and killed workers."""

import os
import signal
import sys
import tempfile
import threading
import time

import pytest

pytest.importorskip("ray")

from cktflow.circuit import OcbGenerator, testbench  # noqa: E402
from spice_sim import SimJob  # noqa: E402
from spice_sim.pool import SimPool  # noqa: E402

TIMEOUT_S = 4.0

# A transient run with a 1 fs step over 1 s: ngspice really computes for days (it is not stuck in
# Python, so only killing the process ends it). The pool must end it at its time limit.
HANGING = """hanging deck
V1 in 0 DC 0 AC 1 SIN(0 1 1G)
R1 in out 1k
C1 out 0 1p
.tran 1f 1
.end
"""
BAD = "bad deck\nV1 in 0 DC 0 AC 1\nQ9 in out\n.ac dec 10 1 1g\n.end\n"
# two ideal sources in parallel: the operating point has no solution
NONCONVERGENT = ("voltage loop\nV1 in 0 DC 0 AC 1\nV2 in 0 DC 1 AC 0\nR1 in out 1k\nR2 out 0 1k\n"
                 ".ac dec 10 1 1g\n.end\n")


@pytest.fixture(scope="module")
def pool():
    import ray
    if ray.is_initialized():      # an earlier test left its Ray running: this pool must start its own
        ray.shutdown()
    with tempfile.TemporaryDirectory(prefix="ckt-ray-") as tmp:
        with SimPool(num_workers=2, timeout_s=TIMEOUT_S, temp_dir=tmp, progress=False) as p:
            # the embedded Ray keeps its session files where it was told to
            assert any(name.startswith("session_") for name in os.listdir(tmp))
            yield p
        assert not ray.is_initialized()


@pytest.fixture(scope="module")
def decks():
    return [testbench(c) for c in OcbGenerator(seed=5).take(60)]


@pytest.fixture(scope="module")
def reference(decks, simulator):
    """The same decks measured one by one in the local child process."""
    return [simulator.run(SimJob(d)) for d in decks]


def _same(a, b):
    assert a.failure == b.failure
    if a.performance is not None:
        assert a.performance.gain_db == pytest.approx(b.performance.gain_db, rel=1e-9, abs=1e-9)
        assert (a.performance.ugf_hz is None) == (b.performance.ugf_hz is None)


def test_order_preserved(pool, decks, reference):
    pool.chunk_size = 7          # many chunks, finishing out of order across the two actors
    try:
        results = pool.map([SimJob(d) for d in decks])
    finally:
        pool.chunk_size = None
    assert len(results) == len(decks)
    for got, want in zip(results, reference):
        _same(got, want)
    # the gains differ between circuits, so a shuffled result list could not pass the check above
    assert len({round(r.performance.gain_db, 6) for r in results if r.ok}) > 30


def test_failures_are_per_item(pool, decks, reference):
    jobs = [SimJob(decks[0]), SimJob(BAD), SimJob(decks[1]), SimJob(NONCONVERGENT), SimJob(decks[2]),
            SimJob(decks[3], output="nowhere")]
    results = pool.map(jobs)
    assert [r.failure for r in results] == [None, "bad_netlist", None, "nonconvergence", None, "bad_netlist"]
    assert "q9" in results[1].message.lower()
    for got, want in zip([results[0], results[2], results[4]], reference[:3]):
        _same(got, want)


def test_hung_simulation_times_out_without_stalling_the_rest(pool, decks, reference):
    replaced = pool.replaced_workers
    jobs = [SimJob(d) for d in decks[:20]] + [SimJob(HANGING)] + [SimJob(d) for d in decks[20:]]
    t0 = time.monotonic()
    results = pool.map(jobs)
    elapsed = time.monotonic() - t0
    assert results[20].failure == "timeout"
    assert "time limit" in results[20].message
    for got, want in zip(results[:20] + results[21:], reference):
        _same(got, want)
    assert pool.replaced_workers == replaced + 1
    assert elapsed < TIMEOUT_S + 30        # ended at its limit, plus one actor start on a busy machine
    # the replacement actor works
    assert pool.map([SimJob(decks[0])])[0].ok


def test_killed_worker_tasks_are_retried(pool, decks, reference):
    n_rep = 60
    jobs = [SimJob(d) for d in decks] * n_rep        # 3,600 simulations: several seconds of work
    out = {}
    runner = threading.Thread(target=lambda: out.setdefault("results", pool.map(jobs)))
    replaced = pool.replaced_workers
    victim = pool.worker_pids()[0]
    runner.start()
    time.sleep(1.5)
    assert runner.is_alive(), "the batch finished before the worker could be killed; make it larger"
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    results = out["results"]
    assert len(results) == len(jobs)
    assert pool.replaced_workers == replaced + 1
    assert victim not in pool.worker_pids()
    for k, got in enumerate(results):
        _same(got, reference[k % len(decks)])


def test_workers_are_recycled_after_their_share_without_losing_a_result(pool, decks, reference):
    """libngspice keeps native memory per circuit (docs/reliability.md, the soak): an actor is
    replaced by a fresh process after `recycle_after` simulations, between chunks."""
    before, pids = pool.recycled_workers, set(pool.worker_pids())
    pool.recycle_after = 150
    try:
        jobs = [SimJob(d) for d in decks] * 10
        results = pool.map(jobs)
    finally:
        pool.recycle_after = 50_000
    assert len(results) == len(jobs)
    for k, got in enumerate(results):
        _same(got, reference[k % len(decks)])
    assert pool.recycled_workers - before >= len(jobs) // 150 - len(pids)
    assert pool.recycled_workers > before and set(pool.worker_pids()) != pids


class _KillsItsWorker:
    """A job that takes its worker process down every time it runs (a poison job)."""

    def execute(self, engine):
        os._exit(1)


def test_a_job_that_kills_every_worker_is_given_up_and_the_rest_completes(pool, decks, reference):
    import ray.cloudpickle
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the workers cannot import tests/
    jobs = [SimJob(d) for d in decks] * 3
    jobs.insert(len(jobs) // 2, _KillsItsWorker())
    results = pool.map(jobs)
    bad = results.pop(len(jobs) // 2)
    assert bad.failure == "worker_died" and f"after {pool.max_attempts} workers" in bad.message
    for k, got in enumerate(results):
        _same(got, reference[k % len(decks)])


def test_empty_batch_and_bad_arguments(pool):
    assert pool.map([]) == []
    with pytest.raises(ValueError):
        SimPool(num_workers=0)
    with pytest.raises(ValueError):
        SimPool(timeout_s=0)


def test_workers_run_in_a_folder_of_their_own(pool, decks):
    """ngspice writes files into the working folder by itself (BSIM4's bsim4v5.out): the pool's
    and the local simulator's worker processes must not work in the user's folder."""
    from spice_sim.local import LocalSimulator
    own = f"cktflow-ngspice-{os.getuid()}"
    assert all(os.readlink(f"/proc/{pid}/cwd").endswith(own) for pid in pool.worker_pids())
    with LocalSimulator() as sim:
        assert sim.run(SimJob(decks[0])).failure is None
        assert os.readlink(f"/proc/{sim._proc.pid}/cwd").endswith(own)
    assert os.getcwd() != os.path.join(tempfile.gettempdir(), own)     # the caller stays where it was
