import pytest

from spice_sim import LocalSimulator


@pytest.fixture(scope="session")
def simulator():
    """One ngspice child process for the whole test session (real ngspice, not a mock)."""
    with LocalSimulator(timeout_s=30) as sim:
        yield sim


@pytest.fixture
def example_dataset():
    """Write a small real Dataset file from the shipped examples: `make(path, n_train, n_test=0)`
    stores the first n_train training and n_test test examples (provenance source "test") and
    returns those examples. Shared by the fine-tune and flywheel tests, which both start from one."""
    def make(path, n_train: int, n_test: int = 0):
        from cktflow.dataset import Dataset, Record
        from cktflow.model.data import load_examples

        examples = load_examples()
        rows = ([e for e in examples if e.split == "train"][:n_train]
                + [e for e in examples if e.split == "test"][:n_test])
        with Dataset.open(path) as ds:
            ds.append(Record(e.circuit, e.performance, split=e.split, provenance={"source": "test"},
                             simulator="ngspice", testbench="ocb") for e in rows)
        return rows
    return make


@pytest.fixture(scope="session")
def sky130_store(tmp_path_factory):
    """A real sky130 store, measured once per session by real ngspice on a local Ray pool: a template
    and realised topologies, 4 sizings each, at loads of 1-10 pF. Shared by the predictor's and the
    full-spec generator's tests (their modules call require_pdk first)."""
    from cktflow.dataset.transistor_build import build_transistor_dataset

    db = tmp_path_factory.mktemp("sky") / "sky130.sqlite"
    build_transistor_dataset(16, seed=2, db_path=db, per_topology=4, num_workers=2, progress=False,
                             load_range=(1e-12, 10e-12))
    return db
