"""The transistor-level dataset (cktflow.dataset.transistor_build): the draw, a real build on a local
Ray pool with real ngspice and sky130, resuming, the split, and the CLI's refusals."""

from __future__ import annotations

import collections
import json

import pytest
from click.testing import CliRunner

from pdk_required import require_pdk

require_pdk()

from cktflow.dataset import Dataset, dataset_stats  # noqa: E402
from cktflow.dataset.transistor_build import (PER_TOPOLOGY, TEMPLATE_EVERY, build_transistor_dataset,  # noqa: E402
                                              draw_transistor_circuits)
from cktflow.transistor import TransistorCircuit  # noqa: E402
from cli import main  # noqa: E402


def test_the_draw_is_deterministic_and_covers_each_topology_at_several_sizes():
    a = draw_transistor_circuits(3 * PER_TOPOLOGY, seed=3)
    b = draw_transistor_circuits(3 * PER_TOPOLOGY, seed=3)
    assert [d.circuit.canonical_hash() for d in a] == [d.circuit.canonical_hash() for d in b]
    assert [d.slot for d in a] == [k // PER_TOPOLOGY for k in range(3 * PER_TOPOLOGY)]
    assert a[0].provenance["source"] == "template" and a[PER_TOPOLOGY].provenance["source"] == "realised"
    assert "behavioural" in a[PER_TOPOLOGY].provenance        # the behavioural source travels with it
    for slot in range(3):
        group = [d.circuit for d in a if d.slot == slot]
        assert len({c.topology_hash() for c in group}) == 1           # one topology per slot
        assert len({c.canonical_hash() for c in group}) == len(group)  # at distinct sizes
        first = group[0].sizes()
        for c in group[1:]:
            # every size stays within its bounds and on its grid (with_sizes would raise otherwise)
            assert c.with_sizes(**c.sizes()) == c
            assert any(abs(v / first[k] - 1) > 0.05 for k, v in c.sizes().items())
    # a template's later slots draw new sizings, never its own sizes again (one row per circuit)
    many = draw_transistor_circuits(4 * TEMPLATE_EVERY * 2 * 2, seed=3, per_topology=2)
    assert len({d.circuit.canonical_hash() for d in many}) == len(many)
    # another seed draws other behavioural topologies
    other = draw_transistor_circuits(3 * PER_TOPOLOGY, seed=4)
    assert other[PER_TOPOLOGY].provenance["behavioural_topology"] != a[PER_TOPOLOGY].provenance["behavioural_topology"]


def test_a_build_measures_stores_splits_by_topology_and_resumes(tmp_path):
    db = tmp_path / "sky130.sqlite"
    n, k = 12, 3              # 4 topologies: a template, then realised ones (TEMPLATE_EVERY > 3)
    assert TEMPLATE_EVERY > 3
    s = build_transistor_dataset(n, seed=2, db_path=db, per_topology=k, num_workers=2, progress=False)
    assert s.simulated == n and s.stored == n and s.topologies == 4 and s.workers == 2
    assert s.train + s.test == n and s.test >= k and s.per_minute > 0
    with Dataset.open(db) as ds:
        rows = ds.records(only_ok=False)
        st = dataset_stats(ds)
    assert len(rows) == n and all(isinstance(r.circuit, TransistorCircuit) for r in rows)
    assert st["topology_overlap"] == 0 and st["topologies"] == 4
    # the template trains (every design offers it); a realised topology is the test split
    assert {r.split for r in rows if r.provenance["source"] == "template"} == {"train"}
    assert {r.provenance["source"] for r in rows if r.split == "test"} == {"realised"}
    measured = [r for r in rows if r.ok]
    assert len(measured) >= n // 2, collections.Counter(r.failure for r in rows)
    # every testbench's figures are stored, not only the AC ones
    p = measured[0].performance
    for metric in ("gain_db", "power_w", "supply_a", "cmrr_db", "psrr_db", "noise_v_per_rthz", "all_saturated"):
        assert p.get(metric) is not None, metric
    assert all(r.provenance["conditions"]["cl"] == 5e-12 and r.testbench.startswith("sky130-opamp_tb-")
               for r in rows)
    assert "power_w" in st["labels"] and st["all_saturated"]["n"] == len(measured)
    # a rerun measures nothing again; a larger one only what is new
    again = build_transistor_dataset(n, seed=2, db_path=db, per_topology=k, num_workers=1, progress=False)
    assert again.simulated == 0 and again.already_stored == n and again.stored == 0


def test_the_cli_refuses_what_does_not_apply(tmp_path):
    r = CliRunner().invoke(main, ["dataset", "build", "--per-topology", "3", "--db", str(tmp_path / "x.sqlite")])
    assert r.exit_code == 2 and "--pdk" in r.output
    r = CliRunner().invoke(main, ["dataset", "build", "--pdk", "nosuchpdk", "--db", str(tmp_path / "x.sqlite")])
    assert r.exit_code == 2 and "nosuchpdk" in r.output
    r = CliRunner().invoke(main, ["dataset", "build", "--load-range", "1pF:10pF", "--db", str(tmp_path / "x.sqlite")])
    assert r.exit_code == 2 and "--pdk" in r.output
    for bad in ("1pF", "10pF:1pF", "a:b"):
        r = CliRunner().invoke(main, ["dataset", "build", "--pdk", "sky130", "--load-range", bad,
                                      "--db", str(tmp_path / "x.sqlite")])
        assert r.exit_code == 2 and "--load-range" in r.output, r.output
    assert not (tmp_path / "x.sqlite").exists()


@pytest.mark.slow
def test_the_cli_builds_and_reports_as_json(tmp_path):
    db = tmp_path / "s.sqlite"
    r = CliRunner().invoke(main, ["dataset", "build", "--pdk", "sky130", "--n", "4", "--per-topology", "2",
                                  "--workers", "1", "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["stored"] == 4 and data["circuits_per_minute"] > 0
    r = CliRunner().invoke(main, ["dataset", "stats", "--db", str(db)])
    assert r.exit_code == 0 and "power_w" in r.output and "saturation" in r.output
