"""The fuzzers of tests/reliability/fuzz.py, small in the default run and larger with -m slow;
bench/reliability.py runs them at 10,000 cases each."""

import pytest

from .fuzz import ALL

pytest.importorskip("hypothesis")


@pytest.mark.parametrize("target", sorted(ALL))
def test_fuzz_small(target):
    out = ALL[target](60, seed=11, cli_every=10)
    assert out.cases >= 50 and out.failures == 0, out.summary()


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(ALL))
def test_fuzz_large(target):
    out = ALL[target](2000, seed=12)
    assert out.failures == 0, out.summary()
