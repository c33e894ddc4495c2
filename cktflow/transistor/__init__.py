"""The transistor level: PDK-checked netlists and op-amp testbenches on a real PDK (sky130)."""

from .bench import Conditions, OpampBench, OpampMetrics, model_library
from .circuit import (CircuitFileError, PortError, SizingError, SizingParam, TransistorCircuit, TransistorFormatError,
                      from_template, read_subckt, templates)
from .netlist import check_transistor_netlist, spice_number

__all__ = ["Conditions", "OpampBench", "OpampMetrics", "model_library", "check_transistor_netlist", "spice_number",
           "TransistorCircuit", "SizingParam", "CircuitFileError", "PortError", "SizingError",
           "TransistorFormatError", "templates", "from_template", "read_subckt"]
