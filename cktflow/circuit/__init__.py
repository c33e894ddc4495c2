"""The circuit IR and everything that works on it without simulating."""

from .basis import SUBGRAPH_TYPES, subgraph_type
from .generator import OcbGenerator
from .ir import Circuit, CircuitFormatError, Node, one_topology_at_a_time
from .pdk import Pdk, load_pdk
from .realize import OCB_SWEEP, AcSweep, follower_testbench, netlist_body, testbench, wrap_follower, wrap_testbench
from .validity import InvalidCircuitError, analyse, is_valid, validity_problems

__all__ = ["SUBGRAPH_TYPES", "subgraph_type", "OcbGenerator", "Circuit", "CircuitFormatError", "Node",
           "one_topology_at_a_time", "Pdk", "load_pdk", "OCB_SWEEP", "AcSweep", "netlist_body", "testbench",
           "wrap_testbench", "follower_testbench", "wrap_follower", "InvalidCircuitError", "analyse", "is_valid", "validity_problems"]
