"""Single-circuit simulation with a hard time limit, without Ray.

The engine runs in one long-lived child process (`python -m spice_sim._worker`, started on first
use and reused), because a simulation inside the caller's own process cannot be stopped once
ngspice hangs. Jobs and results travel as pickles over the child's stdin/stdout. On a time limit
the child is killed and the next job starts a fresh one.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import time

from .jobs import SimJob, SimResult

__all__ = ["LocalSimulator", "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 30.0
_HEADER = struct.Struct("!Q")


def enter_private_workdir() -> None:
    """Make a simulation worker process work in a folder of its own (per user, under the temp
    folder): ngspice writes files into the working folder by itself (BSIM4's parameter check writes
    `bsim4v5.out` when a sky130 bin's parameter is out of range), and a worker must not leave them
    in, or overwrite them in, the folder the user ran cktflow from."""
    import tempfile
    folder = os.path.join(tempfile.gettempdir(), f"cktflow-ngspice-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chdir(folder)


def write_message(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream):
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class LocalSimulator:
    """Runs SimJobs one at a time in a child process; `timeout_s` bounds each simulation."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, startup_timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None

    def _start(self):
        env = dict(os.environ)
        # the child must import this very copy of spice_sim, installed or from a checkout
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen([sys.executable, "-m", "spice_sim._worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        if not self._wait_readable(self.startup_timeout_s):
            self.close()
            raise RuntimeError("the ngspice worker process did not start in time")
        try:
            ready = read_message(self._proc.stdout)
        except EOFError:
            code = self._proc.poll()
            self.close()
            raise RuntimeError(f"the ngspice worker process died on start-up (exit code {code}); "
                               "is ngspice installed (libngspice0-dev)?") from None
        if isinstance(ready, Exception):
            self.close()
            raise ready

    def _wait_readable(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        return bool(ready)

    def run(self, job: SimJob) -> SimResult:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        t0 = time.perf_counter()
        try:
            write_message(self._proc.stdin, job)
            if self._wait_readable(self.timeout_s):
                return read_message(self._proc.stdout)
        except (EOFError, BrokenPipeError):
            self.close()
            return SimResult(failure="worker_died", message="the ngspice process died during the simulation",
                             seconds=time.perf_counter() - t0)
        self.close()
        return SimResult(failure="timeout", message=f"simulation exceeded its time limit of {self.timeout_s:g} s",
                         seconds=time.perf_counter() - t0)

    def close(self):
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(timeout=10)
            for s in (self._proc.stdin, self._proc.stdout):
                try:
                    s.close()
                except OSError:
                    pass
        self._proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
