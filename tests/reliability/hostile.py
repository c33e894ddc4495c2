"""The hostile corpus (tests/data/hostile/, described in cases.yaml there) through the real command
line: every case must be refused with exit 2 and the expected reason, or run to an ordinary end
(exit 0 or 1: simulated, or failed as a value) within bounded time and memory, and no file may
appear anywhere but the output folder.

Each case runs in a fresh temporary folder (the working directory of the command): the input file
is written there with its placeholders filled in (@CANARY@: a folder the attacks aim at, holding a
FIFO that would block any reader; @PDK@: the PDK folder), the files of that folder are listed
before and after, and the canary folder must stay as it was. `mode="cli"` runs click's CliRunner in
this process (fast, the default test run); `mode="process"` runs `cktflow` as a subprocess and
records its wall time and peak memory (the bench, and the slow tests).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .outcome import Outcome

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "hostile"
#: Bounds every case must stay within when run as a process.
MAX_SECONDS = 90.0
MAX_RSS_MB = 2048.0
_SPEC = "targets: {gain_db: {min: 1dB}}\n"


def cases() -> list[dict]:
    """The manifest: [{file, expect: refused|ran, match, generated?}]."""
    return yaml.safe_load((CORPUS / "cases.yaml").read_text())


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _materialise(case: dict, work: Path) -> Path:
    from cktflow.resources import pdk_dir
    canary = work / "canary"
    canary.mkdir()
    os.mkfifo(canary / "fifo")
    name = case["file"]
    path = work / name
    if case.get("generated") == "million_elements":
        # a 10^6-element netlist (27 MB), made here rather than kept in the repository
        lines = ["* a million resistors", "V1 in 0 DC 0 AC 1"] + [f"R{i} n{i} n{i + 1} 1k" for i in range(10 ** 6)]
        path.write_text("\n".join(lines + ["Rin in n0 1", "Rout n1000000 out 1", "Rl out 0 1k"]) + "\n")
        return path
    data = (CORPUS / name).read_bytes()
    data = data.replace(b"@CANARY@", str(canary).encode()).replace(b"@PDK@", str(pdk_dir()).encode())
    path.write_bytes(data)
    return path


def _args(path: Path, work: Path) -> list[str]:
    spec = work / "spec.yaml"
    spec.write_text(_SPEC)
    if path.suffix in (".yaml", ".yml"):
        circuit = work / "circuit.json"
        circuit.write_text((ROOT / "examples" / "circuits" / "two_stage_miller.json").read_text())
        return ["verify", "--spec", str(path), str(circuit)]
    if path.suffix in (".jsonl", ".parquet"):
        return ["dataset", "import", "--db", str(work / "out" / "dataset.sqlite"), str(path)]
    return ["verify", "--spec", str(spec), str(path)]


@contextlib.contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _run_cli(args: list[str], work: Path) -> tuple[int, str, float, float]:
    from click.testing import CliRunner

    from cktflow.cli.main import main
    t0 = time.perf_counter()
    with _chdir(work):
        res = CliRunner().invoke(main, args, catch_exceptions=True)
    return res.exit_code, res.output, time.perf_counter() - t0, 0.0


def _run_process(args: list[str], work: Path) -> tuple[int, str, float, float]:
    env = dict(os.environ, CKTFLOW_CACHE=str(work / "out" / "cache"))
    t0 = time.perf_counter()
    with open(work / "out" / "log.txt", "w+") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "cktflow"), *args], cwd=work, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = t0 + MAX_SECONDS
        status, usage = None, None
        while status is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
            elif time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
            else:
                time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read()
    # wait4's ru_maxrss: the largest of the command and the descendants it waited for (its ngspice)
    return proc.returncode, text, time.perf_counter() - t0, usage.ru_maxrss / 1024


def run_corpus(mode: str = "cli", only: list[str] | None = None) -> Outcome:
    out = Outcome(f"hostile corpus ({'CLI in process' if mode == 'cli' else 'cktflow processes'})")
    run = _run_cli if mode == "cli" else _run_process
    worst_s, worst_mb = 0.0, 0.0
    for case in cases():
        if only is not None and case["file"] not in only:
            continue
        out.cases += 1
        with tempfile.TemporaryDirectory(prefix="ckt-hostile-") as d:
            work = Path(d)
            (work / "out").mkdir()
            path = _materialise(case, work)
            args = _args(path, work)
            before = _files(work)
            code, text, seconds, rss_mb = run(args, work)
            after = _files(work)
            worst_s, worst_mb = max(worst_s, seconds), max(worst_mb, rss_mb)
            new = sorted(f for f in after - before if not f.startswith("out"))
            where = f"{case['file']}: "
            if new:
                out.fail(where + f"files written outside the output folder: {new}")
            if sorted(_files(work / "canary")) != ["fifo"]:
                out.fail(where + f"the canary folder changed: {sorted(_files(work / 'canary'))}")
            if "Traceback" in text or code == 3:
                out.fail(where + f"a traceback or internal error reached the user: {text[-500:]}")
            if case["expect"] == "refused":
                if code != 2 or case["match"] not in text:
                    out.fail(where + f"expected a refusal (exit 2, '{case['match']}'), got exit {code}: {text[-400:]}")
                elif str(path.name) not in text and "generated" not in case and not case.get("no_line"):
                    out.fail(where + f"the refusal does not name the file: {text[-300:]}")
            elif code not in (0, 1):
                out.fail(where + f"expected an ordinary end (exit 0 or 1), got exit {code}: {text[-400:]}")
            elif case.get("match") and case["match"] not in text:
                out.fail(where + f"expected '{case['match']}' in the output: {text[-400:]}")
            if seconds > MAX_SECONDS or rss_mb > MAX_RSS_MB:
                out.fail(where + f"not bounded: {seconds:.1f} s, {rss_mb:.0f} MB")
    out.notes.append(f"slowest case {worst_s:.1f} s" + (f", peak memory of a command {worst_mb:.0f} MB"
                                                           if mode != "cli" else ""))
    out.scale = f"{out.cases} files"
    return out.done()


def symlink_escape() -> Outcome:
    """A symlink inside an allowed (PDK) folder that points out of it: refused by check_netlist.
    (The CLI's PDK folder is the package's own, so this one runs on a temporary PDK folder.)"""
    from spice_sim import check_netlist
    from spice_sim.errors import UnsafeNetlistError
    out = Outcome("hostile: symlink out of the PDK folder")
    with tempfile.TemporaryDirectory(prefix="ckt-pdk-") as d:
        pdk = Path(d)
        (pdk / "escape.lib").symlink_to("/etc/passwd")
        (pdk / "ok.lib").write_text("* a model file\n")
        (pdk / "linked_dir").symlink_to("/etc")
        for target, refused in (("escape.lib", True), ("linked_dir/passwd", True), ("ok.lib", False),
                                ("../" + pdk.name + "/ok.lib", False)):
            out.cases += 1
            text = f"* t\nR1 in out 1k\n.include {pdk / target}\n"
            try:
                check_netlist(text, source="s.cir", allowed_dirs=(pdk,))
                if refused:
                    out.fail(f"{target}: accepted")
            except UnsafeNetlistError as exc:
                if not refused or "outside the PDK folder" not in str(exc):
                    out.fail(f"{target}: {exc}")
    return out.done()
