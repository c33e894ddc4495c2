"""Output safety: `generate` and `export` never overwrite or delete a user's file in an existing
output folder without --force, and writes are atomic (a killed writer leaves the old file or the
new one, never half of one). Real commands (CliRunner in process), real files, a real SIGKILL."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .outcome import Outcome

ROOT = Path(__file__).resolve().parents[2]
CIRCUIT = ROOT / "examples" / "circuits" / "two_stage_miller.json"


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _cli(args):
    from click.testing import CliRunner

    from cktflow.cli.main import main
    return CliRunner().invoke(main, args, catch_exceptions=True)


def folder_refusals(with_generate: bool = True) -> Outcome:
    """A user's folder: refused without --force (nothing written, nothing touched); with --force or
    in a folder cktflow marked, the user's own files are kept."""
    out = Outcome("output safety: user files in the output folder")
    with tempfile.TemporaryDirectory(prefix="ckt-out-") as d:
        work = Path(d)
        spec = work / "spec.yaml"
        spec.write_text("name: s\ntargets: {gain_db: {min: 40dB}}\n")
        commands = {"export": lambda o, *f: ["export", "--format", "all", "-o", str(o), *f, str(CIRCUIT)]}
        if with_generate:
            commands["generate"] = lambda o, *f: ["generate", "--spec", str(spec), "-n", "4", "--budget", "8",
                                                  "-o", str(o), *f]
        for name, args in commands.items():
            user = work / f"user-{name}"
            user.mkdir()
            (user / "notes.txt").write_text("the user's notes\n")
            (user / "report.md").write_text("the user's own report\n")
            before = _snapshot(user)
            res = _cli(args(user))
            out.cases += 1
            if res.exit_code != 2 or "--force" not in res.output or _snapshot(user) != before:
                out.fail(f"{name} into a user's folder without --force: exit {res.exit_code}, "
                         f"files {sorted(_snapshot(user))}: {res.output[-300:]}")
            # a folder cktflow made earlier: it writes there again, and keeps the user's extra file
            marked = work / f"marked-{name}"
            res = _cli(args(marked))
            (marked / "mine.txt").write_text("added by the user\n")
            mine = _snapshot(marked)["mine.txt"]
            res = _cli(args(marked))
            out.cases += 1
            if res.exit_code not in (0, 1) or _snapshot(marked).get("mine.txt") != mine:
                out.fail(f"{name} rerun into its own folder: exit {res.exit_code}, mine.txt "
                         f"{'changed' if (marked / 'mine.txt').exists() else 'deleted'}: {res.output[-300:]}")
            # --force: cktflow's files are written, the user's notes are not deleted
            res = _cli(args(user, "--force"))
            out.cases += 1
            if res.exit_code not in (0, 1) or _snapshot(user).get("notes.txt") != before["notes.txt"]:
                out.fail(f"{name} --force: exit {res.exit_code}, notes.txt not kept: {res.output[-300:]}")
        # a file where the folder should be
        afile = work / "a-file"
        afile.write_text("x")
        res = _cli(commands["export"](afile))
        out.cases += 1
        if res.exit_code != 2 or afile.read_text() != "x":
            out.fail(f"export -o over a file: exit {res.exit_code}: {res.output[-300:]}")
    return out.done()


_WRITER = """
import sys, time
from cktflow.fsutil import atomic_open
with atomic_open(sys.argv[1], "wb") as fh:
    for k in range(400):
        fh.write(bytes([k % 251]) * 262144)      # 100 MiB in all, slowly enough to be caught mid-way
        fh.flush()
        time.sleep(0.002)
"""


def atomic_kills(kills: int = 5, seed: int = 0) -> Outcome:
    """SIGKILL a process in the middle of fsutil.atomic_open: the target holds the previous content,
    complete, or the new one, complete; never a part."""
    import random
    rng = random.Random(seed)
    out = Outcome("output safety: SIGKILL during an atomic write")
    with tempfile.TemporaryDirectory(prefix="ckt-atomic-") as d:
        target = Path(d) / "report.json"
        old = b'{"previous": "report"}\n'
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        for _ in range(kills):
            target.write_bytes(old)
            proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], env=env)
            time.sleep(rng.uniform(0.6, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            out.cases += 1
            data = target.read_bytes()
            if data != old and len(data) != 400 * 262144:
                out.fail(f"half-written target: {len(data)} bytes")
            litter = [p.name for p in Path(d).iterdir() if p.name != "report.json"]
            if litter:
                out.notes.append("a kill can leave the temporary file beside the target (.report.json.XXXX.tmp); "
                                 "the next write into the folder ignores it")
                for p in litter:
                    (Path(d) / p).unlink()
    out.notes = sorted(set(out.notes))
    return out.done()
