"""Fault injection on real processes: a local Ray cluster (`ray start --head` on this machine),
SIGKILL of pool workers, of the head, and of cktflow commands at random points, then resume.

Nothing is mocked: the workers are Ray actors running ngspice, the commands are `cktflow`
processes, the dataset is SQLite. Only processes this module started are signalled: the head runs
in its own session (start_new_session) and is stopped by signalling that group, never `ray stop`
(which would end every Ray on the machine); a worker to kill is found among the processes of that
session (or of the embedded Ray's driver) whose command line names the SimWorker actor.
"""

from __future__ import annotations

import collections
import json
import math
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .outcome import Outcome

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(cache: Path, **extra) -> dict:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", CKTFLOW_CACHE=str(cache),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra)
    env.pop("RAY_ADDRESS", None)
    return env


class HeadCluster:
    """`ray start --head --block` on loopback-reached ports, in its own process group; token auth on."""

    def __init__(self, num_cpus: int = 2):
        self.dir = Path(tempfile.mkdtemp(prefix="ckr-"))      # short: Ray's socket paths live below it
        self.port = free_port()
        self.env = base_env(self.dir / "cache", RAY_AUTH_MODE="token")
        self.num_cpus = num_cpus
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "HeadCluster":
        log = open(self.dir / "head.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", "--port", str(self.port), "--num-cpus", str(self.num_cpus),
             "--include-dashboard", "false", "--temp-dir", str(self.dir), "--disable-usage-stats", "--block"],
            env=dict(self.env, RAY_worker_niceness="0"), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while "block forever" not in (self.dir / "head.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ray start --head did not come up:\n" + (self.dir / "head.log").read_text()[-2000:])
            time.sleep(0.3)
        return self

    def kill(self) -> None:
        """SIGKILL the whole head (GCS, raylet, workers): the crash case."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)        # `ray start --block` stops its processes on SIGTERM
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self.proc = None

    def __enter__(self) -> "HeadCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def sim_workers(session: int) -> list[int]:
    """pids of the SimWorker actor processes in process session `session` (read from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"SimWorker" in (entry / "cmdline").read_bytes() and os.getsid(int(entry.name)) == session:
                out.append(int(entry.name))
        except OSError:
            continue
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


# ------------------------------------------------------------------------------------------------
# the pool under worker kills

def gain_jobs(n: int, start: int = 0):
    """n AC decks whose gain identifies the job: a VCVS of gain 100 + i/8 behind an RC pole."""
    from spice_sim import SimJob

    from cktflow.circuit import wrap_testbench
    gains = [100.0 + i / 8 for i in range(start, start + n)]
    jobs = [SimJob(wrap_testbench(f"E1 x 0 in 0 {g!r}\nR1 x out 1k\nC1 out 0 1n")) for g in gains]
    return jobs, [20 * math.log10(g) for g in gains]


def check_results(out: Outcome, seen: collections.Counter, results: dict, expected: list[float]) -> None:
    """Every index exactly once and carrying its own job's gain."""
    n = len(expected)
    out.lost += n - len(seen) + sum(c - 1 for c in seen.values())
    for i, res in results.items():
        if res.failure is not None:
            out.fail(f"job {i}: {res.failure}: {res.message}")
        elif abs(res.performance.gain_db - expected[i]) > 1e-6:
            out.fail(f"job {i}: gain {res.performance.gain_db} is not its own ({expected[i]})")


def pool_worker_kills(n_sims: int = 20000, kills: int = 10, rounds: int = 1, workers: int = 2,
                      cluster: HeadCluster | None = None, seed: int = 0, _session: int | None = None,
                      _address: str | None = None) -> Outcome:
    """SIGKILL a random pool worker `kills` times during each batch of `n_sims` (on the head
    cluster, or an embedded Ray when none is given): every result comes back exactly once, right.
    With a cluster the pool runs in a child process started with the cluster's RAY_AUTH_MODE=token
    (Ray reads the mode once, at import, so this process may not be able to join)."""
    if cluster is not None:
        code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); from reliability import faults; "
                f"o = faults.pool_worker_kills({n_sims}, {kills}, {rounds}, {workers}, seed={seed}, "
                f"_session={cluster.proc.pid}, _address={cluster.address!r}); o.done(); "
                f"d = dict(o.__dict__); d.pop('_t0'); print('RESULT' + json.dumps(d))")
        res = subprocess.run([sys.executable, "-c", code], env=cluster.env, capture_output=True, text=True)
        line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
        if line is None:
            out = Outcome("faults: kill -9 pool workers during a batch")
            out.fail(f"the pool process failed: {res.stderr[-2000:]}")
            return out.done()
        return Outcome(**json.loads(line[6:]))
    from spice_sim.pool import SimPool
    out = Outcome("faults: kill -9 pool workers during a batch")
    rng = random.Random(seed)
    jobs, expected = gain_jobs(n_sims)
    session = _session or os.getsid(0)
    temp = Path(tempfile.mkdtemp(prefix="ckp-"))
    with SimPool(num_workers=workers, address=_address, temp_dir=temp, progress=False, timeout_s=60) as pool:
        for r in range(rounds):
            seen: collections.Counter = collections.Counter()
            results: dict = {}
            killed = []
            marks = sorted(rng.uniform(0.05, 0.9) * n_sims for _ in range(kills))
            for i, res in pool.imap_unordered(jobs):
                seen[i] += 1
                results[i] = res
                while marks and len(results) >= marks[0]:
                    marks.pop(0)
                    pids = sim_workers(session)
                    if pids:
                        victim = rng.choice(pids)
                        os.kill(victim, signal.SIGKILL)
                        killed.append(victim)
            out.cases += 1
            check_results(out, seen, results, expected)
            out.notes.append(f"round {r + 1}: {len(killed)} workers killed, {pool.replaced_workers} replaced so far")
    out.scale = (f"{rounds} x {n_sims:,} sims, {kills} kills each, {workers} workers"
                 + (" on a ray start --head cluster" if _address else ", embedded Ray"))
    return out.done()


# ------------------------------------------------------------------------------------------------
# commands killed and resumed

def db_rows(db: Path) -> tuple[int, int, str, list]:
    """(rows, distinct hashes, integrity_check, the comparable content of every row)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT COUNT(*), COUNT(DISTINCT hash) FROM circuits").fetchone()
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        content = sorted(con.execute("SELECT hash, topology_hash, circuit, performance, failure, split, provenance "
                                     "FROM circuits").fetchall())
        return rows[0], rows[1], ok, content
    finally:
        con.close()


def run_killed(args: list[str], env: dict, cwd: Path, kill_after: float | None, timeout: float = 600) -> tuple[int, str]:
    """Run a cktflow command; SIGKILL its whole process group `kill_after` seconds in (None: never).
    Returns (exit code or -9, output tail)."""
    log = cwd / f"cmd-{time.monotonic_ns()}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(BIN / "cktflow"), *args], env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)     # the command with its ngspice child and embedded Ray
            proc.wait(timeout=60)
            _reap_group(proc.pid)
    text = log.read_text()
    log.unlink()
    return proc.returncode, text[-3000:]


def _reap_group(pgid: int) -> None:
    """Wait until no process of a killed group is left (Ray's raylet and workers of an embedded Ray)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic writes that a SIGKILL left behind (never a half-written target)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp"))


def _timed(args, env, cwd, timeout=900) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    code, text = run_killed(args, env, cwd, None, timeout)
    return time.perf_counter() - t0, code, text


def kill_and_resume(name: str, args: list[str], result, kills: int, env: dict, work: Path, reset,
                    seed: int = 0, lost_of=None) -> Outcome:
    """The common loop: an uninterrupted reference run, then `kills` times: reset, SIGKILL the
    command at a random point of its reference wall time, run it again (more kills may follow on
    the resumed runs: up to 3 in a row), and finally let it finish; `result()` must then equal the
    reference. `result()` returns (comparable value, problems found in the state, e.g. an integrity
    error, or rows counted twice)."""
    out = Outcome(f"faults: SIGKILL `cktflow {name}` and resume")
    rng = random.Random(seed)
    reset()
    ref_s, code, text = _timed(args, env, work)
    if code not in (0, 1):
        out.fail(f"reference run failed ({code}): {text}")
        return out.done()
    reference, problems = result()
    for p in problems:
        out.fail(f"reference: {p}")
    out.notes.append(f"uninterrupted run {ref_s:.1f} s")
    for k in range(kills):
        reset()
        for _ in range(rng.randint(1, 3)):       # one to three kills before the run may finish
            code, text = run_killed(args, env, work, rng.uniform(0.1, 0.95) * ref_s)
            if code != -signal.SIGKILL:
                break                              # it finished before the kill came
            _, problems = result(partial=True)
            for p in problems:
                out.fail(f"kill {k + 1}, after the kill: {p}")
        code, text = run_killed(args, env, work, None, timeout=max(600, 10 * ref_s))
        out.cases += 1
        if code not in (0, 1):
            out.fail(f"kill {k + 1}: the resumed run failed ({code}): {text}")
            continue
        value, problems = result()
        for p in problems:
            out.fail(f"kill {k + 1}: {p}")
        if value != reference:
            lost = lost_of(reference, value) if lost_of else 0
            out.lost += lost
            out.fail(f"kill {k + 1}: the resumed result differs from the uninterrupted run's"
                     + (f" ({lost} rows lost or doubled)" if lost else ""))
    out.scale = f"{kills} kills"
    return out.done()


def _rm(*paths: Path) -> None:
    import shutil
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            for q in p.parent.glob(p.name + "*"):     # a SQLite file with its -wal and -shm
                q.unlink()


def build_kills(kills: int, n: int = 2000, cluster: HeadCluster | None = None, seed: int = 0) -> Outcome:
    """`cktflow dataset build` killed and resumed: row counts exact, no duplicates, integrity ok,
    the rows equal an uninterrupted build's (simulations are deterministic: same deck, same numbers)."""
    work = Path(tempfile.mkdtemp(prefix="ckb-"))
    db = work / "bench.sqlite"
    env = cluster.env if cluster else base_env(work / "cache")
    args = ["dataset", "build", "--n", str(n), "--seed", "3", "--db", str(db), "--json"]
    args += ["--ray-address", cluster.address] if cluster else ["--workers", "2"]

    def result(partial: bool = False):
        if not db.exists():
            return [], []
        rows, distinct, ok, content = db_rows(db)
        problems = [] if ok == "ok" else [f"integrity_check: {ok}"]
        if rows != distinct:
            problems.append(f"{rows - distinct} duplicate rows")
        if not partial and rows != n:
            problems.append(f"{rows} rows, want {n}")
        return content, problems

    def lost_of(ref, value):
        return len(set(ref) ^ set(value)) + (len(value) - len(set(value)))
    out = kill_and_resume("dataset build", args, result, kills, env, work, lambda: _rm(db), seed, lost_of)
    out.scale = f"{kills} kills, {n:,} circuits" + (" on a ray start --head cluster" if cluster else "")
    return out


def size_kills(kills: int, budget: int = 24, seed: int = 0) -> Outcome:
    """`cktflow size --history H` killed and resumed from its history."""
    work = Path(tempfile.mkdtemp(prefix="cks-"))
    spec = work / "spec.yaml"
    spec.write_text("name: s\ntargets:\n  gain_db: {min: 70dB}\n  ugf_hz: {min: 300MHz}\n  pm_deg: {min: 60deg}\n")
    circuit = ROOT / "examples" / "circuits" / "two_stage_miller.json"
    hist, sized = work / "h.jsonl", work / "sized.json"
    args = ["size", "--spec", str(spec), "--history", str(hist), "--budget", str(budget), "--seed", "0",
            "-o", str(sized), "--json", str(circuit)]

    def result(partial: bool = False):
        problems = []
        lines = hist.read_text().splitlines() if hist.exists() else []
        try:
            evals = [json.loads(ln) for ln in lines[1:]]
        except json.JSONDecodeError as exc:
            return None, [f"history has a broken line: {exc}"]
        if len(evals) > budget:
            problems.append(f"{len(evals)} evaluations for a budget of {budget} (work repeated)")
        if partial:
            return None, problems
        return (sized.read_text() if sized.exists() else None, len(evals)), problems
    out = kill_and_resume("size", args, result, kills, base_env(work / "cache"), work, lambda: _rm(hist, sized), seed)
    out.scale = f"{kills} kills, budget {budget}"
    return out


def generate_kills(kills: int, n: int = 4, budget: int = 40, want: int = 6, seed: int = 0) -> Outcome:
    """`cktflow generate -o OUT` killed and rerun into the same folder: the report equals an
    uninterrupted run's, and a killed run never leaves a half-written report. More circuits are
    wanted than the proposals meet, so the run proposes twice, sizes (histories in OUT/sizing) and
    exports: a kill can land in each phase."""
    work = Path(tempfile.mkdtemp(prefix="ckg-"))
    spec = work / "spec.yaml"
    spec.write_text("name: g\ntargets:\n  gain_db: {min: 95dB}\n  ugf_hz: {min: 1GHz}\n  pm_deg: {min: 60deg}\n")
    outdir = work / "out"
    args = ["generate", "--spec", str(spec), "-n", str(n), "--want", str(want), "--budget", str(budget),
            "--top-k", "2", "--seed", "0", "-o", str(outdir), "--json"]

    def result(partial: bool = False):
        problems = []
        report = outdir / "report.json"
        data = None
        if report.exists():
            try:
                data = json.loads(report.read_text())
            except json.JSONDecodeError:
                problems.append("report.json is half-written")
        for p in outdir.rglob("*.json") if outdir.exists() else ():
            if not p.name.startswith("."):
                try:
                    json.loads(p.read_text())
                except json.JSONDecodeError:
                    problems.append(f"{p.name} is half-written")
        for p in outdir.rglob("*.png") if outdir.exists() else ():
            if not p.name.startswith(".") and b"IEND" not in p.read_bytes()[-12:]:   # a PNG ends with IEND
                problems.append(f"{p.name} is half-written")
        if partial or data is None:
            return None, problems + ([] if partial else ["no report.json"])
        keep = [{k: c.get(k) for k in ("hash", "verified", "origin", "performance", "shortfall") if k in c}
                for c in data.get("outcomes", [])]
        return json.dumps(keep, sort_keys=True), problems
    out = kill_and_resume("generate", args, result, kills, base_env(work / "cache"), work, lambda: _rm(outdir), seed)
    out.scale = f"{kills} kills, -n {n}, --want {want}, budget {budget} (proposes twice, sizes 2)"
    return out


def train_kills(kills: int, epochs: int = 4, seed: int = 0) -> Outcome:
    """`cktflow train --resume` killed and resumed: the checkpoint loads, and the final weights equal
    an uninterrupted run's (the checkpoint keeps model, optimizer, scheduler and epoch)."""
    import hashlib

    from cktflow.dataset import Dataset, Record
    from cktflow.model.data import load_examples
    work = Path(tempfile.mkdtemp(prefix="ckt-"))
    db = work / "train.sqlite"
    examples = load_examples()
    with Dataset.open(db) as ds:
        ds.append(Record(e.circuit, e.performance, split=e.split, provenance={"source": "test"}, simulator="ngspice",
                         testbench="ocb") for e in [e for e in examples if e.split == "train"][:400])
    outdir = work / "run"
    args = ["train", "--recipe", "tiny", "--db", str(db), "-o", str(outdir), "--resume", "--epochs", str(epochs),
            "--no-evaluator", "--no-predictor", "--onpolicy", "0", "--seed", "0", "--json"]

    def result(partial: bool = False):
        import torch
        problems = []
        ckpt = outdir / "checkpoint.pt"
        if ckpt.exists():
            try:
                state = torch.load(ckpt, map_location="cpu", weights_only=True)
            except Exception as exc:    # noqa: BLE001 - any failure to load is the finding
                return None, [f"checkpoint.pt does not load: {exc}"]
            if partial:
                return None, problems
            digest = hashlib.sha256()
            for k, v in sorted(state["model"].items()):
                digest.update(k.encode() + v.cpu().numpy().tobytes())
            return (state["epoch"], digest.hexdigest()), problems
        return None, problems + ([] if partial else ["no checkpoint.pt"])
    out = kill_and_resume("train", args, result, kills, base_env(work / "cache"), work, lambda: _rm(outdir), seed)
    out.scale = f"{kills} kills, tiny recipe, {epochs} epochs"
    return out


def head_kill(n: int = 3000, seed: int = 0) -> Outcome:
    """SIGKILL the head of the cluster a `cktflow dataset build --ray-address` runs on, once rows are
    being committed: the command must end by itself with a clear message (no traceback, exit 2 or 3)
    and leave a consistent file that a rerun (on a new cluster) completes, each circuit once."""
    out = Outcome("faults: kill the Ray head mid-build, then resume")
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="ckh-"))
    db = work / "bench.sqlite"
    cluster = HeadCluster().start()
    try:
        args = ["dataset", "build", "--n", str(n), "--seed", "4", "--db", str(db), "--ray-address", cluster.address]
        log = work / "build.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen([str(BIN / "cktflow"), *args], env=cluster.env, cwd=work, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            target = rng.randint(n // 10, n // 2)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None:
                if db.exists() and db_rows(db)[0] >= target:
                    break
                time.sleep(0.2)
            rows_at_kill = db_rows(db)[0] if db.exists() else 0
            cluster.kill()
            t0 = time.monotonic()
            try:
                code = proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                code = None
            waited = time.monotonic() - t0
        text = log.read_text()
        out.cases += 1
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or [""]
        out.notes.append(f"head killed at {rows_at_kill} of {n} rows; the command ended after {waited:.0f} s, "
                         f"exit {code}: {last[0][:300]}")
        if code is None:
            out.fail("the command did not end within 600 s after the head died")
        elif code not in (2, 3) or "Traceback" in text or not last[0].startswith("Error:"):
            out.fail(f"no clear message (exit {code}): {text[-800:]}")
        rows, distinct, ok, _ = db_rows(db)
        if ok != "ok" or rows != distinct:
            out.fail(f"after the head died: integrity {ok}, {rows} rows, {distinct} distinct")
    finally:
        cluster.stop()
    with HeadCluster() as again:         # resume on a fresh cluster
        code, text = run_killed(["dataset", "build", "--n", str(n), "--seed", "4", "--db", str(db), "--ray-address",
                                 again.address], again.env, work, None)
    rows, distinct, ok, _ = db_rows(db)
    if code != 0 or ok != "ok" or rows != n or distinct != n:
        out.fail(f"resume: exit {code}, integrity {ok}, {rows} rows, {distinct} distinct (want {n}): {text[-500:]}")
    out.lost += abs(n - distinct) + (rows - distinct)
    out.scale = f"{n:,} circuits, head killed once"
    return out.done()


def auth_messages(cluster: HeadCluster) -> Outcome:
    """Issue 22, item 6: joining a token-protected cluster without RAY_AUTH_MODE=token gives one
    message that says what to do, not a screen of Ray's retry lines; the embedded pool starts
    without Ray's token warning (token authentication stays on)."""
    out = Outcome("Ray token authentication: messages")
    work = Path(tempfile.mkdtemp(prefix="cka-"))
    env = dict(cluster.env)
    env.pop("RAY_AUTH_MODE")
    code, text = run_killed(["dataset", "build", "--n", "4", "--db", str(work / "a.sqlite"), "--ray-address",
                             cluster.address], env, work, None, timeout=300)
    out.cases += 1
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if code != 2 or "~/.ray/auth_token" not in text or "RAY_AUTH_MODE=token" not in text or len(lines) > 2 \
            or "InvalidAuthToken" in text:
        out.fail(f"without RAY_AUTH_MODE: exit {code}, {len(lines)} lines: {text[-1500:]}")
    code, text = run_killed(["dataset", "build", "--n", "4", "--db", str(work / "b.sqlite"), "--workers", "1"],
                            base_env(work / "cache"), work, None, timeout=300)
    out.cases += 1
    if code != 0 or "Token authentication" in text or "WARNING" in text:
        out.fail(f"embedded pool: exit {code}: {text[-1500:]}")
    return out.done()


def soak(n_sims: int = 200_000, batch: int = 10_000, workers: int = 2) -> Outcome:
    """`n_sims` simulations through one embedded pool, in batches: every result exactly once and
    right; the RSS of every worker flat within 50 MB (the largest worker RSS after any batch against
    the largest after the first, when the engines are warm: the pool recycles a worker after
    `RECYCLE_AFTER` simulations, so a worker's own growth is bounded, and a recycled worker's fresh
    RSS must not hide a grown one, hence the maximum over workers); throughput of the last two
    batches within 10 % of the first two."""
    from spice_sim.pool import SimPool
    out = Outcome("soak: simulations through one pool")
    temp = Path(tempfile.mkdtemp(prefix="cks-"))
    rates, rss, cpu = [], [], []
    with SimPool(num_workers=workers, temp_dir=temp, progress=False, timeout_s=60) as pool:
        for b in range(math.ceil(n_sims / batch)):
            k = min(batch, n_sims - b * batch)
            jobs, expected = gain_jobs(k, start=b * batch)
            pids = pool.worker_pids()
            cpu0 = sum(cpu_s(p) for p in pids)
            t0 = time.perf_counter()
            seen: collections.Counter = collections.Counter()
            results = {}
            for i, res in pool.imap_unordered(jobs):
                seen[i] += 1
                results[i] = res
            rates.append(k / (time.perf_counter() - t0))
            cpu.append(1000 * (sum(cpu_s(p) for p in pids) - cpu0) / k)
            out.cases += k
            check_results(out, seen, results, expected)
            rss.append({pid: rss_mb(pid) for pid in pool.worker_pids()})
            if pool.replaced_workers:
                out.notes.append(f"{pool.replaced_workers} workers were replaced (rss of new ones starts over)")
        recycled, every = pool.recycled_workers, pool.recycle_after
    peaks = [max((v for v in batch_rss.values() if v == v), default=math.nan) for batch_rss in rss]
    growth = max(peaks) - peaks[0] if peaks else math.nan
    start, end = sum(rates[:2]) / len(rates[:2]), sum(rates[-2:]) / len(rates[-2:])
    out.notes.append(f"largest worker RSS {peaks[0]:.0f} MB after the first batch, {max(peaks):.0f} MB at most"
                     f" (growth {growth:.1f} MB; limit 50); {recycled} workers recycled after"
                     f" {every:,} simulations each")
    out.notes.append(f"throughput {start:.0f} sims/s at the start, {end:.0f} at the end ({100 * (end / start - 1):+.1f} %;"
                     f" limit -10 %); CPU per simulation {cpu[0]:.2f} ms -> {cpu[-1]:.2f} ms")
    out.notes.append("sims/s per batch: " + " ".join(f"{r:.0f}" for r in rates))
    if not growth < 50:
        out.fail(f"worker RSS grew {growth:.1f} MB")
    if end < 0.9 * start:
        out.fail(f"throughput fell from {start:.0f} to {end:.0f} sims/s")
    out.scale = f"{n_sims:,} sims, {workers} workers, batches of {batch:,}"
    return out.done()
