"""spice_sim: the simulation layer (ngspice), independent of cktflow.

Netlist safety checks, the ngspice engine, measurements, the local simulator with a time limit,
and (spice_sim.pool) the Ray worker pool.
"""

from .errors import NetlistError, SimulationError, SimulationTimeout, UnsafeNetlistError
from .jobs import SimJob, SimResult
from .local import LocalSimulator
from .measure import METRIC_UNITS, METRICS, Performance, measure
from .safety import CheckedNetlist, check_netlist

__all__ = ["NetlistError", "SimulationError", "SimulationTimeout", "UnsafeNetlistError", "SimJob", "SimResult",
           "LocalSimulator", "METRIC_UNITS", "METRICS", "Performance", "measure", "CheckedNetlist", "check_netlist"]
