"""Metric functions against small cases computed by hand."""

import numpy as np
import pytest

from cktflow.model.metrics import diversity, frechet_distance, matching_distance, r_precision, validity_share


def test_r_precision_by_hand():
    specs = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # circuit 0 points at spec 0 (rank 1); circuit 1 is nearest spec 0, then spec 1 (rank 2);
    # circuit 2 is nearest spec 1, then spec 2 (rank 2)
    circuits = np.array([[1.0, 0.1], [1.0, 0.9], [-0.5, 1.0]])
    rp = r_precision(circuits, specs)
    assert rp[1] == pytest.approx(1 / 3)
    assert rp[2] == pytest.approx(1.0)
    assert rp[3] == pytest.approx(1.0)


def test_r_precision_counts_ties_against_the_true_spec():
    specs = np.array([[1.0, 0.0], [1.0, 0.0]])
    circuits = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert r_precision(circuits, specs, top_k=(1, 2)) == {1: 0.0, 2: 1.0}


def test_matching_distance_by_hand():
    assert matching_distance(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]])) == pytest.approx(0.0)
    assert matching_distance(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 3.0], [0.0, -1.0]])) == \
        pytest.approx(1.5)   # (1 - 0 + 1 - (-1)) / 2


def test_frechet_distance():
    rng = np.random.RandomState(0)
    a = rng.randn(500, 4)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean shifted by (3, 4, 0, 0): distance |shift|^2 = 25
    assert frechet_distance(a, a + np.array([3.0, 4.0, 0.0, 0.0])) == pytest.approx(25.0, rel=1e-6)
    # one dimension: the Frechet distance is (mu_a - mu_b)^2 + (sd_a - sd_b)^2
    x = np.array([[-1.0], [1.0]])
    assert frechet_distance(x, 2 * x) == pytest.approx(2.0, rel=1e-6)   # var 2 and 8 (n - 1): 2 + 8 - 2 * 4
    with pytest.raises(ValueError):
        frechet_distance(a[:1], a)


def test_diversity_by_hand():
    two = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert diversity(two, n_pairs=10) == pytest.approx(5.0)
    assert diversity(np.ones((5, 3)), n_pairs=10) == 0.0
    assert diversity(two[:1]) == 0.0


def test_validity_share():
    assert validity_share([True, False, True, True]) == 0.75
    assert validity_share([1.0, 0.5]) == 0.75
    assert validity_share([]) == 0.0
