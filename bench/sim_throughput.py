"""Simulation throughput on the same generated circuits, side by side in one run.

(a) `ngspice -b` as a subprocess per netlist, one at a time, the usual approach as AutoCkt's
    ngspice wrapper does it: `os.system("ngspice -b deck >/dev/null 2>&1")` on a deck whose
    `.control` block runs the analysis and `wrdata`s V(out) and V(in) as text, read back with
    numpy.genfromtxt; ngspice's defaults otherwise (no .spiceinit);
(a') the same subprocess approach tuned: no shell, `set num_threads=1` in a .spiceinit (so
    OpenMP cannot slow it down), a binary raw file (`-r out.raw`) read with numpy.frombuffer;
    both (a) and (a') measure every result with spice_sim.measure, as (b) and (c) do;
(b) one in-process shared ngspice (spice_sim.engine);
(c) the cktflow Ray pool on this machine's CPUs (Ray start-up reported apart);
and the wall time of `cktflow dataset build --n BUILD_N` from nothing, Ray start-up included.
--stability N prices the usable-in-feedback measurements on N circuits in one in-process engine,
side by side: the AC sweep alone, with the exact poles (what every simulation now does), and with
the unity-gain follower's transient too (what verification runs and specs on overshoot/settling do).

    python bench/sim_throughput.py [--n 2000] [--seed 1] [--workers N] [--build-n 10000] [--json]
    python bench/sim_throughput.py --stability 1000
    python bench/sim_throughput.py --sky130 24 [--workers 2] [--rounds 2]

--sky130 N is the transistor-level row instead (bench/sky130_row.py): N full measurements of the
sky130 two-stage Miller op-amp (op, AC, swing, noise, step), each with other sizes, by (i) one
in-process ngspice, (ii) the Ray pool, (iii) `ngspice -b` per self-contained deck.

The machine may be shared: figures are for the load at the time and are pessimistic then. With
Linux's sched_autogroup, all processes of one session share one CPU share, so on a busy machine
the pool's workers together get about what the single in-process engine gets: the CPU ms per
simulation (printed for each method) and the cores the workers actually used tell the pool's own
overhead apart from the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cktflow.circuit import OcbGenerator, testbench
import numpy as np

from spice_sim import SimJob, measure
from spice_sim.engine import get_engine
from spice_sim.jobs import run_job
from spice_sim.pool import SimPool

ROOT = Path(__file__).resolve().parents[1]


def read_ac_raw(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Frequencies and complex vectors of an ngspice binary raw file holding one AC plot."""
    data = path.read_bytes()
    head, _, body = data.partition(b"Binary:\n")
    lines = head.decode("latin-1").splitlines()
    nvars = int(next(ln for ln in lines if ln.startswith("No. Variables:")).split(":")[1])
    npoints = int(next(ln for ln in lines if ln.startswith("No. Points:")).split(":")[1])
    start = lines.index("Variables:") + 1
    names = [lines[start + k].split()[1].lower() for k in range(nvars)]
    values = np.frombuffer(body, dtype=np.complex128, count=nvars * npoints).reshape(npoints, nvars)
    vectors = {name: values[:, k] for k, name in enumerate(names)}
    return vectors["frequency"].real, vectors


def autockt_style(decks: list[str]) -> tuple[float, int, float]:
    """(seconds, failures, CPU seconds of the children) for the usual shell + .control/wrdata approach."""
    failures = 0
    with tempfile.TemporaryDirectory(prefix="nga-") as tmp:
        paths = []
        for k, deck in enumerate(decks):
            # ngspice -b exits 1 after a .control run ("no simulations run" by the batch pass), so
            # success is judged by the written file, as such wrappers end up doing
            body = deck.rstrip().removesuffix(".end")
            p = Path(tmp, f"c{k}.cir")
            p.write_text(body + f".control\nrun\nwrdata {tmp}/ac{k}.csv v(out) v(in)\n.endc\n.end\n")
            paths.append(p)
        c0 = os.times()
        t0 = time.perf_counter()
        for k, p in enumerate(paths):
            os.system(f"ngspice -b {p} >/dev/null 2>&1")
            out = Path(tmp, f"ac{k}.csv")
            if not out.exists():
                failures += 1
                continue
            table = np.genfromtxt(out)
            # wrdata writes, per vector, the scale then the real and imaginary parts
            freq, vout, vin = table[:, 0], table[:, 1] + 1j * table[:, 2], table[:, 4] + 1j * table[:, 5]
            measure(freq, vout / vin)
        seconds = time.perf_counter() - t0
        c1 = os.times()
        return seconds, failures, (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)


def subprocess_per_netlist(decks: list[str]) -> tuple[float, int, float]:
    """(seconds, failures, CPU seconds of the ngspice processes) for `ngspice -b -r out.raw deck.cir`."""
    failures = 0
    with tempfile.TemporaryDirectory(prefix="ngb-") as tmp:
        Path(tmp, ".spiceinit").write_text("set num_threads=1\n")
        paths = []
        for k, deck in enumerate(decks):
            p = Path(tmp, f"c{k}.cir")
            p.write_text(deck)
            paths.append(p)
        c0 = os.times()
        t0 = time.perf_counter()
        for p in paths:
            r = subprocess.run(["ngspice", "-b", "-r", "out.raw", p.name], cwd=tmp, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode != 0:
                failures += 1
                continue
            freq, vec = read_ac_raw(Path(tmp, "out.raw"))
            measure(freq, vec["v(out)"] / vec["v(in)"])
        seconds = time.perf_counter() - t0
        c1 = os.times()
        return seconds, failures, (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(decks: list[str]) -> tuple[float, int, float]:
    """(seconds, failures, CPU seconds)."""
    engine = get_engine()
    c0, t0 = time.process_time(), time.perf_counter()
    results = [run_job(engine, SimJob(d)) for d in decks]
    return time.perf_counter() - t0, sum(not r.ok for r in results), time.process_time() - c0


def stability_cost(n: int, seed: int, rounds: int = 4) -> dict:
    """CPU ms per simulation of the same circuits: AC only, AC + exact poles, AC + poles + follower
    transient, interleaved in `rounds` slices so that the machine's load hits them alike."""
    from cktflow.circuit import follower_testbench

    circuits = OcbGenerator(seed=seed).take(n)
    jobs = {"ac": [SimJob(testbench(c), poles=False) for c in circuits],
            "ac+poles": [SimJob(testbench(c)) for c in circuits],
            "ac+poles+step": [SimJob(testbench(c), follower=follower_testbench(c)) for c in circuits]}
    engine = get_engine()
    cpu = dict.fromkeys(jobs, 0.0)
    size = -(-n // rounds)
    for r in range(rounds):
        for name, js in jobs.items():
            c0 = time.process_time()
            for j in js[r * size:(r + 1) * size]:
                run_job(engine, j)
            cpu[name] += time.process_time() - c0
    return {name: 1000 * s / n for name, s in cpu.items()}


def pool_map(pool: SimPool, decks: list[str]) -> tuple[float, int, float]:
    """(seconds, failures, CPU seconds of the workers)."""
    pids = pool.worker_pids()
    c0 = sum(_cpu_seconds(p) for p in pids)
    t0 = time.perf_counter()
    results = pool.map([SimJob(d) for d in decks])
    seconds = time.perf_counter() - t0
    return seconds, sum(not r.ok for r in results), sum(_cpu_seconds(p) for p in pids) - c0


def compare(decks: list[str], rounds: int, workers: int | None, cache: Path) -> dict:
    """(a), (a'), (b), (c) on the same decks. The decks are cut into `rounds` slices and the methods
    take turns slice by slice, so that a change in the machine's load (it may be shared) hits all
    of them alike instead of whichever happened to run at that moment."""
    t0 = time.perf_counter()
    pool = SimPool(num_workers=workers, temp_dir=cache / "ray", progress=False).start()
    start = time.perf_counter() - t0
    pool.map([SimJob(d) for d in decks[:2 * pool.num_workers]])      # load each actor's ngspice
    get_engine()
    methods = (("a", autockt_style), ("a2", subprocess_per_netlist), ("b", in_process),
               ("c", lambda d: pool_map(pool, d)))
    totals = {key: [0.0, 0, 0.0] for key, _ in methods}
    size = -(-len(decks) // rounds)
    for k in range(0, len(decks), size):
        part = decks[k:k + size]
        for key, fn in methods:
            for j, v in enumerate(fn(part)):
                totals[key][j] += v
    n = pool.num_workers
    t1 = time.perf_counter()
    pool.close()
    return {"totals": totals, "ray_start_s": start, "close_s": time.perf_counter() - t1, "workers": n}


def dataset_build(n: int, workers: int | None, cache: Path) -> float:
    """Wall time of the CLI building n circuits into a new file, from process start to exit."""
    env = dict(os.environ, CKTFLOW_CACHE=str(cache))
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-c", "import cli; cli.main()", "dataset", "build", "--n", str(n), "--seed", "1",
           "--db", str(cache / "bench.sqlite"), "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"cktflow dataset build failed:\n{out.stderr[-2000:]}")
    summary = json.loads(out.stdout)
    if summary["stored"] != n:
        raise RuntimeError(f"the build stored {summary['stored']} of {n} circuits")
    return seconds


def _figures(seconds: float, failures: int, cpu_seconds: float, n: int) -> dict:
    """The figures every method reports for its n simulations, computed one way for all."""
    return {"seconds": seconds, "sims_per_s": n / seconds, "failures": failures,
            "cpu_ms_per_sim": 1e3 * cpu_seconds / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="circuits simulated by each method")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, help="pool workers (default: one per CPU)")
    ap.add_argument("--rounds", type=int, default=4, help="slices the three methods take turns on")
    ap.add_argument("--build-n", type=int, default=10000, help="circuits for the dataset build timing (0: skip)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--stability", type=int, default=0, metavar="N",
                    help="only price the usable-in-feedback measurements on N circuits (see the docstring)")
    ap.add_argument("--sky130", type=int, default=0, metavar="N",
                    help="only the sky130 row: N op-amp measurements per method (see the docstring)")
    args = ap.parse_args()
    if args.sky130:
        sky130(args.sky130, args.workers or os.cpu_count() or 1, max(1, args.rounds), args.json)
        return
    if args.stability:
        ms = stability_cost(args.stability, args.seed, max(1, args.rounds))
        if args.json:
            print(json.dumps({"n": args.stability, "cpu_ms_per_sim": ms}, indent=2))
            return
        print(f"{args.stability} OCB circuits, one in-process ngspice, CPU ms per simulation:")
        for name, v in ms.items():
            print(f"  {name:<14} {v:7.2f} ms  ({v / ms['ac']:.2f}x the AC sweep alone)")
        return

    decks = [testbench(c) for c in OcbGenerator(seed=args.seed).take(args.n)]
    out: dict = {"n": args.n, "cpus": os.cpu_count(), "load_avg_1min_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="ckb-") as tmp:   # short: Ray's socket paths live below it
        cache = Path(tmp)
        cmp = compare(decks, max(1, args.rounds), args.workers, cache)
        (sa, fa, ca), (sa2, fa2, ca2), (sb, fb, cb), (sc, fc, cc) = (cmp["totals"][k] for k in ("a", "a2", "b", "c"))
        start, close, workers = cmp["ray_start_s"], cmp["close_s"], cmp["workers"]
        out.update({
            "a_ngspice_b_autockt_style": _figures(sa, fa, ca, args.n),
            "a2_ngspice_b_tuned": _figures(sa2, fa2, ca2, args.n),
            "b_in_process_engine": _figures(sb, fb, cb, args.n),
            "c_pool": {**_figures(sc, fc, cc, args.n), "workers": workers, "ray_start_s": start,
                       "close_s": close, "cores_used": cc / sc},
            "ratio_c_over_b": sb / sc, "ratio_c_over_a": sa / sc, "ratio_b_over_a": sa / sb,
            "ratio_c_over_a2": sa2 / sc, "ratio_b_over_a2": sa2 / sb,
        })
        if args.build_n:
            build_cache = cache / "build"
            build_cache.mkdir()
            secs = dataset_build(args.build_n, args.workers, build_cache)
            out["dataset_build"] = {"n": args.build_n, "seconds": secs, "circuits_per_s": args.build_n / secs}
    out["load_avg_1min_at_end"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{args.n} OCB circuits (1,101-point AC sweep) in {args.rounds} interleaved rounds, {out['cpus']} CPUs, "
          f"load average {out['load_avg_1min_at_start']:.2f} at start, {out['load_avg_1min_at_end']:.2f} at end")
    for key, label in (("a_ngspice_b_autockt_style", "(a) ngspice -b, AutoCkt-style"),
                       ("a2_ngspice_b_tuned", "(a') ngspice -b, tuned"),
                       ("b_in_process_engine", "(b) one in-process ngspice"),
                       ("c_pool", f"(c) cktflow pool, {workers} workers")):
        d = out[key]
        print(f"  {label:<32} {d['seconds']:8.2f} s  {d['sims_per_s']:8.1f} sims/s  "
              f"{d['cpu_ms_per_sim']:6.2f} CPU ms/sim  failures {d['failures']}")
    print(f"  pool Ray start-up {start:.2f} s, shut-down {close:.2f} s (not in (c)); the workers used "
          f"{out['c_pool']['cores_used']:.2f} of {workers} cores while (c) ran")
    print(f"  ratios: (c)/(b) = {out['ratio_c_over_b']:.2f}x   (c)/(a) = {out['ratio_c_over_a']:.2f}x   "
          f"(b)/(a) = {out['ratio_b_over_a']:.2f}x")
    print(f"  against the tuned subprocess: (c)/(a') = {out['ratio_c_over_a2']:.2f}x   "
          f"(b)/(a') = {out['ratio_b_over_a2']:.2f}x")
    if args.build_n:
        d = out["dataset_build"]
        print(f"  cktflow dataset build --n {d['n']} from nothing (Ray start-up included): {d['seconds']:.1f} s")


def sky130(n: int, workers: int, rounds: int, as_json: bool) -> None:
    """The sky130 row: (i), (ii), (iii) of bench/sky130_row.py side by side, with their ratios."""
    import sky130_row

    out: dict = {"n": n, "cpus": os.cpu_count(), "load_avg_1min_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="cks-") as tmp:   # short: Ray's socket paths live below it
        cmp = sky130_row.compare(n, workers, rounds, Path(tmp))
    (si, fi, ci), (sii, fii, cii), (siii, fiii, ciii) = (cmp["totals"][k] for k in ("i", "ii", "iii"))
    out.update({
        "i_in_process": _figures(si, fi, ci, n),
        "ii_pool": {**_figures(sii, fii, cii, n), "workers": cmp["workers"], "cores_used": cii / sii},
        "iii_ngspice_b": _figures(siii, fiii, ciii, n),
        "ray_start_s": cmp["ray_start_s"], "pool_warm_s": cmp["pool_warm_s"],
        "worker_library_load_s": cmp["worker_load_s"], "in_process_library_load_s": cmp["in_process_load_s"],
        "ratio_ii_over_i": si / sii, "ratio_ii_over_iii": siii / sii, "ratio_i_over_iii": siii / si,
        "load_avg_1min_at_end": os.getloadavg()[0],
    })
    if as_json:
        print(json.dumps(out, indent=2))
        return
    print(f"{n} full measurements of the sky130 two-stage Miller op-amp (op, AC, swing, noise, step; sizes varied) "
          f"in {rounds} interleaved rounds, {out['cpus']} CPUs, load average {out['load_avg_1min_at_start']:.2f} at "
          f"start, {out['load_avg_1min_at_end']:.2f} at end")
    for key, label in (("i_in_process", "(i) one in-process ngspice"),
                       ("ii_pool", f"(ii) Ray pool, {cmp['workers']} workers"),
                       ("iii_ngspice_b", "(iii) ngspice -b per deck")):
        d = out[key]
        print(f"  {label:<30} {d['seconds']:8.2f} s  {d['sims_per_s']:7.3f} measurements/s  "
              f"{d['cpu_ms_per_sim']:7.0f} CPU ms each  failures {d['failures']}")
    print(f"  not in the figures: Ray start-up {out['ray_start_s']:.1f} s; the library + testbench load "
          f"{out['in_process_library_load_s']:.1f} s in this process, "
          f"{', '.join(f'{x:.1f}' for x in out['worker_library_load_s'])} s in the workers; the pool's workers "
          f"used {out['ii_pool']['cores_used']:.2f} cores while (ii) ran")
    print(f"  ratios: (ii)/(i) = {out['ratio_ii_over_i']:.2f}x   (ii)/(iii) = {out['ratio_ii_over_iii']:.1f}x   "
          f"(i)/(iii) = {out['ratio_i_over_iii']:.1f}x")


if __name__ == "__main__":
    main()
