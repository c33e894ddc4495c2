"""The dataset store and build: idempotent appends, the topology split, export round trip, and a
build that is SIGKILLed and resumed (real Ray, real ngspice, real SQLite)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cktflow.circuit import Circuit, OcbGenerator
from cktflow.dataset import Dataset, Record, dataset_stats, export_dataset, import_dataset, plan_split
from cktflow.simulate import INVALID, simulate, testbench_version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def labelled():
    """Twelve generated circuits measured with ngspice, plus one invalid circuit."""
    circuits = OcbGenerator(seed=7).take(12)
    circuits.append(Circuit(circuits[0].nodes[:1], ()))
    results = simulate(circuits, progress=False)
    assert results[-1].failure == INVALID and all(r.ok for r in results[:-1])
    return [Record.from_result(c, r, {"source": "test", "index": i}, simulator="ngspice-test",
                               testbench=testbench_version(), split="train" if i % 3 else "test")
            for i, (c, r) in enumerate(zip(circuits, results))]


def _key(r: Record):
    return (r.hash, r.topology_hash, r.split, r.failure, r.performance, json.dumps(r.provenance, sort_keys=True),
            r.simulator, r.testbench, r.circuit.canonical_hash())


def test_append_is_idempotent(tmp_path, labelled):
    with Dataset.open(tmp_path / "d.sqlite") as ds:
        assert ds.append(labelled) == len(labelled)
        assert ds.append(labelled) == 0
        assert ds.append(labelled[:3] + labelled[:3]) == 0
        assert len(ds) == len(labelled)
        ok = ds.records()
        assert len(ok) == len(labelled) - 1 and all(r.ok for r in ok)
        everything = ds.records(only_ok=False)
        assert [_key(r) for r in everything] == [_key(r) for r in labelled]
        assert {r.split for r in ds.records(split="test")} == {"test"}
        with pytest.raises(ValueError):
            ds.records(split="validation")


def test_record_rules(labelled):
    r = labelled[0]
    with pytest.raises(ValueError):
        Record(r.circuit, r.performance, failure="timeout")
    with pytest.raises(ValueError):
        Record(r.circuit, r.performance, split="dev")
    assert Record(r.circuit, r.performance).hash == r.circuit.canonical_hash()


def test_failed_append_rolls_back(tmp_path, labelled):
    with Dataset.open(tmp_path / "d.sqlite") as ds:
        ds.append(labelled[:2])
        bad = Record(labelled[5].circuit, labelled[5].performance)
        object.__setattr__(bad, "split", "dev")     # slips past Record's check; the table's CHECK refuses it
        with pytest.raises(sqlite3.IntegrityError):
            ds.append([labelled[4], bad])
        assert len(ds) == 2                         # labelled[4], inserted first, was rolled back too


def test_export_round_trip(tmp_path, labelled):
    with Dataset.open(tmp_path / "d.sqlite") as ds:
        ds.append(labelled)
        for name in ("x.parquet", "x.jsonl"):
            assert export_dataset(ds, tmp_path / name) == len(labelled)
            with Dataset.open(tmp_path / f"back-{name}.sqlite") as back:
                assert import_dataset(back, tmp_path / name) == len(labelled)
                assert [_key(r) for r in back.records(only_ok=False)] == [_key(r) for r in labelled]
        with pytest.raises(ValueError):
            export_dataset(ds, tmp_path / "x.csv")
    # an edited file is refused: its hash no longer matches the circuit
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["circuit"]["nodes"][-1]["values"] = {k: v * 2 for k, v in row["circuit"]["nodes"][-1]["values"].items()}
    (tmp_path / "edited.jsonl").write_text(json.dumps(row) + "\n")
    with Dataset.open(tmp_path / "e.sqlite") as ds, pytest.raises(ValueError, match="does not match"):
        import_dataset(ds, tmp_path / "edited.jsonl")


def test_split_by_topology_blocks():
    circuits = OcbGenerator(seed=1).take(2000)
    topo = [c.topology_hash() for c in circuits]
    split = plan_split(topo, seed=1)
    assert split.count("test") == 200
    for b in range(0, 2000, 20):      # whole K = 20 blocks
        assert len(set(split[b:b + 20])) == 1
    assert not {t for t, s in zip(topo, split) if s == "test"} & {t for t, s in zip(topo, split) if s == "train"}
    assert plan_split(topo, seed=1) == split
    assert plan_split(topo, seed=2) != split
    # two blocks with the same topology stay on the same side
    forced = topo[:100] + topo[:20]
    s2 = plan_split(forced, seed=3)
    assert s2[0] == s2[100]
    assert not {t for t, s in zip(forced, s2) if s == "test"} & {t for t, s in zip(forced, s2) if s == "train"}


def test_split_keeps_pinned_topologies_in_train():
    circuits = OcbGenerator(seed=1).take(400)
    topo = [c.topology_hash() for c in circuits]
    free = plan_split(topo, seed=1, test_fraction=0.25)
    tested = sorted({t for t, s in zip(topo, free) if s == "test"})
    pinned = frozenset(tested[:2])
    split = plan_split(topo, seed=1, test_fraction=0.25, keep_in_train=pinned)
    assert all(s == "train" for t, s in zip(topo, split) if t in pinned)
    assert split.count("test") == 100            # other topologies make up the share
    # every group pinned: nothing goes to test
    assert set(plan_split(topo, seed=1, test_fraction=0.25, keep_in_train=frozenset(topo))) == {"train"}


def _rows(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute("SELECT COUNT(*) FROM circuits").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:   # not created yet
        return 0


def test_build_resumes_after_sigkill(tmp_path):
    n = 1600
    db = tmp_path / "b.sqlite"
    env = dict(os.environ, CKTFLOW_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", "import cli; cli.main()", "dataset", "build", "--n", str(n), "--seed", "3",
           "--db", str(db), "--workers", "2", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _rows(db) == 0:     # a reader beside the writing build (WAL)
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build stored nothing in 180 s"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # Ray's processes, started by that build
        except ProcessLookupError:
            pass
    partial = _rows(db)
    assert 0 < partial < n
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["already_stored"] == partial
    assert summary["stored"] == n - partial
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT hash) FROM circuits").fetchone() == (n, n)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    indices = sorted(r[0] for r in con.execute("SELECT json_extract(provenance, '$.index') FROM circuits"))
    assert indices == list(range(n))
    con.close()
    with Dataset.open(db) as ds:
        st = dataset_stats(ds)
    assert st["splits"] == {"train": n - n // 10, "test": n // 10}
    assert st["topology_overlap"] == 0


def test_cli_stats_and_export(tmp_path, labelled):
    from cli import main
    db = tmp_path / "d.sqlite"
    with Dataset.open(db) as ds:
        ds.append(labelled)
    runner = CliRunner()
    res = runner.invoke(main, ["dataset", "stats", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert st["rows"] == len(labelled) and st["invalid"] == 1 and st["failures"] == {INVALID: 1}
    assert st["labels"]["gain_db"]["n"] == len(labelled) - 1
    res = runner.invoke(main, ["dataset", "stats", "--db", str(db)])
    assert res.exit_code == 0 and "gain_db" in res.output
    res = runner.invoke(main, ["dataset", "export", "--db", str(db), "-o", str(tmp_path / "o.parquet")])
    assert res.exit_code == 0 and (tmp_path / "o.parquet").exists()
    res = runner.invoke(main, ["dataset", "stats", "--db", str(tmp_path / "missing.sqlite")])
    assert res.exit_code == 2 and "missing.sqlite" in res.output


def test_cli_build_with_unreachable_cluster(tmp_path):
    import socket

    from cli import main
    with socket.socket() as s:          # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = CliRunner().invoke(main, ["dataset", "build", "--n", "20", "--db", str(tmp_path / "x.sqlite"),
                                    "--ray-address", f"127.0.0.1:{port}", "--json"])
    assert res.exit_code == 2, res.output
    assert f"127.0.0.1:{port}" in res.output
