"""The relabelling migration: rows measured before the stability metrics get them from ngspice, in
place, with provenance kept and extended; an interrupted migration resumes without measuring a row
twice (real SQLite, real ngspice)."""

import json

import pytest

from cktflow.circuit import OcbGenerator
from cktflow.dataset import Dataset, Record, relabel, stale_count
from cktflow.simulate import simulate, testbench_version
from cktflow.sizing import SerialPool
from spice_sim import Performance

OLD_TESTBENCH = "ocb-ac-dec100-1-1e+11"     # what the store wrote before the stability metrics


@pytest.fixture
def old_store(tmp_path):
    circuits = OcbGenerator(seed=21).take(12)
    results = simulate(circuits, progress=False)
    records = []
    for i, (c, r) in enumerate(zip(circuits, results)):
        if r.ok:        # an old label: the AC metrics only
            old = Performance(**{k: v for k, v in r.performance.to_dict().items()
                                 if k in ("gain_db", "ugf_hz", "pm_deg", "bw_hz", "gm_db", "ocb_pm_deg")})
            records.append(Record(c, old, split=("train", "test")[i % 2], provenance={"source": "bench101", "i": i},
                                  simulator="ngspice-39", testbench=OLD_TESTBENCH))
    path = tmp_path / "old.sqlite"
    with Dataset.open(path) as ds:
        ds.append(records)
    return path, {c.canonical_hash(): r for c, r in zip(circuits, results)}


class Interrupted(Exception):
    pass


class DiesOnSecondBatch(SerialPool):
    """A real local ngspice pool that is killed (raises) on its second batch: a faked interruption."""
    calls = 0

    def map(self, jobs):
        DiesOnSecondBatch.calls += 1
        if DiesOnSecondBatch.calls == 2:
            raise Interrupted
        return super().map(jobs)


def test_relabel_adds_the_stability_metrics_and_keeps_provenance(old_store):
    path, fresh = old_store
    with Dataset.open(path) as ds:
        before = {r.hash: r for r in ds.records(only_ok=False)}
        assert stale_count(ds) == len(before) > 0
    summary = relabel(path, chunk=5)
    assert summary.relabelled == len(before) and summary.already == 0 and summary.rows == len(before)
    with Dataset.open(path) as ds:
        after = {r.hash: r for r in ds.records(only_ok=False)}
        assert stale_count(ds) == 0
    assert set(after) == set(before)
    for h, r in after.items():
        assert r.split == before[h].split and r.testbench == testbench_version()
        assert r.provenance["source"] == "bench101" and r.provenance["i"] == before[h].provenance["i"]
        (entry,) = r.provenance["relabelled"]
        assert entry["from"] == OLD_TESTBENCH and entry["to"] == testbench_version()
        assert r.performance.stable == fresh[h].performance.stable is not None
        assert r.performance.peaking_db == pytest.approx(fresh[h].performance.peaking_db)
        assert r.performance.gain_db == pytest.approx(before[h].performance.gain_db)
    again = relabel(path)
    assert again.relabelled == 0 and again.already == len(before)


def test_interrupted_relabel_resumes_without_repeating_a_row(old_store):
    path, _ = old_store
    DiesOnSecondBatch.calls = 0
    with DiesOnSecondBatch() as pool, pytest.raises(Interrupted):
        relabel(path, pool, chunk=4)
    with Dataset.open(path) as ds:
        n = len(ds)
        assert stale_count(ds) == n - 4                  # the first chunk committed, nothing else
    summary = relabel(path, chunk=4)
    assert summary.already == 4 and summary.relabelled == n - 4
    with Dataset.open(path) as ds:
        assert len(ds) == n and stale_count(ds) == 0
        for row in ds.query("SELECT provenance FROM circuits"):
            assert len(json.loads(row[0])["relabelled"]) == 1
        assert ds.query("PRAGMA integrity_check")[0][0] == "ok"


def test_migrate_command(old_store):
    from click.testing import CliRunner

    from cli import main
    path, _ = old_store
    r = CliRunner().invoke(main, ["dataset", "migrate", "--db", str(path), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["relabelled"] == data["rows"] > 0 and data["testbench"] == testbench_version()
    stats = CliRunner().invoke(main, ["dataset", "stats", "--db", str(path)], catch_exceptions=False)
    assert "usable in feedback" in stats.output and "labelled before" not in stats.output
    missing = CliRunner().invoke(main, ["dataset", "migrate", "--db", str(path.parent / "none.sqlite")])
    assert missing.exit_code == 2 and "cktflow dataset build" in missing.output
