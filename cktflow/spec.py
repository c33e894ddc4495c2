"""Specs: targets on measured metrics, read from YAML with errors that name file, line and field.

```yaml
name: demo                 # optional
targets:                   # metric: {min: ..., max: ...}; values take SI prefixes and the unit
  gain_db: {min: 60dB}
  ugf_hz:  {min: 100MHz}
  pm_deg:  {min: 60}
objective: max_margin      # optional, for sizing: max_margin (default) or min_total_gm
implicit: true             # optional: the "usable in feedback" targets below (default true)
```
Metric names and definitions: spice_sim.measure.METRIC_UNITS (shared/design/metrics.md).

Implicit targets: an op-amp that meets its AC numbers but rings, is conditionally stable or
oscillates as a follower is not usable, so unless a spec says otherwise every spec also requires
`stable: true` (no closed-loop right-half-plane pole in unity feedback), `pm_min_deg` at least the
spec's `pm_deg` minimum (45 deg without one) and `peaking_db <= 6`. A spec may bound any of these
itself (its own bound replaces the implicit one; `stable: false` waives stability), or switch all
of them off with `implicit: false`. `Spec.targets` are the user's own; `Spec.bounds` adds the
implicit ones, and every check, shortfall and margin reads `bounds`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from spice_sim.measure import METRIC_UNITS, Performance

from .units import UnitError, format_si, parse_si

__all__ = ["Bound", "Spec", "SpecError", "load_spec", "parse_spec", "CheckRow", "OBJECTIVES", "SHORTFALL_SCALE",
           "IMPLICIT_PM_MIN_DEG", "IMPLICIT_PEAKING_DB"]

OBJECTIVES = ("max_margin", "min_total_gm")

#: Normalisation of a shortfall per unit: how much counts as "one unit" of missing the target.
#: dB and degrees by a fixed scale, frequencies in decades (metrics.md).
#: Times in decades like frequencies; overshoot by 10 %; a boolean (stable) counts 1 when false.
SHORTFALL_SCALE = {"dB": 20.0, "deg": 30.0, "Hz": 1.0, "s": 1.0, "%": 10.0, "bool": 1.0}
#: Units measured in decades (a ratio), not by a linear scale.
_LOG_UNITS = ("Hz", "s")

#: The implicit targets' defaults (metrics.md, "usable in feedback").
IMPLICIT_PM_MIN_DEG = 45.0
IMPLICIT_PEAKING_DB = 6.0


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
        if self.unit in _LOG_UNITS:
            return math.log10(value) if value > 0 else math.nan
        return float(value) / SHORTFALL_SCALE[self.unit]

    def margin(self, value: float) -> float:
        """Normalised distance inside the bound (negative when outside): the tightest side."""
        scale = SHORTFALL_SCALE[self.unit]
        sides = []
        if self.unit == "bool":
            return 1.0 if self.passes(value) else -1.0
        if self.unit in _LOG_UNITS:
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
        if self.unit == "bool":
            return "true" if self.min else "false"
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
    measured: float | bool | None
    passed: bool
    shortfall: float
    implicit: bool = False        # an implicit "usable in feedback" target, not the user's own


@dataclass(frozen=True)
class Spec:
    targets: tuple[Bound, ...]          # the user's own targets
    name: str = "spec"
    objective: str = "max_margin"
    source: str = field(default="<spec>", compare=False)
    implicit: bool = True               # add the "usable in feedback" targets (module docstring)
    waived: frozenset[str] = frozenset()  # implicit targets the user switched off one by one

    @property
    def implicit_bounds(self) -> tuple[Bound, ...]:
        """The implicit targets this spec gets: those the user neither set nor waived."""
        if not self.implicit:
            return ()
        own = {b.metric for b in self.targets} | set(self.waived)
        pm = next((b.min for b in self.targets if b.metric == "pm_deg" and b.min is not None), None)
        out = [Bound("stable", min=1.0),
               Bound("pm_min_deg", min=IMPLICIT_PM_MIN_DEG if pm is None else pm),
               Bound("peaking_db", max=IMPLICIT_PEAKING_DB)]
        return tuple(b for b in out if b.metric not in own)

    @property
    def bounds(self) -> tuple[Bound, ...]:
        """Every target a circuit must meet: the user's own, then the implicit ones."""
        return self.targets + self.implicit_bounds

    def check(self, perf: Performance) -> list[CheckRow]:
        implicit = set(self.implicit_bounds)
        return [CheckRow(b.metric, b.describe(), perf.get(b.metric), b.passes(perf.get(b.metric)),
                         b.shortfall(perf.get(b.metric)), b in implicit) for b in self.bounds]

    def passes(self, perf: Performance | None) -> bool:
        return perf is not None and all(b.passes(perf.get(b.metric)) for b in self.bounds)

    def shortfall(self, perf: Performance | None) -> float:
        """Sum of normalised shortfalls over all targets; 0 exactly when the spec is met."""
        if perf is None:
            return 10.0 * len(self.bounds)
        return sum(b.shortfall(perf.get(b.metric)) for b in self.bounds)

    def min_margin(self, perf: Performance) -> float:
        """The tightest normalised margin over all targets (negative when any fails)."""
        vals = [b.margin(v) if (v := perf.get(b.metric)) is not None else -10.0 for b in self.bounds]
        return min(vals) if vals else 0.0

    def needs_step(self) -> bool:
        """Whether a target needs the follower's transient (overshoot or settling)."""
        return any(b.metric in ("overshoot_pct", "settling_s") for b in self.bounds)

    def without_implicit(self) -> "Spec":
        return replace(self, implicit=False)

    def to_dict(self) -> dict:
        t = {}
        for b in self.targets:
            if b.unit == "bool":
                t[b.metric] = bool(b.min)
            else:
                t[b.metric] = {k: v for k, v in (("min", b.min), ("max", b.max)) if v is not None}
        for m in sorted(self.waived):
            t[m] = False
        return {"name": self.name, "targets": t, "objective": self.objective, "implicit": self.implicit}


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
        # a ReaderError (a control character) has a character position instead of a mark
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else text.count("\n", 0, getattr(exc, "position", 0) or 0) + 1
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise SpecError(f"{source}:{line}: not valid YAML: {problem}") from None
    except RecursionError:      # PyYAML composes recursively: thousands of nested [ or { exhaust the stack
        raise SpecError(f"{source}:1: not valid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:    # PyYAML fails so on an escape like "\UFFFFFFFF"
        raise SpecError(f"{source}:1: not valid YAML: {exc}") from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise SpecError(f"{source}:1: a spec is a YAML mapping with a 'targets' section")

    def err(node, msg):
        return SpecError(f"{source}:{node.start_mark.line + 1}: {msg}")

    names: set[str] = set()         # a list or mapping as a key (`? [a, b]`) is no field name
    for knode, _ in root.value:
        if not isinstance(knode, yaml.ScalarNode) or knode.value in names:
            raise err(knode, "a field name must be a plain word, given once")
        names.add(knode.value)
    top = {k.value: (k, v) for k, v in root.value}
    for key, (knode, _) in top.items():
        if key not in ("name", "targets", "objective", "description", "implicit"):
            raise err(knode, f"unknown field '{key}' (expected name, description, targets, objective, implicit)")
    if "targets" not in top:
        raise err(root, "missing field 'targets'")
    tnode = top["targets"][1]
    if not isinstance(tnode, yaml.MappingNode) or not tnode.value:
        raise err(tnode, "'targets' must map metric names to bounds, e.g. gain_db: {min: 60dB}")
    bounds = []
    seen = set()
    waived = set()
    for mnode, bnode in tnode.value:
        metric = _text(mnode)
        if metric not in METRIC_UNITS:
            raise err(mnode, f"unknown metric '{metric}' (known: {', '.join(METRIC_UNITS)})")
        if metric in seen:
            raise err(mnode, f"metric '{metric}' is given twice")
        seen.add(metric)
        unit = METRIC_UNITS[metric]
        if unit == "bool":
            value = _yaml_bool(bnode)
            if value is None:
                raise err(bnode, f"targets.{metric}: expected true or false")
            if value:
                bounds.append(Bound(metric, min=1.0))
            else:
                waived.add(metric)
            continue
        if not isinstance(bnode, yaml.MappingNode):
            raise err(bnode, f"targets.{metric}: expected a mapping like {{min: ...}} and/or {{max: ...}}")
        vals = {}
        for side, vnode in bnode.value:
            if not isinstance(side, yaml.ScalarNode) or side.value not in ("min", "max"):
                raise err(side, f"targets.{metric}: unknown bound '{_text(side)}' (use min and/or max)")
            if not isinstance(vnode, yaml.ScalarNode) or vnode.value in ("", "~", "null"):
                raise err(vnode, f"targets.{metric}.{side.value}: expected a value such as 10{unit}")
            try:
                vals[side.value] = parse_si(vnode.value, unit)
            except UnitError as exc:
                raise err(vnode, f"targets.{metric}.{side.value}: {exc}") from None
        if not vals:
            raise err(bnode, f"targets.{metric}: give min and/or max")
        if unit in _LOG_UNITS and any(v <= 0 for v in vals.values()):
            raise err(bnode, f"targets.{metric}: a frequency bound must be positive")
        if "min" in vals and "max" in vals and vals["min"] > vals["max"]:
            raise err(bnode, f"targets.{metric}: min {vals['min']:g} is above max {vals['max']:g}")
        bounds.append(Bound(metric, vals.get("min"), vals.get("max")))
    name = "spec"
    if "name" in top:
        nnode = top["name"][1]
        # the name becomes a folder (generate's default -o, the flywheel's specs/NAME) and the title
        # line of exported netlists, where a newline would start a line of its own (`.control`)
        if not isinstance(nnode, yaml.ScalarNode) or not _PLAIN_NAME.fullmatch(nnode.value) \
                or nnode.value in (".", ".."):
            raise err(nnode, "'name' must be one line of text (at most 100 characters) without '/', '\\' "
                             "or control characters")
        name = nnode.value
    objective = "max_margin"
    if "objective" in top:
        onode = top["objective"][1]
        if _text(onode) not in OBJECTIVES:
            raise err(onode, f"unknown objective '{_text(onode)}' (known: {', '.join(OBJECTIVES)})")
        objective = onode.value
    implicit = True
    if "implicit" in top:
        inode = top["implicit"][1]
        implicit = _yaml_bool(inode)
        if implicit is None:
            raise err(inode, "'implicit' must be true or false")
    return Spec(tuple(bounds), name=name, objective=objective, source=source, implicit=implicit,
                waived=frozenset(waived))


_PLAIN_NAME = re.compile(r"[^/\\\x00-\x1f\x7f\x85\u2028\u2029]{1,100}")


def _text(node) -> str:
    """A scalar node's text; a list or mapping is never formatted (a YAML bomb of aliases expands
    to gigabytes when printed), it reads as a placeholder that no rule accepts."""
    return node.value if isinstance(node, yaml.ScalarNode) else "(a list or mapping)"


def _yaml_bool(node) -> bool | None:
    """A YAML scalar read as a boolean (true/false/yes/no/on/off), None when it is not one."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    return {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}.get(node.value.lower())
