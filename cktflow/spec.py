"""Specs: targets on measured metrics, read from YAML with errors that name file, line and field.

```yaml
name: demo                 # optional
targets:                   # metric: {min: ..., max: ...}; values take SI prefixes and the unit
  gain_db: {min: 60dB}
  ugf_hz:  {min: 100MHz}
  pm_deg:  {min: 60}
objective: max_margin      # optional, for sizing: max_margin (default), min_total_gm (behavioural),
                           # min_power or min_area (transistor level; once every target holds)
implicit: true             # optional: the "usable in feedback" targets below (default true)
pdk: sky130                # optional: a transistor PDK (pdk/*.yaml); default the behavioural level
conditions: {vdd: 1.8V, vcm: 0.9V, load_cap: 1pF, corners: [tt, ss, ff], temperatures: [-40, 27, 125]}
```
Metric names, units and definitions: spice_sim.metrics.REGISTRY (docs/spec.md is made from it).
A metric the spec's level does not measure (power at the behavioural level, say) is refused,
naming its line. `conditions` need a transistor PDK; a spec passes when every target holds in
every combination of corner and temperature (`Spec.worst_case` reads the worst value of each).

Implicit targets: an op-amp that meets its AC numbers but rings, is conditionally stable or
oscillates as a follower is not usable, so unless a spec says otherwise every spec also requires
`stable: true` (no closed-loop right-half-plane pole in unity feedback), `pm_min_deg` at least the
spec's `pm_deg` minimum (45 deg without one) and `peaking_db <= 6`. A spec may bound any of these
itself (its own bound replaces the implicit one; `stable: false` waives stability), or switch all
of them off with `implicit: false`. `Spec.targets` are the user's own; `Spec.bounds` adds the
implicit ones, and every check, shortfall and margin reads `bounds`. At transistor level a
usable amplifier also has every device in saturation at its operating point: `all_saturated`
is an implicit target there too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from spice_sim.measure import Performance
from spice_sim.metrics import LOG_UNITS, METRIC_UNITS, REGISTRY, metrics_at

from .technology import load_technology
from .units import UnitError, format_si, parse_si

__all__ = ["Bound", "Spec", "SpecConditions", "SpecError", "load_spec", "parse_spec", "CheckRow", "OBJECTIVES",
           "OBJECTIVE_LEVELS", "SHORTFALL_SCALE", "IMPLICIT_PM_MIN_DEG", "IMPLICIT_PEAKING_DB", "CONDITION_FIELDS"]

OBJECTIVES = ("max_margin", "min_total_gm", "min_power", "min_area")
#: Objectives that read what only one level measures (total gm of the behavioural gm stages; the
#: power and area of a transistor op-amp); the others apply at every level.
OBJECTIVE_LEVELS = {"min_total_gm": "behavioural", "min_power": "transistor", "min_area": "transistor"}

#: Normalisation of a shortfall per unit: how much counts as "one unit" of missing the target.
#: dB and degrees by a fixed scale, frequencies in decades (metrics.md).
#: Times in decades like frequencies; overshoot by 10 %; a boolean (stable) counts 1 when false.
#: Slew, current, power, area and noise density in decades too (spice_sim.metrics.LOG_UNITS);
#: voltages (swing, offset, saturation margin) by 100 mV.
SHORTFALL_SCALE = {"dB": 20.0, "deg": 30.0, "%": 10.0, "bool": 1.0, "V": 0.1, **{u: 1.0 for u in LOG_UNITS}}
_LOG_UNITS = LOG_UNITS

#: The implicit targets' defaults (metrics.md, "usable in feedback").
IMPLICIT_PM_MIN_DEG = 45.0
IMPLICIT_PEAKING_DB = 6.0


class SpecError(ValueError):
    pass


#: The conditions a transistor-level spec may set (YAML key -> unit), and their defaults' source.
CONDITION_FIELDS = {"vdd": "V", "vcm": "V", "load_cap": "F", "corners": None, "temperatures": "C",
                    "vstep": "V", "noise_freq": "Hz"}


@dataclass(frozen=True)
class SpecConditions:
    """Where a transistor-level spec must hold: every corner at every temperature, at one supply,
    input common mode and load. None: the circuit's own conditions, else the PDK's nominal supply,
    vdd/2; no corners: the PDK's default corner."""
    vdd: float | None = None
    vcm: float | None = None
    load_cap: float | None = None   # None: the circuit's own (a template's), else 5 pF
    corners: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = (27.0,)
    vstep: float = 0.3              # the follower's input step (slew, settling)
    noise_freq: float = 1e3         # spot-noise frequency

    def to_dict(self) -> dict:
        return {"vdd": self.vdd, "vcm": self.vcm, "load_cap": self.load_cap, "corners": list(self.corners),
                "temperatures": list(self.temperatures), "vstep": self.vstep, "noise_freq": self.noise_freq}


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
    pdk: str | None = None              # a transistor PDK's name; None: the behavioural level
    conditions: SpecConditions | None = None   # transistor level only (None there: the defaults)

    @property
    def level(self) -> str:
        return "behavioural" if self.pdk is None else "transistor"

    def with_pdk(self, pdk: str) -> "Spec":
        """This spec at a transistor PDK (`verify --pdk`): its metrics and conditions are checked again."""
        spec = replace(self, pdk=pdk, conditions=self.conditions or SpecConditions())
        problems = _level_problems(spec)
        if problems:
            raise SpecError(f"{self.source}: " + "; ".join(problems))
        return spec

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
        if self.level == "transistor":
            out.append(Bound("all_saturated", min=1.0))
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

    def worst_case(self, perfs: list[Performance | None]) -> Performance:
        """Each bounded metric's worst value over conditions (one Performance per condition): the
        one with the smallest margin, None when any condition did not measure it. The spec passes
        on the worst case exactly when it passes in every condition."""
        worst = {}
        for b in self.bounds:
            vals = [None if p is None else p.get(b.metric) for p in perfs]
            if not vals or any(v is None for v in vals):
                worst[b.metric] = None
            else:
                worst[b.metric] = min(vals, key=lambda v: b.margin(v) if math.isfinite(v) else -math.inf)
        return Performance(**worst)

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
        out = {"name": self.name, "targets": t, "objective": self.objective, "implicit": self.implicit}
        if self.pdk is not None:
            out["pdk"] = self.pdk
            out["conditions"] = (self.conditions or SpecConditions()).to_dict()
        return out


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
        if key not in _TOP_FIELDS:
            raise err(knode, f"unknown field '{key}' (expected {', '.join(_TOP_FIELDS)})")
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
            raise err(bnode, f"targets.{metric}: a bound in {unit} must be positive")
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
    pdk, conditions = None, None
    if "pdk" in top:
        pnode = top["pdk"][1]
        try:
            tech = load_technology(str(pnode.value)) if isinstance(pnode, yaml.ScalarNode) else None
        except FileNotFoundError as exc:
            raise err(pnode, f"pdk: {exc}") from None
        if tech is None:
            raise err(pnode, "'pdk' must name a PDK, e.g. sky130 (cktflow pdk list)")
        if tech.kind == "transistor":
            pdk = tech.name
    if "conditions" in top:
        cknode, cnode = top["conditions"]
        if pdk is None:
            raise err(cknode, "'conditions' need a transistor PDK: add e.g. 'pdk: sky130' (cktflow pdk list)")
        conditions = _parse_conditions(cnode, load_technology(pdk), err)
    spec = Spec(tuple(bounds), name=name, objective=objective, source=source, implicit=implicit,
                waived=frozenset(waived), pdk=pdk,
                conditions=conditions if pdk is None or conditions else SpecConditions())
    for mnode, _ in tnode.value:
        if mnode.value not in metrics_at(spec.level):
            raise err(mnode, _level_problem(mnode.value, spec.level))
    if OBJECTIVE_LEVELS.get(objective, spec.level) != spec.level:
        raise err(top["objective"][1], _objective_problem(objective, spec.level))
    return spec


_TOP_FIELDS = ("name", "description", "targets", "objective", "implicit", "pdk", "conditions")


def _level_problem(metric: str, level: str) -> str:
    if level == "behavioural":
        return (f"metric '{metric}' is measured on transistor op-amps only: give the spec a transistor PDK "
                f"('pdk: sky130') or drop it")
    return f"metric '{metric}' is not measured on transistor op-amps ({REGISTRY[metric].definition})"


def _objective_problem(objective: str, level: str) -> str:
    if OBJECTIVE_LEVELS[objective] == "transistor":
        return (f"objective '{objective}' applies to transistor op-amps only: give the spec a transistor PDK "
                f"('pdk: sky130') or use max_margin")
    return f"objective '{objective}' applies to behavioural circuits only (at transistor level: min_power, min_area)"


def _level_problems(spec: Spec) -> list[str]:
    out = [_level_problem(b.metric, spec.level) for b in spec.targets if b.metric not in metrics_at(spec.level)]
    if OBJECTIVE_LEVELS.get(spec.objective, spec.level) != spec.level:
        out.append(_objective_problem(spec.objective, spec.level))
    return out


def _parse_conditions(cnode, tech, err) -> SpecConditions:
    if not isinstance(cnode, yaml.MappingNode):
        raise err(cnode, "'conditions' must be a mapping, e.g. {vdd: 1.8V, corners: [tt, ss, ff]}")
    vals: dict = {}
    for knode, vnode in cnode.value:
        key = knode.value
        if key not in CONDITION_FIELDS:
            raise err(knode, f"unknown condition '{key}' (known: {', '.join(CONDITION_FIELDS)})")
        if key in vals:
            raise err(knode, f"condition '{key}' is given twice")
        if key in ("corners", "temperatures"):
            items = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
            if not items or not all(isinstance(i, yaml.ScalarNode) for i in items):
                raise err(vnode, f"conditions.{key}: expected a list such as "
                                 f"{'[tt, ss, ff]' if key == 'corners' else '[-40, 27, 125]'}")
            if key == "corners":
                for i in items:
                    if i.value not in tech.corners:
                        raise err(i, f"conditions.corners: unknown corner '{i.value}' for PDK {tech.name} "
                                     f"(known: {', '.join(tech.corners)})")
                vals[key] = tuple(dict.fromkeys(i.value for i in items))
            else:
                temps = []
                for i in items:
                    try:
                        t = parse_si(i.value, "C")
                    except UnitError as exc:
                        raise err(i, f"conditions.temperatures: {exc}") from None
                    if not -273.15 < t <= 300:
                        raise err(i, f"conditions.temperatures: {t:g} C is outside -273..300 C")
                    temps.append(t)
                vals[key] = tuple(dict.fromkeys(temps))
            continue
        if not isinstance(vnode, yaml.ScalarNode):
            raise err(vnode, f"conditions.{key}: expected a value such as 1{CONDITION_FIELDS[key]}")
        try:
            v = parse_si(vnode.value, CONDITION_FIELDS[key])
        except UnitError as exc:
            raise err(vnode, f"conditions.{key}: {exc}") from None
        if v <= 0 and key != "vcm" or v < 0:
            raise err(vnode, f"conditions.{key}: must be positive")
        vals[key] = v
    vdd = vals.get("vdd", tech.supply_v)
    if "vcm" in vals and not 0 <= vals["vcm"] <= vdd:
        raise err(cnode, f"conditions.vcm: {vals['vcm']:g} V is outside the supply 0..{vdd:g} V")
    return SpecConditions(**vals)


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
