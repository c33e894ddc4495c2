"""Specs: targets on measured metrics, read from YAML with errors that name file, line and field.

```yaml
name: demo                 # optional
targets:                   # metric: {min: ..., max: ...}; values take SI prefixes and the unit
  gain_db: {min: 60dB}
  ugf_hz:  {min: 100MHz}
  pm_deg:  {min: 60}
objective: max_margin      # optional, for sizing: max_margin (default) or min_total_gm
```
Metric names and definitions: spice_sim.measure.METRIC_UNITS (shared/design/metrics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from spice_sim.measure import METRIC_UNITS, Performance

from .units import UnitError, format_si, parse_si

__all__ = ["Bound", "Spec", "SpecError", "load_spec", "parse_spec", "CheckRow", "OBJECTIVES", "SHORTFALL_SCALE"]

OBJECTIVES = ("max_margin", "min_total_gm")

#: Normalisation of a shortfall per unit: how much counts as "one unit" of missing the target.
#: dB and degrees by a fixed scale, frequencies in decades (metrics.md).
SHORTFALL_SCALE = {"dB": 20.0, "deg": 30.0, "Hz": 1.0}


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class Bound:
    metric: str
    min: float | None = None
    max: float | None = None

    @property
    def unit(self) -> str:
        return METRIC_UNITS[self.metric]

    def passes(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def shortfall(self, value: float | None) -> float:
        """How far `value` misses the bound, normalised (0 when it holds; 10 for a missing value)."""
        if value is None or not math.isfinite(value):
            return 10.0
        return max(0.0, -self.margin(value))

    def scaled(self, value: float | None) -> float:
        """`value` in the units `margin` and `shortfall` measure in: decades for Hz, value over
        SHORTFALL_SCALE otherwise (nan when absent, not finite, or a non-positive frequency)."""
        if value is None or not math.isfinite(value):
            return math.nan
        if self.unit == "Hz":
            return math.log10(value) if value > 0 else math.nan
        return value / SHORTFALL_SCALE[self.unit]

    def margin(self, value: float) -> float:
        """Normalised distance inside the bound (negative when outside): the tightest side."""
        scale = SHORTFALL_SCALE[self.unit]
        sides = []
        if self.unit == "Hz":
            if value <= 0:
                return -10.0
            if self.min is not None:
                sides.append(math.log10(value / self.min))
            if self.max is not None:
                sides.append(math.log10(self.max / value))
        else:
            if self.min is not None:
                sides.append((value - self.min) / scale)
            if self.max is not None:
                sides.append((self.max - value) / scale)
        return min(sides)

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {format_si(self.min, self.unit)}")
        if self.max is not None:
            parts.append(f"<= {format_si(self.max, self.unit)}")
        return " and ".join(parts)


@dataclass(frozen=True)
class CheckRow:
    metric: str
    target: str
    measured: float | None
    passed: bool
    shortfall: float


@dataclass(frozen=True)
class Spec:
    targets: tuple[Bound, ...]
    name: str = "spec"
    objective: str = "max_margin"
    source: str = field(default="<spec>", compare=False)

    def check(self, perf: Performance) -> list[CheckRow]:
        return [CheckRow(b.metric, b.describe(), perf.get(b.metric), b.passes(perf.get(b.metric)),
                         b.shortfall(perf.get(b.metric))) for b in self.targets]

    def passes(self, perf: Performance | None) -> bool:
        return perf is not None and all(b.passes(perf.get(b.metric)) for b in self.targets)

    def shortfall(self, perf: Performance | None) -> float:
        """Sum of normalised shortfalls over all targets; 0 exactly when the spec is met."""
        if perf is None:
            return 10.0 * len(self.targets)
        return sum(b.shortfall(perf.get(b.metric)) for b in self.targets)

    def min_margin(self, perf: Performance) -> float:
        """The tightest normalised margin over all targets (negative when any fails)."""
        vals = [b.margin(v) if (v := perf.get(b.metric)) is not None else -10.0 for b in self.targets]
        return min(vals) if vals else 0.0

    def to_dict(self) -> dict:
        t = {}
        for b in self.targets:
            t[b.metric] = {k: v for k, v in (("min", b.min), ("max", b.max)) if v is not None}
        return {"name": self.name, "targets": t, "objective": self.objective}


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc.strerror}") from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SpecError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise SpecError(f"{source}:1: a spec is a YAML mapping with a 'targets' section")

    def err(node, msg):
        return SpecError(f"{source}:{node.start_mark.line + 1}: {msg}")

    top = {k.value: (k, v) for k, v in root.value}
    for key, (knode, _) in top.items():
        if key not in ("name", "targets", "objective", "description"):
            raise err(knode, f"unknown field '{key}' (expected name, description, targets, objective)")
    if "targets" not in top:
        raise err(root, "missing field 'targets'")
    tnode = top["targets"][1]
    if not isinstance(tnode, yaml.MappingNode) or not tnode.value:
        raise err(tnode, "'targets' must map metric names to bounds, e.g. gain_db: {min: 60dB}")
    bounds = []
    seen = set()
    for mnode, bnode in tnode.value:
        metric = mnode.value
        if metric not in METRIC_UNITS:
            raise err(mnode, f"unknown metric '{metric}' (known: {', '.join(METRIC_UNITS)})")
        if metric in seen:
            raise err(mnode, f"metric '{metric}' is given twice")
        seen.add(metric)
        unit = METRIC_UNITS[metric]
        if not isinstance(bnode, yaml.MappingNode):
            raise err(bnode, f"targets.{metric}: expected a mapping like {{min: ...}} and/or {{max: ...}}")
        vals = {}
        for side, vnode in bnode.value:
            if side.value not in ("min", "max"):
                raise err(side, f"targets.{metric}: unknown bound '{side.value}' (use min and/or max)")
            if not isinstance(vnode, yaml.ScalarNode) or vnode.value in ("", "~", "null"):
                raise err(vnode, f"targets.{metric}.{side.value}: expected a value such as 10{unit}")
            try:
                vals[side.value] = parse_si(vnode.value, unit)
            except UnitError as exc:
                raise err(vnode, f"targets.{metric}.{side.value}: {exc}") from None
        if not vals:
            raise err(bnode, f"targets.{metric}: give min and/or max")
        if unit == "Hz" and any(v <= 0 for v in vals.values()):
            raise err(bnode, f"targets.{metric}: a frequency bound must be positive")
        if "min" in vals and "max" in vals and vals["min"] > vals["max"]:
            raise err(bnode, f"targets.{metric}: min {vals['min']:g} is above max {vals['max']:g}")
        bounds.append(Bound(metric, vals.get("min"), vals.get("max")))
    name = "spec"
    if "name" in top:
        name = str(top["name"][1].value)
    objective = "max_margin"
    if "objective" in top:
        onode = top["objective"][1]
        if onode.value not in OBJECTIVES:
            raise err(onode, f"unknown objective '{onode.value}' (known: {', '.join(OBJECTIVES)})")
        objective = onode.value
    return Spec(tuple(bounds), name=name, objective=objective, source=source)
