"""gm/Id characterisation of sky130's nfet_01v8 and pfet_01v8 on the Ray pool: wall time, points/s
and where the time goes.

    .venv/bin/python bench/characterize.py [--lengths 20] [--vgs 50] [--vds 20] [--workers 2] [--json]

The grid: `--lengths` values of L from 0.15 to 4 um (log-spaced, on the 5 nm grid) x `--vgs`
points of VGS over 0-1.8 V x `--vds` points of VDS over 0.05-1.8 V, VSB 0, tt, 27 C. The tables go
to a temporary cache, so every run simulates everything. Timed: Ray's start-up (the workers'
ngspice included), the characterisation (each worker loads the sky130 library once, then one
nested DC sweep per L), the shut-down. Per chunk the workers report the library load, the
parameter change + reset and the sweep itself; the rest is the driver (storing the chunks,
assembling the tables) and Ray.

`--per-point N` also prices the alternative the nested sweep replaces: N single operating points
of one device in one in-process ngspice (`alterparam` the bias, `op`), extrapolated to the grid.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cktflow.simulate import open_pool
from cktflow.transistor.characterize import characterize
from cktflow.transistor.gmid import Grid

DEVICES = ("nfet_01v8", "pfet_01v8")


def grid_of(n_l: int, n_vgs: int, n_vds: int) -> Grid:
    lengths = sorted({round(round(x / 0.005) * 0.005, 3) for x in np.geomspace(0.15, 4.0, n_l)})
    if len(lengths) != n_l:
        raise SystemExit(f"{n_l} lengths do not fit on the 5 nm grid between 0.15 and 4 um")
    return Grid(tuple(lengths), (0.0, 1.8, n_vgs), (0.05, 1.8, n_vds))


def per_point(n: int, l_um: float = 0.5) -> float:
    """Seconds per single op point (new VGS and VDS by alterparam, then op), in-process."""
    from spice_sim.analyses import Session
    from spice_sim.engine import get_engine

    from cktflow.technology import load_technology
    from cktflow.transistor import model_library
    tech = load_technology("sky130")
    model = tech.device("nfet_01v8").model
    deck = f"vd d 0 {{vds}}\nvg g 0 {{vgs}}\nxm1 d g 0 0 {model} W=5 L={l_um:g} nf=1"
    rng = np.random.default_rng(0)
    with Session(get_engine(), deck, library=model_library(tech, "tt"), params={"vgs": 0.5, "vds": 0.5},
                 device_models={model}) as s:
        t0 = time.perf_counter()
        for vg, vd in rng.uniform(0.05, 1.8, (n, 2)):
            s.set_params(vgs=float(vg), vds=float(vd))
            s.op()
        return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, default=20)
    ap.add_argument("--vgs", type=int, default=50)
    ap.add_argument("--vds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--per-point", type=int, default=0, metavar="N")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    grid = grid_of(args.lengths, args.vgs, args.vds)
    out: dict = {"devices": list(DEVICES), "grid": grid.to_dict(), "points": grid.points * len(DEVICES),
                 "workers": args.workers, "cpus": os.cpu_count(), "load_avg_1min_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="ckc-") as tmp:        # short: Ray's sockets live below it
        t0 = time.perf_counter()
        pool = open_pool(num_workers=args.workers, timeout_s=600, progress=False, chunk_size=1).start()
        out["ray_start_s"] = time.perf_counter() - t0
        try:
            t1 = time.perf_counter()
            run = characterize(DEVICES, grid, pool=pool, root=Path(tmp) / "gmid")
            out["characterize_s"] = time.perf_counter() - t1
        finally:
            t2 = time.perf_counter()
            pool.close()
            out["ray_close_s"] = time.perf_counter() - t2
    res = run.results
    out.update({
        "total_s": out["ray_start_s"] + out["characterize_s"] + out["ray_close_s"],
        "chunks": run.computed,
        "points_per_s": out["points"] / out["characterize_s"],
        "points_per_s_with_ray": out["points"] / (out["ray_start_s"] + out["characterize_s"]),
        "library_loads": sum(r.loaded for r in res),
        "worker_s": {"library_load": sum(r.load_seconds for r in res),
                     "params_and_reset": sum(r.reset_seconds for r in res),
                     "nested_sweeps": sum(r.sweep_seconds for r in res),
                     "jobs_total": sum(r.seconds for r in res)},
        "load_avg_1min_at_end": os.getloadavg()[0],
    })
    if args.per_point:
        s = per_point(args.per_point)
        out["per_point_op_s"] = s
        out["per_point_extrapolated_s"] = s * out["points"]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    g = grid
    print(f"gm/Id characterisation, sky130 {' + '.join(DEVICES)}, tt 27 C: {len(g.lengths)} L x {g.vgs[2]} VGS x "
          f"{g.vds[2]} VDS = {out['points']} points, {run.computed} chunks, {args.workers} workers, "
          f"{out['cpus']} CPUs, load average {out['load_avg_1min_at_start']:.2f} at start, "
          f"{out['load_avg_1min_at_end']:.2f} at end")
    print(f"  total {out['total_s']:.1f} s = Ray start-up {out['ray_start_s']:.1f} s + characterisation "
          f"{out['characterize_s']:.1f} s + shut-down {out['ray_close_s']:.1f} s")
    print(f"  {out['points_per_s']:.0f} points/s in the characterisation ({out['points_per_s_with_ray']:.0f} with "
          f"Ray's start-up)")
    w = out["worker_s"]
    print(f"  worker time: {out['library_loads']} library loads {w['library_load']:.1f} s, parameter change + "
          f"reset {w['params_and_reset']:.2f} s, nested sweeps {w['nested_sweeps']:.2f} s "
          f"({1e3 * w['nested_sweeps'] / run.computed:.1f} ms per {g.vgs[2]}x{g.vds[2]} plane), "
          f"jobs in all {w['jobs_total']:.1f} s")
    if args.per_point:
        print(f"  one op point per grid point instead: {1e3 * out['per_point_op_s']:.2f} ms each, "
              f"{out['per_point_extrapolated_s']:.0f} s for the grid on one core")


if __name__ == "__main__":
    main()
