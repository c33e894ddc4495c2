"""SPICE netlist (ngspice dialect) of a circuit, with or without the AC testbench.

The text is exactly what cktflow simulates (`cktflow.circuit.realize`), headed by a comment that
identifies the circuit, so an exported deck reproduces cktflow's numbers in any ngspice.
"""

from __future__ import annotations

from typing import IO

from ..circuit import Circuit, OCB_SWEEP, AcSweep, load_pdk, netlist_body, testbench
from ..circuit.pdk import Pdk

__all__ = ["write", "header"]


def header(c: Circuit, comment: str = "*") -> str:
    """Comment lines naming the circuit (structure and canonical hash) and its origin."""
    return "\n".join([f"{comment} cktflow circuit {c.canonical_hash()}",
                      f"{comment} {c}",
                      f"{comment} H(f) = V(out)/V(in); ground is node 0"])


def write(c: Circuit, dest: IO[str], *, with_testbench: bool = True, title: str = "circuit",
          sweep: AcSweep = OCB_SWEEP, pdk: Pdk | None = None) -> None:
    """Write the netlist to `dest`: a complete AC deck, or only the element lines.

    A deck's first line is its title (SPICE reads it as such), so the identifying comment follows it.
    """
    pdk = pdk or load_pdk()
    if with_testbench:
        deck = testbench(c, sweep=sweep, pdk=pdk, title=title)
        first, _, rest = deck.partition("\n")
        dest.write(first + "\n" + header(c) + "\n" + rest)
    else:
        dest.write(header(c) + "\n" + netlist_body(c, pdk) + "\n")
