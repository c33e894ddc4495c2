"""Fill gm/Id tables (cktflow.transistor.gmid) with ngspice, in chunks that survive interruption.

A chunk is one (device, L, VSB): a single nested DC sweep (`dc vg ... vd ...`) gives the whole
VGS x VDS plane of that L with the device's parameters recorded at every point, in milliseconds.
`CharacterizeJob` is that chunk as a picklable job with `execute(engine)`, so it runs through
spice_sim's local simulator and the Ray pool like OpampJob. Each worker keeps one deck per PDK and
corner loaded: every MOSFET kind of the PDK on its own sources, W, each kind's L and VSB as
parameters. The model library is therefore loaded once per worker (per corner), whatever the
device, L, VSB or temperature of the jobs it gets; a job resets the deck before its sweep, so its
numbers do not depend on which jobs the worker ran before (a resumed run equals an uninterrupted
one exactly).

Finished chunks are written to the cache as they arrive (<cache>/gmid/<pdk>-<version>/<device>/
<corner>_<temp>C_<grid hash>/chunks/), each file atomically: a rerun of the same table computes
only the missing chunks and then assembles `table.npz` beside them.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from spice_sim.analyses import Session
from spice_sim.errors import SimulationError

from ..fsutil import atomic_path, atomic_write_text
from ..technology import Technology, load_technology
from .bench import model_library
from .gmid import QUANTITIES, Grid, GmIdTable, resolve_device, table_dir

__all__ = ["CharacterizeJob", "ChunkResult", "CharacterizeRun", "CharacterizeError", "characterize", "mosfet_kinds",
           "MAX_DECKS"]

#: Decks (one per PDK and corner) a worker keeps loaded.
MAX_DECKS = 2


class CharacterizeError(RuntimeError):
    """Some chunks failed; the finished ones are kept, so a rerun resumes."""


def mosfet_kinds(tech: Technology) -> list:
    """The PDK's transistor kinds, in the order of its description (the shared deck's order)."""
    return [d for d in tech.devices.values() if d.type in ("nmos", "pmos")]


# -- the job ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CharacterizeJob:
    device: str                       # the PDK's short name
    l_um: float
    vsb: float
    vgs: tuple[float, float, int]     # magnitudes
    vds: tuple[float, float, int]
    w_um: float
    corner: str
    temp_c: float
    pdk: str = "sky130"
    index: tuple[int, int] = (0, 0)   # (L, VSB) position in the table

    def execute(self, engine) -> "ChunkResult":
        t0 = time.perf_counter()
        res = ChunkResult(self.device, self.index)
        try:
            deck, res.loaded = _deck(engine, self.pdk, self.corner)
            res.load_seconds = deck.session.load_seconds if res.loaded else 0.0
            t1 = time.perf_counter()
            res.data = deck.sweep(self)
            res.sweep_seconds = time.perf_counter() - t1 - deck.last_reset_s
            res.reset_seconds = deck.last_reset_s
        except SimulationError as exc:
            res.failure, res.message = exc.kind, str(exc)
        except Exception as exc:         # a bug must not kill the worker
            res.failure, res.message = "error", f"{type(exc).__name__}: {exc}"
        res.seconds = time.perf_counter() - t0
        return res


@dataclass
class ChunkResult:
    device: str
    index: tuple[int, int]
    data: dict[str, np.ndarray] | None = None      # quantity -> (VDS, VGS) magnitudes
    failure: str | None = None
    message: str = ""
    seconds: float = 0.0
    loaded: bool = False
    load_seconds: float = 0.0
    reset_seconds: float = 0.0
    sweep_seconds: float = 0.0                     # the nested sweep and reading its vectors

    @property
    def ok(self) -> bool:
        return self.failure is None


class _Deck:
    """One worker's loaded characterisation deck of a PDK at one corner."""

    def __init__(self, engine, pdk: str, corner: str):
        self.tech = load_technology(pdk)
        self.kinds = {d.name: (k, d) for k, d in enumerate(mosfet_kinds(self.tech))}
        lines, params = [], {"w": 5.0, "vsb": 0.0}
        for k, d in self.kinds.values():
            s = 1 if d.type == "nmos" else -1
            # the bulk sits VSB below an NMOS source and above a PMOS one; the source is ground
            lines += [f"vd{k} d{k} 0 0", f"vg{k} g{k} 0 0", f"vb{k} b{k} 0 {{{-s}*vsb}}",
                      f"xm{k} d{k} g{k} 0 b{k} {d.model} W={{w}} L={{l{k}}} nf=1"]
            params[f"l{k}"] = d.limits["l"][0]
        self.defaults = params
        self.session = Session(engine, "\n".join(lines), library=model_library(self.tech, corner), params=params,
                               device_models={d.model for _, d in self.kinds.values()},
                               title=f"gm/Id characterisation {pdk} {corner}")
        self.last_reset_s = 0.0

    def sweep(self, job: CharacterizeJob) -> dict[str, np.ndarray]:
        k, dev = self.kinds[job.device]
        s = self.session
        t0 = time.perf_counter()
        s.set_temperature(job.temp_c)
        # every parameter set, and a reset even when none changed: the sweep starts from nothing
        if not s.set_params(**{**self.defaults, "w": job.w_um, "vsb": job.vsb, f"l{k}": job.l_um}):
            s.reset()
        self.last_reset_s = time.perf_counter() - t0
        sign = 1.0 if dev.type == "nmos" else -1.0
        names = {q: s.device_vector(f"xm{k}", q) for q in QUANTITIES}
        g = s.dc_grid(f"vg{k}", (sign * job.vgs[0], sign * job.vgs[1], job.vgs[2]),
                      f"vd{k}", (sign * job.vds[0], sign * job.vds[1], job.vds[2]), tuple(names.values()))
        return {q: np.abs(g[name]) for q, name in names.items()}


_decks: "collections.OrderedDict[tuple, _Deck]" = collections.OrderedDict()


def _deck(engine, pdk: str, corner: str) -> tuple[_Deck, bool]:
    key = (pdk, corner)
    d = _decks.get(key)
    if d is not None and d.session.engine is engine and d.session._loaded:
        _decks.move_to_end(key)
        return d, False
    if d is not None:
        _decks.pop(key).session.close()
    while len(_decks) >= MAX_DECKS:
        _decks.popitem(last=False)[1].session.close()
    d = _Deck(engine, pdk, corner)
    _decks[key] = d
    return d, True


# -- the cache -------------------------------------------------------------------------------------

class _Store:
    """The chunk files of one table and their assembly."""

    def __init__(self, folder: Path, meta: dict):
        self.folder, self.meta = folder, meta
        self.chunks = folder / "chunks"
        self.chunks.mkdir(parents=True, exist_ok=True)
        info = folder / "grid.json"
        text = json.dumps(meta, indent=1, sort_keys=True)
        if info.is_file() and json.loads(info.read_text()) != json.loads(text):
            raise RuntimeError(f"{info} describes another table (hash collision?); remove the folder")
        if not info.is_file():
            atomic_write_text(info, text)

    def _file(self, index) -> Path:
        return self.chunks / f"l{index[0]:03d}_b{index[1]:02d}.npz"

    def has(self, index) -> bool:
        return self._file(index).is_file()

    def put(self, index, data: dict[str, np.ndarray]) -> None:
        with atomic_path(self._file(index)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **data)

    def get(self, index) -> dict[str, np.ndarray]:
        with np.load(self._file(index)) as z:
            return {q: z[q] for q in QUANTITIES}


@dataclass
class CharacterizeRun:
    tables: dict[str, GmIdTable]
    paths: dict[str, Path]
    chunks: int = 0               # in all the tables
    computed: int = 0             # simulated by this run
    reused: int = 0               # found in the cache
    seconds: float = 0.0
    points_simulated: int = 0
    results: list[ChunkResult] = field(default_factory=list, repr=False)

    @property
    def points_per_s(self) -> float:
        return self.points_simulated / self.seconds if self.seconds else 0.0


def characterize(devices: str | Sequence[str], grid: Grid = Grid(), *, pdk: str | Technology = "sky130",
                 corner: str | None = None, temp_c: float | None = None, pool=None, engine=None,
                 progress: bool = False, on_chunk: Callable[[str, tuple[int, int]], None] | None = None,
                 root: Path | None = None) -> CharacterizeRun:
    """The gm/Id tables of `devices` on `grid`, from the cache where they are (whole or in part).

    Missing chunks run on `pool` (a spice_sim SimPool: its `imap_unordered`) or, without one,
    one after the other on `engine` (default: this process's ngspice). Lengths below a device's
    minimum are left out of its table; `on_chunk(device, index)` is called after each chunk is
    stored. A failed chunk raises CharacterizeError once the others are stored. `root`: where the
    tables are kept (default <cktflow cache>/gmid)."""
    t0 = time.perf_counter()
    tech = pdk if isinstance(pdk, Technology) else load_technology(pdk)
    tech.require_installed()
    devices = [devices] if isinstance(devices, str) else list(devices)
    run = CharacterizeRun({}, {})
    stores: dict[str, tuple[_Store, Grid, str, float]] = {}
    jobs: list[CharacterizeJob] = []
    for name in devices:
        _, dev, corner_d, temp_d = resolve_device(name, tech, corner, temp_c)
        lengths = [x for x in grid.lengths if x >= dev.limits["l"][0] - 1e-9]
        if not lengths:
            raise ValueError(f"{dev.name}: no length of the grid is at least its minimum L {dev.limits['l'][0]:g} um")
        g = grid.with_lengths(lengths)
        dev.check(dev.name, w=g.w_um)
        for ln in g.lengths:
            dev.check(dev.name, l=ln)
        folder = table_dir(dev.name, pdk=tech, corner=corner_d, temp_c=temp_d, grid=g, root=root)
        run.paths[dev.name] = folder / "table.npz"
        if run.paths[dev.name].is_file():
            run.tables[dev.name] = GmIdTable.load(run.paths[dev.name])
            run.chunks += len(g.lengths) * len(g.vsb)
            run.reused += len(g.lengths) * len(g.vsb)
            continue
        store = _Store(folder, {"pdk": tech.name, "version": (tech.install or {}).get("version"), "device": dev.name,
                                "corner": corner_d, "temp_c": temp_d, "grid": g.to_dict()})
        stores[dev.name] = (store, g, corner_d, temp_d)
        for i, ln in enumerate(g.lengths):
            for j, vsb in enumerate(g.vsb):
                run.chunks += 1
                if store.has((i, j)):
                    run.reused += 1
                    continue
                jobs.append(CharacterizeJob(dev.name, ln, vsb, g.vgs, g.vds, g.w_um, corner_d, temp_d, tech.name,
                                            (i, j)))
    failures = _run_jobs(jobs, pool, engine, run, stores, progress, on_chunk)
    if failures:
        raise CharacterizeError(f"{len(failures)} of {len(jobs)} chunks failed (the other chunks are stored; "
                                f"rerun to resume): " + "; ".join(f"{r.device} {r.index}: {r.message}"
                                                                  for r in failures[:3]))
    for name, (store, g, corner_d, temp_d) in stores.items():
        data = {q: np.zeros((len(g.lengths), len(g.vsb), g.vds[2], g.vgs[2])) for q in QUANTITIES}
        for i in range(len(g.lengths)):
            for j in range(len(g.vsb)):
                for q, arr in store.get((i, j)).items():
                    data[q][i, j] = arr
        table = GmIdTable(tech.name, name, corner_d, temp_d, g, data)
        table.save(run.paths[name])
        run.tables[name] = table
    run.seconds = time.perf_counter() - t0
    return run


def _run_jobs(jobs, pool, engine, run: CharacterizeRun, stores, progress: bool, on_chunk) -> list[ChunkResult]:
    """Run the jobs, storing each finished chunk as it arrives; the failed ones come back."""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=run.chunks, initial=run.chunks - len(jobs), unit="chunk", desc="characterising",
                   dynamic_ncols=True)
    failures: list[ChunkResult] = []
    try:
        if pool is not None:
            stream = ((jobs[i], res) for i, res in pool.imap_unordered(jobs))
        else:
            if engine is None:
                from spice_sim.engine import get_engine
                engine = get_engine()
            stream = ((job, job.execute(engine)) for job in jobs)
        for job, res in stream:
            if not getattr(res, "ok", False) or getattr(res, "data", None) is None:
                # a pool-level failure (time limit, a lost worker) is a spice_sim SimResult
                failures.append(res if isinstance(res, ChunkResult) else
                                ChunkResult(job.device, job.index, failure=res.failure, message=res.message))
                continue
            stores[job.device][0].put(job.index, res.data)
            run.computed += 1
            run.points_simulated += job.vgs[2] * job.vds[2]
            res.data = None               # stored: do not keep every plane in memory twice
            run.results.append(res)
            if bar is not None:
                bar.update(1)
            if on_chunk is not None:
                on_chunk(job.device, job.index)
    finally:
        if bar is not None:
            bar.close()
    return failures
