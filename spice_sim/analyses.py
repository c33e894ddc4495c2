"""Analyses beyond AC on a deck that stays loaded: operating point (per device), DC sweep,
transient, noise, AC, with the device model library loaded once.

Why a loaded deck: a foundry library such as sky130's takes 5-8 s to parse in ngspice, every
time a circuit is loaded, while an op point or an AC sweep of an op-amp costs milliseconds. A
`Session` therefore loads one deck (the library, the circuit and its testbenches, sizes written as
global `.param`s) once and then only
- changes parameters with `alterparam` + `reset` (10-60 ms; ngspice re-evaluates the deck it keeps
  in memory, library included, without reading any file: results equal a fresh load, bins and
  size-dependent model expressions included; `alter` on a device instance is faster but wrong
  for sizes, because sky130's devices compute their model parameters from W and L in the
  subcircuit),
- rewires a testbench with `alter` on plain elements (a resistor, a capacitor, a source's AC
  magnitude or waveform: ~1 ms, no reset; the next reset restores the deck's own values),
- changes the temperature with `option temp=...` (no reset needed),
- issues analyses as commands (`op`, `ac ...`, `dc ...`, `tran ...`, `noise ...`) and reads the
  vectors of the plot each one makes, then destroys the plots so memory stays flat.
A different corner is a different `.lib` section, hence a different loaded deck.

Nothing here knows cktflow: a model library is a file, a section and the simulator settings it
needs (sky130: `set ngbehavior=hsa`, `set ng_nomodcheck`).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engine import NgSpiceEngine, _first_error
from .errors import NetlistError, SimulationError

__all__ = ["ModelLibrary", "Session", "OpPoint", "DeviceOp", "Sweep", "GridSweep", "NoiseData", "mos_instances"]


@dataclass(frozen=True)
class ModelLibrary:
    """A SPICE model library section: `.lib <file> <section>`, with the simulator settings it
    needs issued before loading and the vector name of a device's op-point parameter."""
    file: Path
    section: str
    settings: tuple[str, ...] = ()
    root: Path | None = None                 # the folder its includes may come from (safety checks)
    # device parameter vector: {instance} is the hierarchical instance path (xdut.xm1), {model} the
    # device model (subcircuit) name, {param} gm, gds, id, ...
    op_vector: str = "@m.{instance}.m{model}[{param}]"

    def lib_line(self) -> str:
        return f".lib {Path(self.file)} {self.section}"

    @property
    def allowed_dir(self) -> Path:
        return Path(self.root) if self.root else Path(self.file).parent


#: The MOSFET op-point parameters read per device (BSIM4 reports them for a PMOS in magnitude form,
#: positive in saturation, like an NMOS).
OP_PARAMS = ("gm", "gds", "gmbs", "id", "vgs", "vds", "vth", "vdsat", "cgg", "w", "l")


@dataclass(frozen=True)
class DeviceOp:
    instance: str          # hierarchical path, e.g. xdut.xm1
    model: str
    gm: float
    gds: float
    gmbs: float
    id: float
    vgs: float
    vds: float
    vth: float
    vdsat: float
    cgg: float
    w: float               # m (the simulator's scaled value)
    l: float

    @property
    def margin(self) -> float:
        """vds - vdsat (V): positive in saturation."""
        return self.vds - self.vdsat

    @property
    def region(self) -> str:
        """'saturation', 'triode' or 'subthreshold' (vgs below vth, whatever vds)."""
        if self.vgs < self.vth:
            return "subthreshold"
        return "saturation" if self.vds >= self.vdsat else "triode"

    @property
    def gm_over_id(self) -> float:
        return self.gm / abs(self.id) if self.id else math.nan

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("instance", "model") + OP_PARAMS}
        d.update(region=self.region, margin=self.margin)
        return d


@dataclass
class OpPoint:
    voltages: dict[str, float]                 # node -> V
    currents: dict[str, float]                 # voltage source -> A (ngspice's sign: into the + node)
    devices: dict[str, DeviceOp] = field(default_factory=dict)

    def worst_margin(self, prefix: str = "") -> tuple[str, float] | None:
        """The device (under `prefix`) with the smallest vds - vdsat, and that margin."""
        devs = [d for name, d in self.devices.items() if name.startswith(prefix)]
        if not devs:
            return None
        worst = min(devs, key=lambda d: d.margin)
        return worst.instance, worst.margin


@dataclass
class Sweep:
    """The scale of an analysis (frequency, time or the swept source's value) and vectors over it."""
    scale: np.ndarray
    vectors: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.vectors[name.lower()]


@dataclass
class GridSweep:
    """A nested DC sweep: the inner and outer sources' values and vectors of shape (outer, inner)."""
    inner: np.ndarray
    outer: np.ndarray
    vectors: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.vectors[name.lower()]


@dataclass
class NoiseData:
    freq: np.ndarray
    onoise: np.ndarray          # output noise density, V/sqrt(Hz)
    inoise: np.ndarray          # input-referred noise density (V/sqrt(Hz) for a voltage source input)
    onoise_total: float | None  # integrated over the analysis range, V rms
    inoise_total: float | None


_SESSION_IDS = itertools.count(1)
_INST = re.compile(r"^[a-z_][\w.]*$", re.I)


def mos_instances(deck: str, models: set[str] | frozenset[str]) -> dict[str, str]:
    """Hierarchical instance path -> model for every subcircuit instance of a device model in
    `models` (lower-case names), expanding the deck's own subcircuits (not the library's)."""
    models = {m.lower() for m in models}
    subckts: dict[str, list[list[str]]] = {}
    top: list[list[str]] = []
    current: list[list[str]] | None = None
    logical: list[str] = []
    for raw in deck.splitlines():
        s = raw.strip()
        if not s or s.startswith("*"):
            continue
        if s.startswith("+") and logical:
            logical[-1] += " " + s[1:]
        else:
            logical.append(s)
    for s in logical:
        toks = s.split()
        word = toks[0].lower()
        if word == ".subckt":
            current = subckts.setdefault(toks[1].lower(), [])
        elif word == ".ends":
            current = None
        elif word[0] == "x":
            (current if current is not None else top).append(toks)
    out: dict[str, str] = {}

    def walk(lines: list[list[str]], prefix: str, depth: int):
        if depth > 20:
            raise NetlistError("subcircuits nested more than 20 deep")
        for toks in lines:
            plain = [t for t in toks[1:] if "=" not in t]
            if not plain:
                continue
            sub = plain[-1].lower()
            name = prefix + toks[0].lower()
            if sub in models:
                out[name] = sub
            elif sub in subckts:
                walk(subckts[sub], name + ".", depth + 1)

    walk(top, "", 0)
    return out


class Session:
    """One deck loaded in `engine` and kept there: parameters change in place, analyses run as
    commands. Use as a context manager (or call close()) to remove the circuit afterwards.

    `deck`: the complete circuit without analysis lines; `library`: prepended as its `.lib` line and
    its settings issued first; `params`: the global `.param` values the deck starts from (written
    into the deck, so that `set_params` can alter them); `device_models`: the model names whose
    instances `op()` reports per device (default: none)."""

    def __init__(self, engine: NgSpiceEngine, deck: str, *, library: ModelLibrary | None = None,
                 params: dict[str, float] | None = None, device_models: set[str] | frozenset[str] = frozenset(),
                 title: str = "cktflow session"):
        self.engine = engine
        self.library = library
        self.params = {k.lower(): float(v) for k, v in (params or {}).items()}
        self.temperature_c: float | None = None
        self.load_seconds = 0.0
        self.resets = 0
        self._loaded = False
        self._altered = False          # an `alter` is in force: the next set_params resets even unchanged
        self.title = f"{title} [session {next(_SESSION_IDS)}]"   # unique: found again with `setcirc`
        body = [self.title]
        if library is not None:
            body.append(library.lib_line())
        if self.params:
            body.append(".param " + " ".join(f"{k}={_fmt(v)}" for k, v in self.params.items()))
        body.append(deck)
        body.append(".end")
        self.text = "\n".join(body)
        self.devices = mos_instances(self.text, device_models)
        self._load()

    # -- loading -------------------------------------------------------------------------------
    def _load(self) -> None:
        eng = self.engine
        t0 = time.perf_counter()
        lines = [ln for ln in self.text.splitlines() if ln.strip() and ln.strip() != ".end"] + [".end"]
        keep = [eng._ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [eng._ffi.NULL]
        self._settings(True)
        try:
            eng._ng.clear_output()
            eng._lib.ngSpice_Circ(eng._ffi.new("char *[]", keep))
            log = eng._ng.stdout + "\n" + eng._ng.stderr
        finally:
            self._settings(False)
        if "circuit not parsed" in log.lower() or re.search(r"^\s*error", log, re.I | re.M) \
                or re.search(r"could not find|unknown (subckt|model)|no such file", log, re.I):
            self._remove()
            raise NetlistError(_first_error(log) or "ngspice could not parse the deck", log)
        self._loaded = True
        self.load_seconds = time.perf_counter() - t0

    def _settings(self, on: bool) -> None:
        """Issue the library's settings (read by ngspice when it parses a deck: at load and at
        every reset), or undo them afterwards, so that other decks in this process see ngspice's
        defaults."""
        for cmd in (self.library.settings if self.library else ()):
            words = cmd.split()
            if on:
                self.engine._command(cmd)
            elif words and words[0] == "set" and len(words) > 1:
                self.engine._command("unset " + words[1].split("=")[0])

    def _make_current(self) -> None:
        """Make this session's circuit ngspice's current one (other decks may have been loaded
        in between: ngspice keeps several circuits and runs the current one)."""
        if not self._loaded:
            raise SimulationError("the session is closed")
        listing = self.engine._command("setcirc")[0]
        for line in listing.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and _norm(parts[-1]) == _norm(self.title):   # ngspice lower-cases titles
                if parts[0].strip().lower() != "current":
                    self.engine._command(f"setcirc {parts[-2].strip()}")
                return
        self._loaded = False
        raise SimulationError("the session's circuit is no longer loaded in ngspice")

    def close(self) -> None:
        if self._loaded:
            try:
                self._make_current()
            except SimulationError:
                return
            self._remove()
            self._loaded = False

    def _remove(self) -> None:
        for cmd in ("destroy all", "remcirc"):
            try:
                self.engine._command(cmd)
            except SimulationError:
                pass

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- changing the circuit ------------------------------------------------------------------
    def set_params(self, **values: float) -> bool:
        """Set global parameters (alterparam + one reset). Returns whether anything changed."""
        changed = {k.lower(): float(v) for k, v in values.items() if self.params.get(k.lower()) != float(v)}
        unknown = set(changed) - set(self.params)
        if unknown:
            raise KeyError(f"unknown parameter(s) {', '.join(sorted(unknown))}: a Session alters only the "
                           f"parameters it was created with ({', '.join(sorted(self.params))})")
        if not changed and not self._altered:
            return False
        self._make_current()
        self.params.update(changed)
        self._reset(changed)
        return True

    def alter(self, element: str, **values: float | tuple[float, ...]) -> None:
        """Change parameters of one plain element in place (`alter @element[param] = value`; a tuple
        for a vector such as a pulse), without a reset, e.g. alter("rfb", resistance=1e-3) or
        alter("vin", acmag=0). Not for transistors (see the module docstring). The change lasts
        until the next reset, which `set_params` then issues even if no parameter changed."""
        self._make_current()
        for param, value in values.items():
            text = ("[ " + " ".join(_fmt(x) for x in value) + " ]") if isinstance(value, (tuple, list)) \
                else _fmt(value)
            self.engine._command(f"alter @{element}[{param}] = {text}")
        self._altered = True

    def reset(self) -> None:
        """Re-evaluate the loaded deck (`reset`) even when no parameter changed: the next analysis
        then starts from nothing, not from the previous one's solution, so its result does not
        depend on what this session ran before (a chunked, resumable job gets the same numbers on
        any worker)."""
        self._make_current()
        self._reset({})

    def _reset(self, altered: dict[str, float], repair: bool = True) -> None:
        """alterparam `altered`, reset, and restore the temperature; the session is current.

        ngspice 39 quirk (measured): once a circuit has been reset, removing another circuit
        (`remcirc`, as close() does) makes its next `reset` re-parse the removed circuit's deck
        instead of its own. The title tells: then the wrong circuit is removed and this deck
        loaded again with every parameter set, which costs a load but never a wrong result."""
        for k, v in altered.items():
            self.engine._command(f"alterparam {k}={_fmt(v)}")
        self._settings(True)
        try:
            self.engine._command("reset")
        finally:
            self._settings(False)
        self.resets += 1
        self._altered = False
        if not self._is_current():
            if not repair:
                self._loaded = False
                raise SimulationError("ngspice lost the session's circuit on reset")
            self._remove()
            self._load()
            loaded = _load_params(self.text)
            again = {k: v for k, v in self.params.items() if loaded.get(k) != v}
            if again:
                self._reset(again, repair=False)
                return
        if self.temperature_c is not None:
            self.engine._command(f"option temp={_fmt(self.temperature_c)}")

    def _is_current(self) -> bool:
        listing = self.engine._command("setcirc")[0]
        return any(ln.split("\t")[0].strip().lower() == "current" and _norm(ln.split("\t")[-1]) == _norm(self.title)
                   for ln in listing.splitlines())

    def set_temperature(self, celsius: float) -> None:
        self._make_current()
        self.engine._command(f"option temp={_fmt(celsius)}")
        self.temperature_c = float(celsius)

    # -- analyses ------------------------------------------------------------------------------
    def _analysis(self, cmd: str, kind: str, vectors: tuple[str, ...] = ()) -> str:
        """Run one analysis command; device parameters among `vectors` (`@m.x1.m...[gm]`) are
        recorded over a sweep with `save all <them>` for this run only."""
        self._make_current()
        eng = self.engine
        eng._command("destroy all")
        saves = [v for v in vectors if v.startswith("@")]
        if saves and kind != "op":
            eng._command("save all " + " ".join(saves))
            try:
                _, err = eng._command(cmd)
            finally:
                eng._command("delete all")
        else:
            _, err = eng._command(cmd)
        eng.runs += 1
        eng.last_log = err
        plot = eng._command("echo $curplot")[0].strip().splitlines()[-1].strip()
        if not plot.startswith(kind):
            raise SimulationError(_first_error(err) or f"'{cmd}' produced no data", err)
        return plot

    def _vec(self, plot: str, name: str, *, required: bool = True) -> np.ndarray | None:
        v = self.engine._vector(plot, name.lower())
        if v is None and required:
            raise NetlistError(f"the deck has no vector '{name}' in plot {plot}")
        if v is not None and not np.all(np.isfinite(v)):
            raise SimulationError(f"ngspice returned non-finite values for '{name}' (singular circuit?)")
        return v

    def _all_vectors(self, plot: str) -> list[str]:
        eng = self.engine
        arr = eng._lib.ngSpice_AllVecs(plot.encode())
        names, i = [], 0
        while arr[i] != eng._ffi.NULL:
            names.append(eng._ffi.string(arr[i]).decode())
            i += 1
        return names

    def device_vector(self, instance: str, param: str) -> str:
        """The vector name of one device's parameter (e.g. for `dc(..., vectors=...)`)."""
        template = self.library.op_vector if self.library else "@m.{instance}.m{model}[{param}]"
        return template.format(instance=instance, model=self.devices[instance.lower()], param=param)

    def op(self) -> OpPoint:
        """The operating point: every node voltage, every voltage source's current, and per
        device of the session's device models its small-signal parameters and region."""
        plot = self._analysis("op", "op")
        voltages, currents = {}, {}
        for name in self._all_vectors(plot):
            low = name.lower()
            if low.startswith("@") or "#" in low and not low.endswith("#branch"):
                continue
            v = self._vec(plot, low)
            if low.endswith("#branch"):
                currents[low[:-len("#branch")]] = float(np.real(v[0]))
            else:
                voltages[low] = float(np.real(v[0]))
        devices = {}
        template = self.library.op_vector if self.library else "@m.{instance}.m{model}[{param}]"
        for inst, model in self.devices.items():
            vals = {}
            for p in OP_PARAMS:
                v = self._vec(plot, template.format(instance=inst, model=model, param=p), required=False)
                vals[p] = float(np.real(v[0])) if v is not None else math.nan
            devices[inst] = DeviceOp(inst, model, **vals)
        return OpPoint(voltages, currents, devices)

    def op_values(self, names: tuple[str, ...]) -> dict[str, float]:
        """Run the operating point and read the named vectors (nodes, `@c.x1.c1[capacitance]`, ...)."""
        plot = self._analysis("op", "op")
        return {n: float(np.real(self._vec(plot, n)[0])) for n in names}

    def dc(self, source: str, start: float, stop: float, step: float, vectors: tuple[str, ...]) -> Sweep:
        """DC sweep of an independent source; `vectors` may name nodes and device parameters
        (`@m.xm1.msky130_fd_pr__nfet_01v8[gm]`), the latter recorded at every point."""
        plot = self._analysis(f"dc {source} {_fmt(start)} {_fmt(stop)} {_fmt(step)}", "dc", vectors)
        scale = self._vec(plot, "v-sweep", required=False)
        if scale is None:
            scale = self._vec(plot, "i-sweep")
        scale = np.real(scale)
        if scale.size == 0 or abs(scale[-1] - stop) > abs(step) * 1e-3 + 1e-12 * abs(stop):
            raise SimulationError(f"the DC sweep of {source} stopped at {scale[-1] if scale.size else start:g} "
                                  f"instead of {stop:g}", self.engine.last_log)
        return Sweep(scale, {n.lower(): np.real(self._vec(plot, n)) for n in vectors})

    def dc_grid(self, inner: str, inner_values: tuple[float, float, int], outer: str,
                outer_values: tuple[float, float, int], vectors: tuple[str, ...]) -> GridSweep:
        """One nested DC sweep (`dc inner ... outer ...`): `inner` runs over `(start, stop, points)`
        for every value of `outer`; `vectors` (nodes, device parameters) come back as arrays of
        shape (outer points, inner points). One analysis instead of one per outer value: a whole
        VGS x VDS plane of a transistor costs a few milliseconds."""
        (a0, a1, na), (b0, b1, nb) = inner_values, outer_values
        sa, sb = _grid_step(a0, a1, na), _grid_step(b0, b1, nb)
        # ngspice stops a sweep once it passes `stop` by more than ~1e-13, so a step that rounds
        # up by one ulp loses the last point: aim a thousandth of a step beyond it instead
        cmd = (f"dc {inner} {_fmt(a0)} {_fmt(a1 + sa / 1000)} {sa!r} "
               f"{outer} {_fmt(b0)} {_fmt(b1 + sb / 1000)} {sb!r}")
        plot = self._analysis(cmd, "dc", vectors)
        scale = self._vec(plot, "v-sweep", required=False)
        if scale is None:
            scale = self._vec(plot, "i-sweep")
        if np.real(scale).size != na * nb:
            raise SimulationError(f"the DC sweep '{cmd}' returned {np.real(scale).size} points instead of "
                                  f"{na} x {nb}", self.engine.last_log)
        out = {n.lower(): np.real(self._vec(plot, n)).reshape(nb, na) for n in vectors}
        return GridSweep(np.linspace(a0, a1, na), np.linspace(b0, b1, nb), out)

    def ac(self, fstart: float, fstop: float, points_per_decade: int, vectors: tuple[str, ...]) -> Sweep:
        plot = self._analysis(f"ac dec {int(points_per_decade)} {_fmt(fstart)} {_fmt(fstop)}", "ac", vectors)
        freq = np.real(self._vec(plot, "frequency"))
        if freq.size < 2 or freq[-1] < fstop * (1 - 1e-6):
            raise SimulationError(f"the AC sweep stopped at {freq[-1] if freq.size else fstart:g} Hz instead of "
                                  f"{fstop:g} Hz", self.engine.last_log)
        return Sweep(freq, {n.lower(): self._vec(plot, n) for n in vectors})

    def tran(self, tstep: float, tstop: float, vectors: tuple[str, ...], *, tmax: float | None = None) -> Sweep:
        cmd = f"tran {_fmt(tstep)} {_fmt(tstop)}" + (f" 0 {_fmt(tmax)}" if tmax else "")
        plot = self._analysis(cmd, "tran", vectors)
        t = np.real(self._vec(plot, "time"))
        if t.size < 2 or t[-1] < tstop * (1 - 1e-6):      # e.g. "timestep too small": a partial record
            raise SimulationError(f"the transient stopped at {t[-1] if t.size else 0.0:g} s instead of {tstop:g} s: "
                                  + (_first_error(self.engine.last_log) or "no convergence"), self.engine.last_log)
        return Sweep(t, {n.lower(): np.real(self._vec(plot, n)) for n in vectors})

    def noise(self, output: str, source: str, fstart: float, fstop: float, points_per_decade: int = 10,
              reference: str | None = None) -> NoiseData:
        """Noise at V(output[, reference]) referred to the independent source `source`."""
        out = f"v({output},{reference})" if reference else f"v({output})"
        spectra = self._analysis(f"noise {out} {source} dec {int(points_per_decade)} {_fmt(fstart)} {_fmt(fstop)}",
                                 "noise")
        plots = self.engine._plots()
        # ngspice makes two plots: the spectra (noiseN) and, current, the integrated totals (noiseN+1)
        totals_plot = spectra
        spectra_plot = next((p for p in plots if p.startswith("noise") and p != totals_plot
                             and self.engine._vector(p, "onoise_spectrum") is not None), None)
        if spectra_plot is None:
            raise SimulationError("the noise analysis produced no spectra")
        tot_on = self._vec(totals_plot, "onoise_total", required=False)
        tot_in = self._vec(totals_plot, "inoise_total", required=False)
        return NoiseData(np.real(self._vec(spectra_plot, "frequency")),
                         np.real(self._vec(spectra_plot, "onoise_spectrum")),
                         np.real(self._vec(spectra_plot, "inoise_spectrum")),
                         float(np.real(tot_on[0])) if tot_on is not None else None,
                         float(np.real(tot_in[0])) if tot_in is not None else None)


def _norm(title: str) -> str:
    return " ".join(title.lower().split())


def _load_params(text: str) -> dict[str, float]:
    """The values of the `.param` line a Session writes into its deck."""
    line = next((ln for ln in text.splitlines() if ln.startswith(".param ")), "")
    return {k: float(v) for k, v in (tok.split("=", 1) for tok in line.split()[1:])}


def _grid_step(start: float, stop: float, points: int) -> float:
    if points < 2:
        raise ValueError(f"a sweep needs at least 2 points, got {points}")
    if stop == start:
        raise ValueError("a sweep needs stop != start")
    return (stop - start) / (points - 1)


def _fmt(x: float) -> str:
    return f"{float(x):.12g}"
