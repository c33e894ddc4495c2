"""The OCB subgraph basis: the 26 node types a circuit is built from.

Each type is a small two-terminal network between pin A (the node's input net) and pin B (its
output net). The table is defined once here; generator, realisation, validity and the model all
read it. See shared/design/ocb-generator.md section 1 for the source of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Connection", "SubgraphType", "SUBGRAPH_TYPES", "subgraph_type", "DEVICE_KINDS",
           "NUM_TYPES", "NUM_POSITIONS", "STAGE_TYPES", "BRANCH_TYPES", "PASSIVE_TYPES",
           "IN_TYPE", "OUT_TYPE", "POS_IN", "POS_OUT", "STAGE_POSITIONS", "BRANCH_POSITIONS"]

#: Device kinds, in the order a node's values are listed: resistor, capacitor, transconductance.
DEVICE_KINDS = ("R", "C", "gm")

NUM_TYPES = 26
NUM_POSITIONS = 8
IN_TYPE, OUT_TYPE = 0, 1
POS_IN, POS_OUT = 0, 1
#: Positions of the main-path stages S1, S2, S3.
STAGE_POSITIONS = (2, 3, 4)
#: Positions of the side slots: branch A, the passive network P, branch B.
BRANCH_POSITIONS = (5, 6, 7)


class Connection(str, Enum):
    NONE = "none"          # In / Out
    SINGLE = "single"      # one device
    SERIES = "series"      # R in series with C between A and B (the gm, if any, in parallel)
    PARALLEL = "parallel"  # every device between A and B


@dataclass(frozen=True)
class SubgraphType:
    id: int
    name: str
    devices: tuple[str, ...]     # kinds present, a subset of DEVICE_KINDS in that order
    connection: Connection
    gm_sign: int = 0             # +1 / -1 when a gm is present, else 0
    feedback: bool = False       # feedback gm: senses pin B and drives pin A (pins swapped)

    @property
    def has_gm(self) -> bool:
        return "gm" in self.devices


def _build() -> tuple[SubgraphType, ...]:
    types = [
        SubgraphType(0, "In", (), Connection.NONE),
        SubgraphType(1, "Out", (), Connection.NONE),
        SubgraphType(2, "R", ("R",), Connection.SINGLE),
        SubgraphType(3, "C", ("C",), Connection.SINGLE),
        SubgraphType(4, "R-C series", ("R", "C"), Connection.SERIES),
        SubgraphType(5, "R||C", ("R", "C"), Connection.PARALLEL),
    ]
    # Five groups of four gm variants: +gm+, -gm+, +gm-, -gm- (sign of gm, then direction).
    groups = [
        ((), Connection.SINGLE, "gm"),
        (("C",), Connection.PARALLEL, "C||gm"),
        (("R",), Connection.PARALLEL, "R||gm"),
        (("R", "C"), Connection.PARALLEL, "R||C||gm"),
        (("R", "C"), Connection.SERIES, "(R-C)||gm"),
    ]
    variants = [(+1, False, "+gm+"), (-1, False, "-gm+"), (+1, True, "+gm-"), (-1, True, "-gm-")]
    next_id = 6
    for passives, conn, label in groups:
        for sign, feedback, vlabel in variants:
            name = label.replace("gm", vlabel)
            types.append(SubgraphType(next_id, name, passives + ("gm",), conn, sign, feedback))
            next_id += 1
    assert len(types) == NUM_TYPES
    return tuple(types)


SUBGRAPH_TYPES: tuple[SubgraphType, ...] = _build()

#: Types the generator draws for the main stages (feedforward gm, with or without a parallel C).
STAGE_TYPES = (6, 7, 10, 11)
#: Types a side branch (A or B) may take.
BRANCH_TYPES = tuple(range(2, 26))
#: Types the passive slot P may take.
PASSIVE_TYPES = (2, 3, 4, 5)


def subgraph_type(type_id: int) -> SubgraphType:
    if not isinstance(type_id, int) or not 0 <= type_id < NUM_TYPES:
        raise ValueError(f"subgraph type must be an integer 0-{NUM_TYPES - 1}, got {type_id!r}")
    return SUBGRAPH_TYPES[type_id]
