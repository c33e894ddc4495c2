"""Shared by the export tests: varied generated circuits, simulation, and measurement comparison."""

from __future__ import annotations

import math

from cktflow.circuit import Circuit, OcbGenerator, is_valid, testbench
from spice_sim import Performance, SimJob
from spice_sim.engine import get_engine
from spice_sim.jobs import run_job

COMPARED = ("gain_db", "ugf_hz", "pm_deg")


def varied_circuits(n: int, first_seed: int = 0) -> list[Circuit]:
    """n valid circuits, each from its own seed and its own freshly drawn topology."""
    out = []
    seed = first_seed
    while len(out) < n:
        gen = OcbGenerator(seed=seed)
        c = gen.draw_values(gen.draw_topology())
        if is_valid(c):
            out.append(c)
        seed += 1
    return out


def simulate(deck: str, input: str = "in", output: str = "out") -> Performance:
    res = run_job(get_engine(), SimJob(deck, input=input, output=output))
    assert res.ok, res.message
    return res.performance


def reference(c: Circuit) -> Performance:
    return simulate(testbench(c))


def assert_same(a: Performance, b: Performance, rel: float = 1e-6, what: str = "") -> None:
    for name in COMPARED:
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            assert x is None and y is None, f"{what}: {name} {x} vs {y}"
        else:
            assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-9), f"{what}: {name} {x} vs {y}"
