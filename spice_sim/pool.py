"""A pool of Ray actors that each hold one long-lived ngspice: batches of SimJobs in, SimResults out.

Why actors, not tasks: libngspice is process-global and its first load costs far more than one
simulation, so each worker process keeps its engine for its whole life (stack-notes.md: two actors
with a shared ngspice each beat subprocess-per-netlist by ~3x). Jobs travel in chunks of tens per
actor call so that Ray's per-call overhead (about a millisecond) is small next to the simulations.

Failures are values. A simulation that fails comes back as a SimResult with its failure kind from
the engine. A simulation that hangs is found by asking the actor (on a second thread, which
ngspice does not block because the C call releases the GIL) which job it is on and since when; past
the time limit that job becomes a "timeout" result, the actor is killed and replaced, and the rest
of its chunk goes back in the queue. A worker process that dies (kill -9, out of memory) loses its
chunks: they are retried on a fresh actor; a job that has taken down `max_attempts` workers comes
back as "worker_died" so that one poisonous netlist cannot loop forever.

Ray itself is started on demand, embedded in this process (no dashboard, its session files under
`temp_dir` instead of /tmp/ray) and shut down on close; with `address=` or RAY_ADDRESS the pool joins
an existing cluster instead. A pool that finds Ray already initialised by its caller uses that and
leaves it running. The embedded Ray runs its workers at normal priority (Ray's default, nice 15,
lets any other process on a shared machine starve the simulations).
"""

from __future__ import annotations

import collections
import logging
import math
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .jobs import SimJob, SimResult

__all__ = ["SimPool", "DEFAULT_CHUNK_S", "ClusterLost"]

log = logging.getLogger(__name__)

#: Target wall time of one chunk (seconds of simulation per actor call).
DEFAULT_CHUNK_S = 0.1
_MAX_CHUNK = 128
_MIN_CHUNK = 4
_CHUNKS_IN_FLIGHT = 2          # per actor: the next chunk waits in the actor's queue, so no idle gap
_POLL_S = 0.5                  # how often the driver wakes up to look for hung simulations
_STARTUP_TIMEOUT_S = 180.0    # Ray start-up plus one ngspice load per actor, on a busy machine
_PROBE_TIMEOUT_S = 5.0         # an actor that cannot answer "where are you" within this is treated as hung
_HEAD_CHECK_S = 5.0            # a joined cluster's head is checked after this long without a result
#: Simulations after which an actor is replaced by a fresh process. libngspice keeps ~0.8 KB of
#: native memory per simulated circuit that no command frees (measured in the 200,000-simulation
#: soak, docs/reliability.md: +79 MB per worker); a new worker costs ~2 s, ~1 % at this interval.
RECYCLE_AFTER = 50_000


class ClusterLost(RuntimeError):
    """The head of the Ray cluster the pool joined stopped answering (it died or was stopped)."""
# Unix socket paths are limited to 107 bytes; Ray puts its sockets ~60 characters below temp_dir.
_MAX_TEMP_DIR_CHARS = 45


def _worker_class():
    """The actor class, built on first use so that importing spice_sim never imports ray."""
    import ray

    @ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0, concurrency_groups={"probe": 1})
    class SimWorker:
        """Holds the process's ngspice; `run` executes chunks one after the other."""

        def __init__(self):
            from .engine import get_engine
            from .local import enter_private_workdir
            enter_private_workdir()
            self._engine = get_engine()
            self._chunk = None      # (chunk id, results so far, index of the running job, its start time)

        def run(self, chunk_id: int, jobs: list[SimJob]) -> list[SimResult]:
            from .session_jobs import execute   # SimJobs and SessionJobs (a deck kept loaded)
            done: list[SimResult] = []
            for k, job in enumerate(jobs):
                self._chunk = (chunk_id, done, k, time.monotonic())
                done.append(execute(self._engine, job))
            self._chunk = None
            return done

        @ray.method(concurrency_group="probe")
        def probe(self):
            """(chunk id, finished results, running job index, seconds it has run) or None when idle."""
            state = self._chunk
            if state is None:
                return None
            chunk_id, done, k, t0 = state
            return chunk_id, list(done[:k]), k, time.monotonic() - t0

        @ray.method(concurrency_group="probe")
        def info(self) -> tuple[int, str]:
            return os.getpid(), f"ngspice-{self._engine.version}"

    return SimWorker


@dataclass
class _Chunk:
    id: int
    indices: list[int]             # positions of its jobs in the caller's list


@dataclass
class _Slot:
    """One actor and the chunks it was given, oldest first."""
    actor: object
    inflight: collections.deque = field(default_factory=collections.deque)   # (ref, _Chunk)
    last_progress: float = field(default_factory=time.monotonic)
    done: int = 0                  # simulations this actor has returned (RECYCLE_AFTER)


class SimPool:
    """Simulates batches of SimJobs on Ray actors; results come back in input order.

    >>> with SimPool(num_workers=2, temp_dir="~/.cache/cktflow/ray") as pool:   # doctest: +SKIP
    ...     results = pool.map([SimJob(deck) for deck in decks])

    num_workers: actors (default: the CPUs Ray reports). address: a Ray cluster to join (default:
    RAY_ADDRESS, else an embedded local Ray). timeout_s: limit per simulation. temp_dir: where an
    embedded Ray keeps its session files. progress: a tqdm bar on stderr for each batch.
    """

    def __init__(self, num_workers: int | None = None, address: str | None = None, timeout_s: float = 30.0,
                 temp_dir: str | os.PathLike | None = None, progress: bool = True, max_attempts: int = 3,
                 chunk_size: int | None = None, recycle_after: int = RECYCLE_AFTER):
        if num_workers is not None and num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.timeout_s = float(timeout_s)
        self.progress = progress
        self.max_attempts = max_attempts
        self.chunk_size = chunk_size
        self.recycle_after = recycle_after
        self.recycled_workers = 0
        self._requested_workers = num_workers
        self._address = address or os.environ.get("RAY_ADDRESS") or None
        self._temp_dir = temp_dir
        self._ray = None
        self._owns_ray = False
        self._slots: list[_Slot] = []
        self._next_chunk_id = 0
        self.simulator = ""
        self.replaced_workers = 0
        self._address_lost = False     # the joined cluster's head died: no more calls into it

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> "SimPool":
        """Start (or join) Ray and the actors; `map` calls this on first use."""
        if self._ray is not None:
            return self
        import ray
        self._ray = ray
        if ray.is_initialized():
            log.info("using the Ray instance this process already initialised")
        elif self._address:
            log.info("joining the Ray cluster at %s", self._address)
            _check_reachable(self._address)
            _join(ray, self._address)
            self._owns_ray = True
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            # Token authentication stays on (Ray 2.60's default for a new local cluster, unless the
            # user sets RAY_AUTH_MODE): the embedded Ray's gRPC servers listen on every interface, not
            # only loopback, and Ray has no setting to change that (it even turns a node address of
            # 127.0.0.1 into the machine's routable one), so the token in ~/.ray/auth_token is what
            # keeps others on the network from running code in the workers. Only Ray's announcement
            # of it at every start is quieted. (Setting RAY_AUTH_MODE here instead does not work once
            # ray is imported: the driver keeps the mode it read at import, its raylet gets the new one.)
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            # Ray starts its workers at nice 15; on a machine shared with other work that starves
            # the simulations (each would get a few % of a core next to normal processes).
            os.environ.setdefault("RAY_worker_niceness", "0")
            temp = self._embedded_temp_dir()
            log.info("starting an embedded Ray (session files in %s)", temp)
            ray.init(num_cpus=self._requested_workers or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING, _temp_dir=str(temp))
            self._owns_ray = True
        n = self._requested_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._slots = [_Slot(self._new_actor()) for _ in range(n)]
        # wait for every engine to load, so start-up failures surface here with a clear message
        try:
            infos = ray.get([s.actor.info.remote() for s in self._slots], timeout=_STARTUP_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise RuntimeError(f"{n} simulation workers did not start within {_STARTUP_TIMEOUT_S:g} s; does the "
                               f"Ray cluster have {n} free CPUs?") from None
        self.simulator = infos[0][1]
        return self

    def _embedded_temp_dir(self) -> Path:
        base = Path(self._temp_dir).expanduser() if self._temp_dir else Path(tempfile.gettempdir()) / "cktflow-ray"
        base = base.resolve()
        if len(str(base)) > _MAX_TEMP_DIR_CHARS:
            short = Path(tempfile.gettempdir()) / f"cktflow-ray-{os.getuid()}"
            log.warning("Ray temp dir %s is too long for Ray's unix sockets; using %s", base, short)
            base = short
        base.mkdir(parents=True, exist_ok=True)
        return base

    def _new_actor(self):
        return _worker_class().remote()

    def close(self) -> None:
        """Kill the actors and, if this pool started Ray, shut Ray down."""
        if self._ray is None:
            return
        for slot in self._slots if not self._address_lost else ():
            try:
                self._ray.kill(slot.actor)
            except Exception:   # already dead
                pass
        self._slots = []
        if self._owns_ray:
            self._ray.shutdown()
        self._ray = None
        self._owns_ray = False

    def __enter__(self) -> "SimPool":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def num_workers(self) -> int:
        return len(self._slots)

    def worker_pids(self) -> list[int]:
        """Process ids of the live actors (for monitoring, and for the tests that kill one)."""
        self.start()
        return [pid for pid, _ in self._ray.get([s.actor.info.remote() for s in self._slots])]

    # ---- work ----------------------------------------------------------------------------------
    def map(self, jobs: Sequence[SimJob]) -> list[SimResult]:
        """Simulate every job; the i-th result belongs to the i-th job, failures included."""
        out: list[SimResult | None] = [None] * len(jobs)
        for i, res in self.imap_unordered(jobs):
            out[i] = res
        return out  # type: ignore[return-value]

    def imap_unordered(self, jobs: Sequence[SimJob]) -> Iterator[tuple[int, SimResult]]:
        """(index, result) pairs as they finish, for callers that store results on the way."""
        jobs = list(jobs)
        if not jobs:
            return
        self.start()
        ray = self._ray
        queue: collections.deque[_Chunk] = collections.deque(
            self._chunk(list(range(a, b))) for a, b in self._chunk_bounds(len(jobs)))
        attempts = [0] * len(jobs)
        remaining = len(jobs)
        bar = _progress_bar(len(jobs), self.progress)
        failures = 0
        last_result = time.monotonic()
        try:
            while remaining:
                self._fill(queue, jobs)
                refs = {ref: slot for slot in self._slots for ref, _ in slot.inflight}
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=_POLL_S)
                if not ready and time.monotonic() - last_result > _HEAD_CHECK_S:
                    self._check_head()
                    last_result = time.monotonic()
                finished: list[tuple[int, SimResult]] = []
                for ref in ready:
                    slot = refs[ref]
                    chunk = self._pop(slot, ref)
                    try:
                        results = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        self._check_head()      # a head that died takes its node's workers with it
                        slot.inflight.appendleft((ref, chunk))   # its jobs are retried with the others
                        finished += self._worker_lost(slot, queue, attempts, "the worker process died")
                        continue
                    finished += zip(chunk.indices, results)
                    slot.done += len(results)
                    slot.last_progress = time.monotonic()
                finished += self._check_hung(queue, attempts)
                if finished:
                    last_result = time.monotonic()
                for i, res in finished:
                    remaining -= 1
                    failures += res.failure is not None
                    yield i, res
                if finished and bar is not None:
                    bar.update(len(finished))
                    bar.set_postfix(failures=failures, refresh=False)
        finally:
            if bar is not None:
                bar.close()
            if remaining:   # the caller stopped early or an error escaped: do not leave work queued
                self._discard_inflight()

    def _check_head(self) -> None:
        """Raise ClusterLost when the head of a joined cluster no longer answers: Ray's own client
        would otherwise end this process after 60 s with a C++ log line and no word to the caller."""
        if not self._address or self._owns_ray is False:
            return
        try:
            _check_reachable(self._address, timeout_s=2.0)
        except (ConnectionError, ValueError):
            self._address_lost = True
            raise ClusterLost(f"the Ray cluster at {self._address} stopped answering (its head died or was "
                              "stopped); the results so far are kept: start the cluster again and rerun the "
                              "same command to resume") from None

    def _chunk_bounds(self, n: int) -> list[tuple[int, int]]:
        """(start, stop) of each chunk. Guided sizes: each chunk takes a quarter of the remaining
        jobs per actor (at most _MAX_CHUNK, at least _MIN_CHUNK), so chunks shrink towards the end
        of a batch and no actor sits idle while another still holds a long queue."""
        if self.chunk_size:
            return [(a, min(a + self.chunk_size, n)) for a in range(0, n, self.chunk_size)]
        actors = max(1, len(self._slots))
        bounds, a = [], 0
        while a < n:
            size = max(_MIN_CHUNK, min(_MAX_CHUNK, math.ceil((n - a) / (4 * actors))))
            bounds.append((a, min(a + size, n)))
            a += size
        return bounds

    def _chunk(self, indices: list[int]) -> _Chunk:
        self._next_chunk_id += 1
        return _Chunk(self._next_chunk_id, indices)

    def _fill(self, queue: collections.deque, jobs: list[SimJob]) -> None:
        for slot in self._slots:
            if slot.done >= self.recycle_after:
                if slot.inflight:       # let its queue drain first: nothing is lost or run twice
                    continue
                self._recycle(slot)
            while queue and len(slot.inflight) < _CHUNKS_IN_FLIGHT:
                chunk = queue.popleft()
                if not slot.inflight:
                    slot.last_progress = time.monotonic()
                ref = slot.actor.run.remote(chunk.id, [jobs[i] for i in chunk.indices])
                slot.inflight.append((ref, chunk))

    def _recycle(self, slot: _Slot) -> None:
        """Replace an idle actor that has run `recycle_after` simulations by a fresh process."""
        try:
            self._ray.kill(slot.actor)
        except Exception:
            pass
        slot.actor = self._new_actor()
        slot.done = 0
        slot.last_progress = time.monotonic()
        self.recycled_workers += 1

    @staticmethod
    def _pop(slot: _Slot, ref) -> _Chunk:
        for k, (r, chunk) in enumerate(slot.inflight):
            if r == ref:
                del slot.inflight[k]
                return chunk
        raise KeyError(ref)

    def _worker_lost(self, slot: _Slot, queue: collections.deque, attempts: list[int], why: str,
                     keep: dict[int, SimResult] | None = None) -> list[tuple[int, SimResult]]:
        """Replace a dead or killed actor; requeue its unfinished jobs, give up on repeat offenders."""
        keep = keep or {}
        given_up: list[tuple[int, SimResult]] = list(keep.items())
        retry: list[int] = []
        for n, (_, chunk) in enumerate(slot.inflight):
            # Blame only what the death pins down: the actor runs its oldest chunk, so a one-job
            # oldest chunk was running; a longer one holds a suspect somewhere, and later chunks had
            # not started. Counting every job of every chunk gave up on innocent jobs when workers
            # were killed from outside in quick succession (tests/reliability: 3 kills in 2,000 runs).
            pinned = n == 0 and len(chunk.indices) == 1
            for i in chunk.indices:
                if i in keep:
                    continue
                attempts[i] += pinned
                if attempts[i] >= self.max_attempts:
                    given_up.append((i, SimResult(failure="worker_died",
                                                  message=f"{why}; gave up after {attempts[i]} workers were lost "
                                                          "while it ran")))
                else:
                    retry.append(i)
        slot.inflight.clear()
        try:
            self._ray.kill(slot.actor)
        except Exception:
            pass
        log.warning("%s; replacing it and retrying %d job(s)", why, len(retry))
        slot.actor = self._new_actor()
        slot.last_progress = time.monotonic()
        self.replaced_workers += 1
        # retried jobs go first, one per chunk, so that a second fault is pinned on a single job
        for i in reversed(retry):
            queue.appendleft(self._chunk([i]))
        return given_up

    def _check_hung(self, queue: collections.deque, attempts: list[int]) -> list[tuple[int, SimResult]]:
        """Ask actors that have been quiet for longer than the time limit what they are doing."""
        out: list[tuple[int, SimResult]] = []
        now = time.monotonic()
        for slot in self._slots:
            if not slot.inflight or now - slot.last_progress < self.timeout_s:
                continue
            try:
                state = self._ray.get(slot.actor.probe.remote(), timeout=_PROBE_TIMEOUT_S)
            except self._ray.exceptions.RayActorError:
                continue   # its chunk's ref will raise; handled as a dead worker
            except self._ray.exceptions.GetTimeoutError:
                out += self._worker_lost(slot, queue, attempts, "a worker stopped answering")
                continue
            if state is None:
                slot.last_progress = now
                continue
            chunk_id, done, k, running = state
            if running < self.timeout_s:
                slot.last_progress = now - running
                continue
            chunk = next((c for _, c in slot.inflight if c.id == chunk_id), None)
            if chunk is None:    # still on work an earlier, abandoned batch left behind
                out += self._worker_lost(slot, queue, attempts, "a worker hung on an abandoned batch")
                continue
            keep = dict(zip(chunk.indices, done))
            keep[chunk.indices[k]] = SimResult(failure="timeout", seconds=running,
                                               message=f"simulation exceeded its time limit of {self.timeout_s:g} s")
            out += self._worker_lost(slot, queue, attempts, "a simulation hung", keep=keep)
        return out

    def _discard_inflight(self) -> None:
        for slot in self._slots if not self._address_lost else ():
            for ref, _ in slot.inflight:
                try:
                    self._ray.cancel(ref)
                except Exception:
                    pass
            slot.inflight.clear()


_AUTH_HELP = ("the Ray cluster at {address} refused this client's authentication token. A cluster started "
              "with `ray start --head` (Ray 2.60) requires the token written on its head to ~/.ray/auth_token: "
              "copy that file to ~/.ray/auth_token here (or point RAY_AUTH_TOKEN_PATH at it, or put the token "
              "itself in RAY_AUTH_TOKEN) and set RAY_AUTH_MODE=token, then run the command again")


def _join(ray, address: str) -> None:
    """ray.init(address=...), with the lines Ray's C++ client prints while it retries (one per second
    for ~20 s when the cluster refuses the token) kept off the terminal; a refusal becomes one
    ConnectionError that says what to do. Anything Ray printed on a successful join is passed on."""
    from ray.exceptions import AuthenticationError
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)       # the file descriptor: the C++ client writes there directly
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            failure = None
        except (ConnectionError, AuthenticationError) as exc:
            failure = exc
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    if failure is None:
        sys.stderr.write(text)
        return
    if isinstance(failure, AuthenticationError) or "InvalidAuthToken" in text or "Unauthenticated" in text:
        raise ConnectionError(_AUTH_HELP.format(address=address)) from None
    last = [ln for ln in text.splitlines() if ln.strip()][-1:]
    raise ConnectionError(f"{failure} (Ray: {last[0]})" if last else str(failure)) from None


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a host:port nobody listens on (ray.init would keep retrying for minutes)."""
    if "://" in address or ":" not in address:
        return          # ray://... client addresses and "auto" are left to Ray
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except ValueError:
        raise ValueError(f"Ray address {address!r} is not host:port") from None
    except OSError as exc:
        raise ConnectionError(f"nothing answers at Ray address {address}: {exc}") from None


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="sim", desc="simulating", dynamic_ncols=True, smoothing=0.1)
