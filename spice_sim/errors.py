"""Typed simulation failures: a failure is a value with a reason, never a silent sentinel."""

from __future__ import annotations

__all__ = ["SimulationError", "SimulationTimeout", "NetlistError", "UnsafeNetlistError", "FAILURE_KINDS"]

#: The kinds of failure a simulation result can carry.
FAILURE_KINDS = ("timeout", "nonconvergence", "bad_netlist", "unsafe_netlist", "worker_died", "error")


class SimulationError(RuntimeError):
    """ngspice could not produce the analysis (non-convergence, singular matrix, ...)."""
    kind = "nonconvergence"

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class SimulationTimeout(SimulationError):
    kind = "timeout"


class NetlistError(SimulationError):
    """ngspice rejected the netlist text (syntax, unknown node or model)."""
    kind = "bad_netlist"


class UnsafeNetlistError(NetlistError):
    """The netlist contains something that reaches outside the simulation; it was never run."""
    kind = "unsafe_netlist"
