"""`cktflow dataset`: build, inspect, export and import the labelled circuit dataset."""

from __future__ import annotations

import click

from .common import InputProblem, InternalProblem, bad_input, echo_json, emit, json_option, out_option, quiet_stdout


@click.group("dataset")
def dataset_group():
    """Build, inspect and export the labelled circuit dataset (SQLite; default in the cache dir)."""


_db_option = click.option("--db", type=click.Path(dir_okay=False),
                          help="Dataset file (default: <cache>/data/bench101.sqlite; cache = $CKTFLOW_CACHE "
                               "or ~/.cache/cktflow).")


def _existing_db(db):
    """The dataset file --db names (default: the built one); reading commands need it to exist."""
    from pathlib import Path

    from cktflow.dataset import default_db_path
    path = Path(db) if db else default_db_path()
    if not path.exists():
        raise InputProblem(f"{path}: no dataset there (build one with `cktflow dataset build`)")
    return path


@dataset_group.command("build")
@click.option("--n", type=click.IntRange(1), default=None,
              help="Circuits to generate [default: 10000; 2000 with --pdk].")
@click.option("--seed", type=int, default=1, show_default=True, help="Generator seed (fixes circuits and split).")
@click.option("--pdk", default=None, metavar="NAME",
              help="Build a transistor-level set on this PDK (e.g. sky130): realised Bench-101 topologies and "
                   "the PDK's templates at randomised gm/Id sizes, every testbench at typical (default file: "
                   "<cache>/data/<pdk>.sqlite).")
@click.option("--per-topology", type=click.IntRange(1), default=None,
              help="With --pdk: sizings drawn per topology [default: 10].")
@click.option("--load-range", metavar="LOW:HIGH",
              help="With --pdk: measure each new circuit at its own load, drawn log-uniformly between LOW and "
                   "HIGH (e.g. 1pF:10pF), instead of 5 pF, so that a predictor learns what the load does.")
@_db_option
@click.option("--ray-address", help="Simulate on this Ray cluster (or set RAY_ADDRESS); default: a local Ray.")
@click.option("--workers", type=click.IntRange(1), help="Simulation workers (default: one per CPU).")
@click.option("--timeout", type=float, default=None,
              help="Time limit per simulation, seconds [default: 30; 120 with --pdk, whose first job per "
                   "worker and topology loads the PDK's library].")
@json_option
def dataset_build(n, seed, pdk, per_topology, load_range, db, ray_address, workers, timeout, as_json):
    """Generate N Bench-101-style circuits, simulate them with ngspice on Ray, and store them.

    The split is 90 % train / 10 % test by whole topology blocks (20 circuits per topology), so no
    test topology appears in training. Interrupted builds resume: run the same command again.

    With --pdk the circuits are transistor op-amps on that PDK: every fifth topology one of its
    templates, the others Bench-101 topologies realised by cktflow's gm/Id realisation, each at
    --per-topology sizings (its first sizes, then lengths, widths and bias currents moved by random
    factors), measured with every testbench (op, AC, swing, noise, the follower's steps) at the
    typical corner, 27 C and a 5 pF load (--load-range: each at its own load). Topologies that cannot
    be realised are counted by reason.
    """
    if pdk is None and (per_topology is not None or load_range is not None):
        raise InputProblem("--per-topology and --load-range apply to transistor-level builds (--pdk)")
    loads = _load_range(load_range) if load_range is not None else None
    try:
        with quiet_stdout(as_json):
            if pdk is not None:
                s = _build_transistor(n or 2000, seed, pdk, per_topology, db, ray_address, workers,
                                      timeout or 120.0, as_json, loads)
            else:
                from cktflow.dataset import build_dataset
                s = build_dataset(n or 10000, seed, db, ray_address=ray_address, num_workers=workers,
                                  timeout_s=timeout or 30.0, progress=not as_json)
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    except ConnectionError as exc:      # ray.init could not reach --ray-address / RAY_ADDRESS
        raise InputProblem(f"cannot join the Ray cluster: {exc}") from None
    except RuntimeError as exc:         # the simulation workers could not start
        raise InternalProblem(str(exc)) from None
    if as_json:
        echo_json(s.to_dict())
    elif pdk is not None:
        _say_transistor_build(s, pdk)
    else:
        fails = ", ".join(f"{k} {v}" for k, v in s.failures.items()) or "none"
        click.echo(f"{s.db}: {s.n} circuits (seed {s.seed}; {s.train} train / {s.test} test), "
                   f"{s.already_stored} already stored, {s.simulated} simulated, {s.stored} rows added, "
                   f"failures: {fails}; {s.seconds:.1f} s")


def _load_range(text: str) -> tuple[float, float]:
    """'1pF:10pF' -> (1e-12, 1e-11); InputProblem naming the option otherwise."""
    from cktflow.units import parse_si
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError("expected LOW:HIGH")
        lo, hi = parse_si(low, "F"), parse_si(high, "F")
    except ValueError as exc:
        raise InputProblem(f"--load-range {text}: {exc} (e.g. 1pF:10pF)") from None
    if not 0 < lo <= hi:
        raise InputProblem(f"--load-range {text}: give 0 < LOW <= HIGH")
    return lo, hi


def _build_transistor(n, seed, pdk, per_topology, db, ray_address, workers, timeout, as_json, load_range=None):
    """The transistor-level build's summary (InputProblem when the PDK is unknown or not installed)."""
    from cktflow.dataset.transistor_build import PER_TOPOLOGY, build_transistor_dataset
    from cktflow.technology import PdkNotInstalledError, load_technology

    try:
        tech = load_technology(pdk)
        tech.require_installed()
    except (ValueError, FileNotFoundError, PdkNotInstalledError) as exc:
        raise InputProblem(f"--pdk {pdk}: {exc}") from None
    if tech.kind != "transistor":
        raise InputProblem(f"--pdk {pdk}: not a transistor PDK; the behavioural set is built without --pdk")
    return build_transistor_dataset(n, seed, db, pdk=pdk, per_topology=per_topology or PER_TOPOLOGY,
                                    ray_address=ray_address, num_workers=workers, timeout_s=timeout,
                                    progress=not as_json, load_range=load_range)


def _say_transistor_build(s, pdk):
    fails = ", ".join(f"{k} {v}" for k, v in s.failures.items()) or "none"
    skipped = sum(s.unrealisable.values())
    click.echo(f"{s.db}: {s.n} {pdk} circuits of {s.topologies} topologies (seed {s.seed}; {s.train} train / "
               f"{s.test} test), {s.already_stored} already stored, {s.simulated} measured, {s.stored} rows added, "
               f"failures: {fails}; {skipped} drawn topologies could not be realised; {s.seconds:.1f} s"
               + (f" ({s.per_minute:.1f} circuits/min on {s.workers} workers)" if s.simulated else ""))
    for reason, count in sorted(s.unrealisable.items(), key=lambda kv: -kv[1]):
        click.echo(f"  not realisable ({count}): {reason}")


@dataset_group.command("migrate")
@_db_option
@click.option("--chunk", type=click.IntRange(1), default=512, show_default=True,
              help="Rows measured and committed at a time (an interruption loses at most one chunk's work).")
@json_option
def dataset_migrate(db, chunk, as_json):
    """Measure again every circuit labelled by an older testbench (e.g. before the stability metrics
    peaking_db, pm_min_deg, stable) and update its row in place: same circuit, split and provenance,
    plus a 'relabelled' entry in the provenance. Interrupted runs resume: run the same command again.
    """
    from cktflow.dataset import relabel

    path = _existing_db(db)
    with quiet_stdout(as_json):
        s = relabel(path, chunk=chunk, progress=not as_json)
    emit(as_json, s.to_dict(), f"{s.path}: {s.relabelled} of {s.rows} circuits measured again ({s.already} were "
                               f"current, {s.failed} failed) with testbench {s.testbench}; {s.seconds:.1f} s")


@dataset_group.command("stats")
@_db_option
@click.option("--pdk", default=None, metavar="NAME", help="The PDK's transistor-level set (<cache>/data/<pdk>.sqlite).")
@json_option
def dataset_stats_command(db, pdk, as_json):
    """Counts, validity, failure reasons and label quantiles of a dataset."""
    from cktflow.dataset import Dataset, dataset_stats
    from cktflow.report import table

    if pdk and not db:
        from cktflow.dataset.transistor_build import default_transistor_db
        db = default_transistor_db(pdk)
    with Dataset.open(_existing_db(db)) as ds:
        st = dataset_stats(ds)
    if as_json:
        echo_json(st)
        return
    splits = ", ".join(f"{k} {v}" for k, v in sorted(st["splits"].items()))
    click.echo(f"{st['db']}: {st['rows']} circuits ({splits}), {st['topologies']} topologies, "
               f"{st['measured']} measured, {st['invalid']} invalid")
    click.echo("failures: " + (", ".join(f"{k} {v}" for k, v in st["failures"].items()) or "none"))
    click.echo(f"topologies in both train and test: {st['topology_overlap']}")
    u = st["usable_in_feedback"]
    click.echo(f"usable in feedback (stable, pm_min_deg >= 45 deg, peaking_db <= 6 dB): {u['usable']} of "
               f"{u['with_ugf']} with a UGF; stable as followers: {u['stable']}"
               + (f"; {u['unknown']} labelled before the stability metrics (cktflow dataset migrate)"
                  if u["unknown"] else ""))
    if st.get("all_saturated"):
        a = st["all_saturated"]
        click.echo(f"every device in saturation (transistor circuits): {a['true']} of {a['n']}")
    qs = list(next(iter(st["labels"].values()))["quantiles"])
    rows = [[m, str(d["n"]), str(d["missing"])] + [f"{d['quantiles'][q]:.4g}" if d["quantiles"][q] is not None
                                                    else "-" for q in qs] for m, d in st["labels"].items()]
    click.echo(table(["label", "n", "none"] + [f"q{q}" for q in qs], rows))


@dataset_group.command("export")
@_db_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), help="Default: from the file name.")
@out_option("File to write.", folder=False, required=True)
@click.option("--only-ok", is_flag=True, help="Leave out circuits that could not be measured.")
@json_option
def dataset_export(db, fmt, out, only_ok, as_json):
    """Write the dataset to Parquet or JSONL (every column; `cktflow dataset import` reads it back)."""
    from cktflow.dataset import Dataset, export_dataset

    path = _existing_db(db)
    with bad_input(), Dataset.open(path) as ds:
        n = export_dataset(ds, out, fmt, only_ok=only_ok)
    emit(as_json, {"rows": n, "file": out}, f"wrote {n} rows to {out}")


@dataset_group.command("import")
@_db_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), help="Default: from the file name.")
@json_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def dataset_import(db, fmt, as_json, file):
    """Append the rows of a Parquet/JSONL export (circuits already stored are skipped)."""
    from cktflow.dataset import Dataset, import_dataset

    with bad_input(), Dataset.open(db) as ds:
        n = import_dataset(ds, file, fmt)
        total = len(ds)
    emit(as_json, {"added": n, "rows": total}, f"added {n} rows ({total} in {ds.path})")
