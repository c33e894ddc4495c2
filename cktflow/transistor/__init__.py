"""The transistor level: PDK-checked netlists and op-amp testbenches on a real PDK (sky130)."""

from .bench import Conditions, OpampBench, OpampMetrics, model_library
from .netlist import check_transistor_netlist, spice_number

__all__ = ["Conditions", "OpampBench", "OpampMetrics", "model_library", "check_transistor_netlist", "spice_number"]
