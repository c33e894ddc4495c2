"""Session jobs: analyses on a deck that a worker keeps loaded, through the same local simulator
(time limit) and Ray pool as SimJobs.

A `SessionJob` names a deck (without analyses), its model library, the parameters it is loaded
with, the values this job wants and the analyses to run. Each worker process keeps the last few
decks loaded (`MAX_SESSIONS`, one per corner, say): a job whose deck is already loaded only sets
its parameters (alterparam + reset) and runs its analyses, so the library is loaded once per
worker, not once per simulation. The deck is checked by spice_sim.safety before it is loaded
(includes only from the library's folder). A failure is a result, never an exception.

`execute(engine, job)` runs either kind of job; the local worker and the Ray actors call it.
"""

from __future__ import annotations

import collections
import hashlib
import time
from dataclasses import dataclass, field

from .analyses import ModelLibrary, NoiseData, OpPoint, Session, Sweep
from .engine import NgSpiceEngine
from .errors import SimulationError
from .safety import check_netlist

__all__ = ["Analysis", "SessionJob", "SessionResult", "execute", "MAX_SESSIONS", "loaded_sessions"]

#: How many decks one worker keeps loaded (each holds its own copy of the library's models).
MAX_SESSIONS = 3

_KINDS = {"op": 0, "ac": 3, "dc": 4, "tran": 2, "noise": 4}


@dataclass(frozen=True)
class Analysis:
    """One analysis: `op`; `ac` (fstart, fstop, points/decade); `dc` (source, start, stop, step);
    `tran` (tstep, tstop[, tmax]); `noise` (output node, input source, fstart, fstop[, points/decade])."""
    kind: str
    args: tuple = ()
    vectors: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"unknown analysis '{self.kind}' (known: {', '.join(_KINDS)})")
        if len(self.args) < _KINDS[self.kind]:
            raise ValueError(f"analysis '{self.kind}' needs {_KINDS[self.kind]} arguments, got {len(self.args)}")


@dataclass(frozen=True)
class SessionJob:
    deck: str                                       # circuit and testbench, no analyses
    analyses: tuple[Analysis, ...] = (Analysis("op"),)
    library: ModelLibrary | None = None
    params: tuple[tuple[str, float], ...] = ()      # the alterable parameters and their load values
    values: tuple[tuple[str, float], ...] = ()      # this job's values for some of them
    temperature_c: float | None = None
    device_models: frozenset[str] = frozenset()
    device_prefix: str = ""                         # op(): report only devices under this path

    @property
    def key(self) -> str:
        """Which loaded deck serves this job (deck, library and parameter names; not their values)."""
        h = hashlib.sha256()
        for part in (self.deck, repr(self.library), repr(sorted(k for k, _ in self.params)),
                     repr(sorted(self.device_models))):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()

    def execute(self, engine: NgSpiceEngine) -> "SessionResult":
        t0 = time.perf_counter()
        res = SessionResult()
        try:
            session, res.loaded = _session(engine, self)
            res.load_seconds = session.load_seconds if res.loaded else 0.0
            # every parameter the job does not set takes its load value: a job never inherits the
            # previous job's values (only what differs is altered)
            if self.params:
                session.set_params(**{**dict(self.params), **dict(self.values)})
            if self.temperature_c is not None:
                session.set_temperature(self.temperature_c)
            for a in self.analyses:
                res.outputs.append(_run(session, a))
        except SimulationError as exc:
            res.failure, res.message = exc.kind, str(exc)
            res.outputs = []
        except Exception as exc:       # an engine bug must not kill a worker
            res.failure, res.message = "error", f"{type(exc).__name__}: {exc}"
            res.outputs = []
        res.seconds = time.perf_counter() - t0
        return res


@dataclass
class SessionResult:
    outputs: list = field(default_factory=list)     # per analysis: OpPoint, Sweep or NoiseData
    failure: str | None = None
    message: str = ""
    seconds: float = 0.0
    loaded: bool = False          # whether this job had to load the deck (and its library)
    load_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


_sessions: "collections.OrderedDict[str, Session]" = collections.OrderedDict()


def loaded_sessions() -> int:
    return len(_sessions)


def _session(engine: NgSpiceEngine, job: SessionJob) -> tuple[Session, bool]:
    key = job.key
    s = _sessions.get(key)
    if s is not None and s.engine is engine and s._loaded:
        _sessions.move_to_end(key)
        return s, False
    if s is not None:
        _sessions.pop(key).close()
    allowed = (job.library.allowed_dir,) if job.library else ()
    # the same checks as any netlist from outside (raises UnsafeNetlistError naming the line)
    check_netlist("* session deck\n" + job.deck, source="<session deck>", allowed_dirs=allowed)
    while len(_sessions) >= MAX_SESSIONS:
        _sessions.popitem(last=False)[1].close()
    s = Session(engine, job.deck, library=job.library, params=dict(job.params), device_models=job.device_models)
    if job.device_prefix:
        s.devices = {k: v for k, v in s.devices.items() if k.startswith(job.device_prefix)}
    _sessions[key] = s
    return s, True


def _run(s: Session, a: Analysis) -> OpPoint | Sweep | NoiseData:
    if a.kind == "op":
        return s.op()
    if a.kind == "ac":
        return s.ac(*a.args[:3], a.vectors)
    if a.kind == "dc":
        return s.dc(*a.args[:4], a.vectors)
    if a.kind == "tran":
        return s.tran(a.args[0], a.args[1], a.vectors, tmax=a.args[2] if len(a.args) > 2 else None)
    return s.noise(*a.args[:5])


def execute(engine: NgSpiceEngine, job):
    """Run a SimJob (spice_sim.jobs.run_job) or any job that brings its own `execute`."""
    if hasattr(job, "execute"):
        return job.execute(engine)
    from .jobs import run_job
    return run_job(engine, job)
