"""The ngspice engine on PySpice's binding to the ngspice shared library.

One engine per process (libngspice keeps global state). The pitfalls handled here
(shared/design/stack-notes.md): OpenMP is limited to one thread; gmin-stepping notes on stderr are
not errors (PySpice's own `run()` raises on them, so commands are issued directly); the circuit and
its plots are removed after every run so memory stays flat; failures become typed exceptions.
This engine has no time limit of its own: `spice_sim.local.LocalSimulator` and the Ray pool run it
in a process they can end.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

import numpy as np

from .errors import NetlistError, SimulationError

__all__ = ["NgSpiceEngine", "AcData", "get_engine"]

# stderr lines that are progress notes, not failures.
_BENIGN = re.compile(r"^(Note:|Warning:|Trying gmin|Supplies reduced|Using SPARSE|Doing analysis"
                     r"|Reference value|No\. of Data Rows|\s*$|Circuit: |.*gmin stepping|.*source stepping"
                     r"|.*completed|.*succeeded)", re.IGNORECASE)
_PARSE_ERROR = re.compile(r"(unknown|no such|could not find|syntax|not found|too few|parameter"
                          r"|unable to find|undefined|circuit not parsed|error on line|mismatch)", re.IGNORECASE)


@dataclass
class AcData:
    """The scale of one analysis (frequencies in Hz for AC, times in s for a transient; the field
    keeps its AC name) and the node voltages over it (complex for AC)."""
    freq: np.ndarray
    voltages: dict[str, np.ndarray]

    def ratio(self, output: str, input_: str) -> np.ndarray:
        return self.voltages[output.lower()] / self.voltages[input_.lower()]


_engine_lock = threading.Lock()
_engine: "NgSpiceEngine | None" = None


def get_engine() -> "NgSpiceEngine":
    """The process's one engine, created on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = NgSpiceEngine()
        return _engine


class NgSpiceEngine:
    def __init__(self):
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi  # heavy, and needs libngspice
        self._ffi = ffi
        try:
            self._ng = NgSpiceShared.new_instance()
        except OSError as exc:
            raise SimulationError(
                "cannot load the ngspice shared library (install ngspice, libngspice0 and libngspice0-dev, "
                f"or set NGSPICE_LIBRARY_PATH): {exc}") from exc
        self._lib = self._ng._ngspice_shared
        self.version = self._ng._ngspice_version
        self.runs = 0
        self.last_log = ""   # stderr of the last run (gmin-stepping notes and the like)
        self._command("set num_threads=1")
        self._command("set nomoremode")
        self._command("set noaskquit")

    def _command(self, cmd: str) -> tuple[str, str]:
        self._ng.clear_output()
        rc = self._lib.ngSpice_Command(cmd.encode("ascii"))
        out, err = self._ng.stdout, self._ng.stderr
        if rc:
            raise SimulationError(f"ngspice command '{cmd}' returned {rc}", out + err)
        return out, err

    def _vector(self, plot: str, name: str) -> np.ndarray | None:
        info = self._lib.ngGet_Vec_Info(f"{plot}.{name}".encode("utf8"))
        if info == self._ffi.NULL or info.v_length == 0:
            return None
        n = info.v_length
        if info.v_compdata != self._ffi.NULL:
            raw = np.frombuffer(self._ffi.buffer(info.v_compdata, n * 16), dtype=np.float64)
            return (raw[0::2] + 1j * raw[1::2]).copy()
        return np.frombuffer(self._ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()

    def _plots(self) -> list[str]:
        arr = self._lib.ngSpice_AllPlots()
        names, i = [], 0
        while arr[i] != self._ffi.NULL:
            names.append(self._ffi.string(arr[i]).decode())
            i += 1
        return names

    def run_ac(self, netlist: str, nodes: tuple[str, ...] = ("in", "out")) -> AcData:
        """Load a complete deck with one `.ac` analysis, run it, return the named node voltages."""
        return self.run(netlist, nodes, "ac")

    def run_tran(self, netlist: str, nodes: tuple[str, ...] = ("out",)) -> AcData:
        """Load a complete deck with one `.tran` analysis; `.freq` then holds the time points (s)."""
        return self.run(netlist, nodes, "tran")

    def run(self, netlist: str, nodes: tuple[str, ...], analysis: str) -> AcData:
        """Load a complete deck with one analysis (`ac` or `tran`), run it, return the named node
        voltages over the analysis' scale (frequency or time)."""
        scale_name = {"ac": "frequency", "tran": "time"}[analysis]
        self._ng.clear_output()
        lines = [ln for ln in netlist.splitlines() if ln.strip()]
        keep = [self._ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [self._ffi.NULL]
        self._lib.ngSpice_Circ(self._ffi.new("char *[]", keep))
        load_log = self._ng.stdout + "\n" + self._ng.stderr
        try:
            if "circuit not parsed" in load_log.lower() or re.search(r"^\s*error", load_log, re.I | re.M):
                raise NetlistError(_first_error(load_log) or "ngspice could not parse the netlist", load_log)
            _, err = self._command("run")
            self.runs += 1
            self.last_log = err
            plot = self._command("echo $curplot")[0].strip().splitlines()[-1].strip()
            scale = self._vector(plot, scale_name)
            if not plot.startswith(analysis) or scale is None:
                raise SimulationError(_first_error(err) or f"the {analysis.upper()} analysis produced no data", err)
            voltages = {}
            for node in nodes:
                v = self._vector(plot, node.lower())
                if v is None:
                    raise NetlistError(f"the netlist has no node '{node}'", err)
                voltages[node.lower()] = v
            data = AcData(np.real(scale).copy(), voltages)
            if not np.all(np.isfinite(data.freq)) or any(not np.all(np.isfinite(v)) for v in voltages.values()):
                raise SimulationError("ngspice returned non-finite values (singular circuit?)", err)
            return data
        finally:
            self._cleanup()

    def _cleanup(self):
        # remove every plot and the circuit, or memory grows ~0.1 MB per run
        for cmd in ("destroy all", "remcirc"):
            try:
                self._command(cmd)
            except SimulationError:
                pass


def _first_error(log: str) -> str:
    """The first line that reads as an error, with the two lines that explain it."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for k, s in enumerate(lines):
        if not _BENIGN.match(s) and ("error" in s.lower() or _PARSE_ERROR.search(s)):
            return " ".join(lines[k:k + 3])
    return ""
