"""Fault injection (tests/reliability/faults.py) on real processes. The default run kills `size`
and `train` once each and resumes them; the pool, the head, `dataset build` and `generate` (Ray
start-up, model sampling: tens of seconds each) run with -m slow and in bench/reliability.py."""

import pytest

from . import faults


def test_size_killed_and_resumed():
    out = faults.size_kills(1, budget=12, seed=1)
    assert out.ok, out.summary()


def test_train_killed_and_resumed():
    out = faults.train_kills(1, epochs=2, seed=1)
    assert out.ok, out.summary()


@pytest.fixture(scope="module")
def cluster():
    with faults.HeadCluster() as c:
        yield c


@pytest.mark.slow
@pytest.mark.integration
def test_pool_worker_kills_on_a_cluster(cluster):
    out = faults.pool_worker_kills(n_sims=4000, kills=5, cluster=cluster)
    assert out.ok, out.summary()


@pytest.mark.slow
def test_pool_worker_kills_embedded():
    out = faults.pool_worker_kills(n_sims=2000, kills=3)
    assert out.ok, out.summary()


@pytest.mark.slow
@pytest.mark.integration
def test_build_killed_and_resumed(cluster):
    out = faults.build_kills(2, n=600, cluster=cluster)
    assert out.ok, out.summary()


@pytest.mark.slow
@pytest.mark.integration
def test_head_killed_mid_build():
    out = faults.head_kill(2000)
    assert out.ok, out.summary()


@pytest.mark.slow
@pytest.mark.integration
def test_auth_messages(cluster):
    out = faults.auth_messages(cluster)
    assert out.ok, out.summary()


@pytest.mark.slow
def test_generate_killed_and_resumed():
    out = faults.generate_kills(1)
    assert out.ok, out.summary()
