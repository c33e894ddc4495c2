import pytest

from spice_sim import LocalSimulator


@pytest.fixture(scope="session")
def simulator():
    """One ngspice child process for the whole test session (real ngspice, not a mock)."""
    with LocalSimulator(timeout_s=30) as sim:
        yield sim
