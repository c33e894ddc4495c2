"""The search space of a sizing run: every device value of a circuit, log-uniform within the PDK's range.

Device values span decades (1 fF to 10 pF, 10 kohm to 100 Mohm), so the optimiser works on their
logarithm; skopt's `Real(..., prior="log-uniform")` does that transform itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..circuit import Circuit, Pdk, load_pdk

__all__ = ["SearchSpace"]


@dataclass(frozen=True)
class SearchSpace:
    """The sized values of one circuit: (node index, kind) per dimension and its (low, high) bounds."""
    circuit: Circuit
    keys: tuple[tuple[int, str], ...]
    bounds: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, circuit: Circuit, pdk: Pdk | None = None) -> "SearchSpace":
        pdk = pdk or load_pdk()
        vals = circuit.device_values()
        if not vals:
            raise ValueError("the circuit has no device values to size")
        keys = tuple((i, k) for i, k, _ in vals)
        bounds = tuple(pdk.value_range[k] for _, k, _ in vals)
        return cls(circuit, keys, bounds)

    @property
    def dims(self) -> int:
        return len(self.keys)

    def dimensions(self) -> list:
        """skopt dimensions, named "n<node>.<kind>"."""
        from skopt.space import Real
        return [Real(lo, hi, prior="log-uniform", name=f"n{i}.{k}") for (i, k), (lo, hi) in zip(self.keys, self.bounds)]

    def start(self) -> list[float]:
        """The circuit's own values, clipped into the bounds (a model may decode values just outside)."""
        vals = {(i, k): v for i, k, v in self.circuit.device_values()}
        return [self.clip(j, vals[key]) for j, key in enumerate(self.keys)]

    def clip(self, j: int, value: float) -> float:
        lo, hi = self.bounds[j]
        if not math.isfinite(value) or value <= 0:
            return math.sqrt(lo * hi)
        return min(max(value, lo), hi)

    def circuit_at(self, x: list[float]) -> Circuit:
        if len(x) != self.dims:
            raise ValueError(f"expected {self.dims} values, got {len(x)}")
        return self.circuit.with_values({key: float(v) for key, v in zip(self.keys, x)})

    def to_log(self, x: list[float]) -> list[float]:
        return [math.log10(v) for v in x]

    def from_log(self, u: list[float]) -> list[float]:
        """Back from log10 space, clipped into the bounds."""
        return [self.clip(j, 10.0 ** v) for j, v in enumerate(u)]
