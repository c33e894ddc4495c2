"""The sky130 row of bench/sim_throughput.py: full measurements of the two-stage Miller op-amp
(templates/sky130/miller2.cir: op, AC, swing DC sweep, noise, rising and falling step) per second,
side by side in one run, each job with other sizes so nothing is reused:

(i)   one in-process ngspice through OpampJob.execute (the bench, library included, loaded once);
(ii)  the Ray pool (SimPool, one job per actor call: a job takes about a fifth of a second);
(iii) `ngspice -b` per deck as a subprocess: a self-contained deck (the library's `.lib` line, the
      amplifier with this job's sizes as `.param`s, the same testbench) whose `.control` block runs
      the same analyses with the same settings and rewires the testbench with the same `alter`s
      between them (the noise range and the step timing from the AC sweep's UGF, as OpampBench does) and writes them to a binary raw file, which is read
      back and measured (gain, UGF, PM) with spice_sim.measure. ngspice reparses the library every time.

The library loads and Ray's start-up are reported apart; the methods take turns slice by slice so
that a change in the machine's load hits all of them alike.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from spice_sim import measure
from spice_sim.engine import get_engine
from spice_sim.pool import SimPool

from cktflow.resources import templates_dir
from cktflow.technology import load_technology
from cktflow.transistor import Conditions, model_library
from cktflow.transistor.bench import (AC_POINTS_PER_DECADE, AC_START_HZ, AC_STOP_HZ, STEP_DIVS, SWING_STEP_V,
                                      opamp_testbench)
from cktflow.transistor.jobs import OpampJob

DUT = (templates_dir() / "sky130" / "miller2.cir").read_text()
COND = Conditions(vcm=1.1, cl=1e-12)


def jobs(n: int, seed: int = 1) -> list[OpampJob]:
    """n measurements of miller2, each with its own input pair, second stage and bias."""
    rng = np.random.default_rng(seed)
    snap = lambda x: round(round(x / 0.005) * 0.005, 3)  # noqa: E731  (the 5 nm grid)
    out = []
    for _ in range(n):
        sizes = {"w_in": snap(rng.uniform(3, 6)), "w_2": snap(rng.uniform(24, 40)),
                 "w_load": snap(rng.uniform(3, 5)), "ibias": float(rng.uniform(15e-6, 25e-6))}
        out.append(OpampJob(DUT, "miller2", tuple(sorted(sizes.items())), COND))
    return out


def batch_deck(job: OpampJob) -> str:
    """The self-contained `ngspice -b` deck of one job (see the module docstring)."""
    tech = load_technology(job.pdk)
    cond = job.conditions.resolved(tech)
    lib = model_library(tech, cond.corner)
    sizes = {**_params(DUT), **dict(job.sizes)}
    amp = "\n".join(ln for ln in DUT.splitlines() if not ln.lower().startswith(".param"))
    tb, _ = opamp_testbench(tech, job.dut_name)
    conds = {"vdd": cond.vdd, "vcm": cond.vcm, "cl": cond.cl, "vstep": cond.vstep, "tdel": 1e-6, "tedge": 1e-9,
             "tpw": 2e-5}
    params = " ".join(f"{k}={v!r}" for k, v in {**sizes, **conds}.items())
    return f"""* miller2, all testbenches, one job (ngspice -b)
{lib.lib_line()}
.param {params}
{amp}
{tb}
.control
set filetype=binary
set appendwrite
op
write out.raw
ac dec {AC_POINTS_PER_DECADE} {AC_START_HZ!r} {AC_STOP_HZ!r}
write out.raw
meas ac ugf when vdb(out)=0
let tau = 1/(2*pi*ugf)
let tpw = 60*tau
if tpw < 1e-8
  let tpw = 1e-8
end
let tedge = tau/20
if tedge > 1e-9
  let tedge = 1e-9
end
let tdel = tpw/20
let tmax = tpw/{STEP_DIVS}
let tstop = tdel + 2*tpw + 2*tedge
let tper = 2*tpw + 2*tedge
set f_ugf = $&ugf
set v_tpw = $&tpw
set v_tedge = $&tedge
set v_tdel = $&tdel
set v_tmax = $&tmax
set v_tstop = $&tstop
set v_tper = $&tper
noise v(out) vin dec 20 {AC_START_HZ!r} $f_ugf
write out.raw
alter @vacm[acmag] = 1
ac dec 1 {AC_START_HZ!r} {10 * AC_START_HZ!r}
write out.raw
alter @vin[acmag] = 0
alter @vacm[acmag] = 0
alter @vdd[acmag] = 1
ac dec 1 {AC_START_HZ!r} {10 * AC_START_HZ!r}
write out.raw
alter @rin[resistance] = 1e9
dc vdrv 0 {cond.vdd!r} {SWING_STEP_V!r}
write out.raw
alter @rin[resistance] = 1e15
alter @rfb[resistance] = 1e-3
alter @csv[capacitance] = 1e-18
alter @vin[pulse] = [ {cond.vcm - cond.vstep / 2!r} {cond.vcm + cond.vstep / 2!r} $v_tdel $v_tedge $v_tedge $v_tpw $v_tper ]
tran $v_tmax $v_tstop 0 $v_tmax
write out.raw
quit
.endc
.end
"""


def _params(text: str) -> dict[str, str]:
    out = {}
    for ln in text.splitlines():
        if ln.lower().startswith(".param"):
            out.update(tok.split("=", 1) for tok in ln.split()[1:] if "=" in tok)
    return out


def read_raw(path: Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(plot name, vectors) of every plot in an ngspice binary raw file written with appendwrite."""
    data, pos, plots = path.read_bytes(), 0, []
    while pos < len(data):
        end = data.index(b"Binary:\n", pos)
        lines = data[pos:end].decode("latin-1").splitlines()
        field = lambda key: next(ln for ln in lines if ln.startswith(key)).split(":", 1)[1].strip()  # noqa: E731
        nvars, npoints = int(field("No. Variables")), int(field("No. Points"))
        is_complex = "complex" in field("Flags")
        start = lines.index("Variables:") + 1
        names = [lines[start + k].split()[1].lower() for k in range(nvars)]
        dtype = np.complex128 if is_complex else np.float64
        count = nvars * npoints
        values = np.frombuffer(data, dtype=dtype, count=count, offset=end + 8).reshape(npoints, nvars)
        plots.append((field("Plotname"), {name: values[:, k] for k, name in enumerate(names)}))
        pos = end + 8 + count * np.dtype(dtype).itemsize
    return plots


def subprocess_per_deck(batch: list[OpampJob]) -> tuple[float, int, float]:
    """(seconds, failures, CPU seconds of the ngspice processes) for `ngspice -b` per deck."""
    failures = 0
    tech = load_technology("sky130")
    with tempfile.TemporaryDirectory(prefix="ngs-") as tmp:
        # what the library needs before it is parsed (the shared-library sessions issue the same)
        Path(tmp, ".spiceinit").write_text("\n".join(("set num_threads=1", *tech.simulator_settings)) + "\n")
        decks = []
        for k, job in enumerate(batch):
            decks.append(Path(tmp, f"d{k}.cir"))
            decks[-1].write_text(batch_deck(job))
        c0, t0 = os.times(), time.perf_counter()
        for deck in decks:
            raw = Path(tmp, "out.raw")
            raw.unlink(missing_ok=True)
            subprocess.run(["ngspice", "-b", deck.name], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                plots = read_raw(raw)
                ac = next(v for name, v in plots if name.lower().startswith("ac"))
                perf = measure(ac["frequency"].real, ac["v(out)"] / ac["v(inp)"])
                ok = len(plots) == 7 and perf.ugf_hz is not None
            except (FileNotFoundError, StopIteration, ValueError, KeyError):
                ok = False
            failures += not ok
        seconds = time.perf_counter() - t0
        c1 = os.times()
    return seconds, failures, (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)


def in_process(batch: list[OpampJob]) -> tuple[float, int, float]:
    engine = get_engine()
    c0, t0 = time.process_time(), time.perf_counter()
    results = [job.execute(engine) for job in batch]
    return time.perf_counter() - t0, sum(not r.ok for r in results), time.process_time() - c0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pool_map(pool: SimPool, batch: list[OpampJob]) -> tuple[float, int, float]:
    pids = pool.worker_pids()
    c0, t0 = sum(_cpu_seconds(p) for p in pids), time.perf_counter()
    results = pool.map(batch)
    return time.perf_counter() - t0, sum(not r.ok for r in results), sum(_cpu_seconds(p) for p in pids) - c0


def compare(n: int, workers: int, rounds: int, cache: Path) -> dict:
    """(i), (ii), (iii) on the same n jobs, in `rounds` interleaved slices."""
    batch = jobs(n)
    t0 = time.perf_counter()
    pool = SimPool(num_workers=workers, temp_dir=cache / "ray", progress=False, timeout_s=600, chunk_size=1).start()
    ray_start = time.perf_counter() - t0
    # load the bench in every worker and in this process with cheap jobs (op + AC) of other sizes
    warm = [OpampJob(DUT, "miller2", (("w_in", 4.5),), COND, noise=False, step=False, swing=False)] * (2 * workers)
    t0 = time.perf_counter()
    loads = [r.load_seconds for r in pool.map(warm) if r.loaded]
    warm_pool = time.perf_counter() - t0
    local = warm[0].execute(get_engine())
    methods = (("i", in_process), ("ii", lambda b: pool_map(pool, b)), ("iii", subprocess_per_deck))
    totals = {key: [0.0, 0, 0.0] for key, _ in methods}
    size = -(-n // rounds)
    for k in range(0, n, size):
        for key, fn in methods:
            for j, v in enumerate(fn(batch[k:k + size])):
                totals[key][j] += v
    pool.close()
    return {"totals": totals, "ray_start_s": ray_start, "pool_warm_s": warm_pool, "worker_load_s": loads,
            "in_process_load_s": local.load_seconds, "workers": workers}
