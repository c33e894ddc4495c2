"""cktflow on a real Ray cluster started on this machine: a driver that connects with
--ray-address, and `ray job submit -- cktflow dataset build`. Run with `pytest -m integration`.

The cluster is started with `ray start --head --block` in its own process group and stopped by
signalling that group, not with `ray stop`, which would end every Ray instance on the machine.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="ckr-")          # short: Ray's socket paths live below it
    port, dash = _free_port(), _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0", CKTFLOW_CACHE=temp,
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("RAY_ADDRESS", None)
    log = open(Path(temp) / "head.log", "w")
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                             "--dashboard-port", str(dash), "--temp-dir", temp, "--disable-usage-stats", "--block"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "block forever" not in (Path(temp) / "head.log").read_text():
            assert head.poll() is None, (Path(temp) / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "ray start --head did not come up in 120 s"
            time.sleep(0.5)
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env, "dir": temp}
    finally:
        head.send_signal(signal.SIGTERM)           # `ray start --block` stops its own processes on SIGTERM
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)    # anything of that group still alive
        except ProcessLookupError:
            pass
        log.close()


def _rows(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(DISTINCT hash) FROM circuits").fetchone()[0]
    finally:
        con.close()


def test_driver_joins_with_ray_address(cluster):
    db = Path(cluster["dir"]) / "driver.sqlite"
    out = subprocess.run([str(BIN / "cktflow"), "dataset", "build", "--n", "40", "--seed", "4", "--db", str(db),
                          "--ray-address", cluster["address"], "--json"],
                         env=cluster["env"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["stored"] == 40 and summary["workers"] == 2 and summary["simulator"].startswith("ngspice")
    assert _rows(db) == 40
    # the driver joined the cluster: it did not start a Ray of its own under the cache dir
    assert not (Path(cluster["dir"]) / "ray").exists()


def test_ray_job_submit(cluster):
    db = Path(cluster["dir"]) / "job.sqlite"
    out = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"], "--",
                          str(BIN / "cktflow"), "dataset", "build", "--n", "40", "--seed", "5", "--db", str(db),
                          "--json"], env=cluster["env"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "succeeded" in out.stdout + out.stderr
    assert _rows(db) == 40
    # the job's driver found the cluster through RAY_ADDRESS (set by Ray) instead of starting its own
    assert not (Path(cluster["dir"]) / "ray").exists()
