"""cktflow command line: parse arguments, call the library, print. No logic of its own.

Exit codes: 0 success (every target met), 1 a target failed, 2 bad input.
torch and ray are imported only inside the commands that need them, so `cktflow --help` is fast.
"""

from __future__ import annotations

import contextlib
import sys

import click


class InputProblem(click.ClickException):
    """Bad input: exit code 2 and a message that names the file, line and field."""
    exit_code = 2


def _spec(path):
    from cktflow.spec import SpecError, load_spec
    try:
        return load_spec(path)
    except SpecError as exc:
        raise InputProblem(str(exc)) from None


def _circuit_arg(path, purpose: str):
    """The Circuit in a circuit JSON file; bad input or a netlist is an InputProblem."""
    from cktflow.flow import InputError, load_design
    try:
        design = load_design(path)
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    if design.circuit is None:
        raise InputProblem(f"{path}: {purpose} needs a circuit JSON (the cktflow IR), not a netlist")
    return design.circuit


def _checkpoint_arg(checkpoint):
    """A --checkpoint the user named must exist (None: the shipped model)."""
    from pathlib import Path
    if checkpoint and not Path(checkpoint).is_file():
        raise InputProblem(f"{checkpoint}: no such checkpoint file")


def _pool_options(command):
    """--workers/--ray-address of the commands that can simulate on a Ray pool (see `_sim_pool`)."""
    command = click.option("--ray-address", help="Simulate on this Ray cluster (or set RAY_ADDRESS).")(command)
    return click.option("--workers", type=click.IntRange(1),
                        help="Simulate on a local Ray pool of this many workers.")(command)


@contextlib.contextmanager
def _sim_pool(workers, ray_address, progress: bool):
    """The Ray pool --workers/--ray-address ask for, closed afterwards; None (simulate locally) without them.

    The pool starts Ray on its first map, as before; SimPool's own `with` would start it at once.
    """
    if not (workers or ray_address):
        yield None
        return
    from cktflow.simulate import open_pool
    pool = open_pool(ray_address=ray_address, num_workers=workers, progress=progress)
    try:
        yield pool
    finally:
        pool.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cktflow")
def main():
    """cktflow: analog op-amp circuits from a specification, with ngspice in the loop."""


@main.command()
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False),
              help="Spec YAML with the targets (see examples/spec.yaml).")
@click.option("--sim", type=click.Choice(["ngspice"]), default="ngspice", show_default=True,
              help="Simulator that measures the circuit.")
@click.option("--input", "input_net", default="in", show_default=True, help="Input node of a netlist.")
@click.option("--output", "output_net", default="out", show_default=True, help="Output node of a netlist.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Time limit per simulation, seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
@click.argument("circuits", nargs=-1, required=True, type=click.Path(dir_okay=False))
def verify(spec_path, sim, input_net, output_net, timeout, as_json, circuits):
    """Measure CIRCUITS (circuit JSON, SPICE or Spectre .scs netlists) with ngspice and check them against a spec.

    A netlist names its input node `in` and its output node `out` (or see --input/--output); when no
    source drives the input, verify adds the testbench's AC source. Netlists are checked before they
    run: .control blocks, shell commands and includes outside the PDK folder are refused.
    """
    from cktflow.flow import InputError, dumps, load_design, verify_design
    from cktflow.report import verify_table
    from spice_sim import LocalSimulator

    spec = _spec(spec_path)
    try:
        designs = [load_design(p, input_net, output_net) for p in circuits]
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    with LocalSimulator(timeout_s=timeout) as simulator:
        reports = [verify_design(d, spec, simulator) for d in designs]
    if as_json:
        click.echo(dumps({"spec": spec.to_dict(), "passed": all(r.passed for r in reports),
                          "results": [r.to_dict() for r in reports]}))
    else:
        for d, r in zip(designs, reports):
            for note in d.notes:
                click.echo(f"note: {note}", err=True)
            click.echo(verify_table(r))
            click.echo()
        n_pass = sum(r.passed for r in reports)
        click.echo(f"{n_pass} of {len(reports)} circuit(s) meet spec '{spec.name}'")
    sys.exit(0 if all(r.passed for r in reports) else 1)


# ---- export (issue 6) -----------------------------------------------------------------------------

@main.command("export")
@click.option("--format", "fmt", type=click.Choice(["spice", "spectre", "xschem", "kicad", "svg", "all"]),
              required=True, help="What to write; 'all' writes every format (and --bode) into the folder OUT.")
@click.option("-o", "--output", "out", required=True, type=click.Path(),
              help="File to write, or the folder for --format all (created if needed).")
@click.option("--title", default=None, help="Title written into the files (default: the circuit file's name).")
@click.option("--no-testbench", is_flag=True, help="Netlists only: the circuit's elements without source and sweep.")
@click.option("--bode", is_flag=True, help="With --format all: simulate with ngspice and add the Bode plot (PNG).")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@click.argument("circuit", type=click.Path(dir_okay=False))
def export_command(fmt, out, title, no_testbench, bode, as_json, circuit):
    """Export CIRCUIT (a circuit JSON file) as a SPICE or Spectre netlist, an xschem or KiCad
    schematic, or an SVG drawing; --format all writes them all into the folder OUT as
    NAME.cir, NAME.scs, NAME.sch, NAME.kicad_sch and NAME.svg (NAME: the circuit file's name).
    """
    import json
    from pathlib import Path

    from cktflow.export import ExportError, export

    if bode and fmt != "all":
        raise InputProblem("--bode goes with --format all")
    if no_testbench and fmt not in ("spice", "spectre"):
        raise InputProblem("--no-testbench applies to --format spice or spectre")
    circuit_ir = _circuit_arg(circuit, "export")
    try:
        written = export(circuit_ir, fmt, out, stem=Path(circuit).stem, title=title,
                         with_testbench=not no_testbench, bode=bode)
    except ExportError as exc:
        raise InputProblem(str(exc)) from None
    if bode and "bode" not in written:
        click.echo("note: no Bode plot: the simulation failed (see the log)", err=True)
    if as_json:
        click.echo(json.dumps({k: str(v) for k, v in written.items()}, indent=2))
    else:
        for k, v in written.items():
            click.echo(f"{k:8s} {v}")


# ---- sizing and the closed loop (issue 5) ------------------------------------------------------

@main.command("size")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False),
              help="Spec YAML with the targets (and the objective: max_margin or min_total_gm).")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True,
              help="Most ngspice simulations to spend, the start point included.")
@click.option("--batch", type=click.IntRange(1), default=4, show_default=True,
              help="Points asked and simulated in parallel per round.")
@click.option("--margin", type=click.FloatRange(0), default=0.01, show_default=True,
              help="Normalised margin every target must clear before sizing stops (0.01 = 0.2 dB, "
                   "0.3 deg, 2.3 %% in frequency).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the optimiser.")
@click.option("--history", type=click.Path(dir_okay=False),
              help="JSON-lines file of every simulated point; an existing one is resumed.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the sized circuit JSON here.")
@_pool_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
@click.argument("circuit", type=click.Path(dir_okay=False))
def size_command(spec_path, budget, batch, margin, seed, history, out, workers, ray_address, as_json, circuit):
    """Size the device values of CIRCUIT (a circuit JSON) against a spec with Bayesian optimisation.

    Starts from the circuit's own values; stops as soon as every target is met with --margin, or
    after --budget simulations. Exit code 0 when the spec is met, 1 when it is not within the budget.
    """
    from cktflow.flow import dumps
    from cktflow.report import sizing_table
    from cktflow.sizing import SizingConfig, size

    spec = _spec(spec_path)
    start = _circuit_arg(circuit, "sizing")
    config = SizingConfig(budget=budget, batch=batch, stop_margin=margin)
    with _sim_pool(workers, ray_address, progress=False) as pool:
        try:
            result = size(start, spec, pool=pool, config=config, seed=seed, history_path=history,
                          progress=not as_json)
        except ValueError as exc:
            raise InputProblem(str(exc)) from None
    if out:
        with open(out, "w") as fh:
            fh.write(result.circuit.to_json(indent=1) + "\n")
    if as_json:
        click.echo(dumps({"spec": spec.to_dict(), **result.to_dict()}))
    else:
        click.echo(sizing_table(spec, start, result))
    sys.exit(0 if result.met else 1)


@main.command("generate")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False),
              help="Spec YAML with the targets (see examples/spec.yaml).")
@click.option("-n", "n", type=click.IntRange(1), default=32, show_default=True,
              help="Candidates the model proposes (distinct, valid).")
@click.option("--top-k", type=click.IntRange(1), default=4, show_default=True,
              help="Best-ranked candidates to size when none meets the spec as proposed.")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True,
              help="ngspice simulations in all, the candidates' first simulations included.")
@click.option("--want", type=click.IntRange(1), default=3, show_default=True,
              help="Stop sizing once this many circuits meet the spec with the margin.")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="Model checkpoint (default: the shipped model).")
@click.option("--no-guidance", is_flag=True, help="Sample without classifier guidance.")
@click.option("--no-refine", is_flag=True,
              help="Keep the decoded device values (no refinement by the model's performance predictor).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and sizing.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: generated/<spec name>).")
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False),
              help="Append the verified circuits to this dataset, with their provenance.")
@click.option("--memory", is_flag=True,
              help="When the model's proposals miss, try the -n stored circuits measured nearest the spec "
                   "(from --dataset, default the built dataset).")
@_pool_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (no progress output).")
def generate_command(spec_path, n, top_k, budget, want, checkpoint, no_guidance, no_refine, seed, out, dataset_path,
                     memory, workers, ray_address, as_json):
    """Design circuits for a spec: the model proposes candidates, ngspice measures them, Bayesian
    sizing refines the best, and a final ngspice run verifies the winners. When fewer than --want
    candidates meet the spec as proposed, the model first proposes -n more, sampled wider (and, with
    --memory, the nearest stored circuits follow when those miss too).

    Writes OUT/report.md and OUT/report.json (verified circuits ranked, measured vs target) and, per
    circuit, its JSON, netlists, schematics and Bode plot. Sizing histories live in OUT/sizing, so an
    interrupted run resumes. Exit code 0 when at least one circuit is verified; 1 otherwise (the
    closest circuit and its shortfall are reported).
    """
    from pathlib import Path

    from cktflow.flow import dumps, generate, run_provenance, write_design_report

    spec = _spec(spec_path)
    out_dir = Path(out or Path("generated") / spec.name)
    _checkpoint_arg(checkpoint)
    provenance = run_provenance(checkpoint, seed)
    nearest = None
    if memory:
        from cktflow.dataset import NearestCircuits
        try:
            nearest = NearestCircuits.from_dataset(dataset_path)
        except FileNotFoundError as exc:
            raise InputProblem(f"--memory: {exc}") from None
    if not as_json:
        import logging
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        click.echo(f"generating for spec '{spec.name}' with {provenance['model']} (run {provenance['run_id']})",
                   err=True)
    with _sim_pool(workers, ray_address, progress=not as_json) as pool:
        try:
            result = generate(spec, n, top_k=top_k, budget=budget, want=want, checkpoint=checkpoint,
                              guidance=not no_guidance, refine=not no_refine, seed=seed, pool=pool,
                              progress=not as_json, history_dir=out_dir / "sizing", memory=nearest)
        except (ValueError, FileNotFoundError) as exc:
            raise InputProblem(str(exc)) from None
    data = write_design_report(result, out_dir, provenance)
    if dataset_path and result.verified:
        from cktflow.flow import append_verified
        data["appended"] = append_verified(result, dataset_path, provenance)
    if as_json:
        click.echo(dumps({**data, "out": str(out_dir)}))
    else:
        for rank, o in enumerate(result.outcomes, 1):
            perf = o.performance
            state = "VERIFIED" if o.passed else f"miss {o.shortfall:.3g}"
            click.echo(f"#{rank} {state:<10} " + "  ".join(
                f"{b.metric}={perf.get(b.metric):.4g}" if perf and perf.get(b.metric) is not None else f"{b.metric}=none"
                for b in spec.targets) + (f"  (sized, {o.sizing.evaluations} sims)" if o.sizing else ""))
        if result.verified:
            click.echo(f"{len(result.verified)} circuit(s) verified for '{spec.name}' in {result.simulations} "
                       f"simulations, {result.seconds:.1f} s; report: {out_dir / 'report.md'}")
        else:
            c = result.closest
            how = f"the closest misses by a normalised shortfall of {c.shortfall:.3g}" if c else "nothing simulated"
            click.echo(f"no circuit met '{spec.name}' within {budget} simulations: {how}; report: "
                       f"{out_dir / 'report.md'}")
    sys.exit(0 if result.verified else 1)


@main.command("tune")
@click.option("--recipe", "recipe_name", default="default", show_default=True,
              help="Training recipe whose hyper-parameters are searched (see `cktflow train --recipe`).")
@click.option("--trials", type=click.IntRange(1), default=8, show_default=True,
              help="Training runs to try (each one a whole training run).")
@click.option("--epochs", type=click.IntRange(1), help="Epochs per trial (default: the recipe's).")
@click.option("--concurrent", type=click.IntRange(1), default=1, show_default=True, help="Trials at once.")
@click.option("--limit", type=click.IntRange(2), help="Train each trial on only this many training circuits.")
@click.option("--db", type=click.Path(dir_okay=False), help="Dataset to train on (default: the built one).")
@click.option("--out", default="runs/tune", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the Tune experiment.")
@click.option("--name", default="cktgen-hparams", show_default=True, help="Experiment name (its folder under --out).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the searcher and the validation share.")
@click.option("--resume", is_flag=True, help="Continue the experiment in --out/--name.")
@click.option("--ray-address", help="Run the trials on this Ray cluster (or set RAY_ADDRESS).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def tune_command(recipe_name, trials, epochs, concurrent, limit, db, out, name, seed, resume, ray_address, as_json):
    """Search the model's training hyper-parameters with Ray Tune (Optuna searcher, reused actors).

    Every trial trains the recipe with sampled lr, weight decay, KL and alignment weights, InfoNCE
    temperature and batch size, and is scored by its loss on a validation share of the training
    split (the test split is not touched).
    """
    from cktflow.flow import dumps
    from cktflow.report import table
    from cktflow.tuning import tune_training

    try:
        result = tune_training(recipe_name=recipe_name, num_samples=trials, epochs=epochs, max_concurrent=concurrent,
                               limit=limit, db=db, out_dir=out, name=name, seed=seed, ray_address=ray_address,
                               resume=resume, verbose=not as_json)
    except (ValueError, FileNotFoundError) as exc:
        raise InputProblem(str(exc)) from None
    if as_json:
        click.echo(dumps(result))
    else:
        keys = list(result["trials"][0]["config"]) if result["trials"] else []
        rows = [[f"{t['val_loss']:.4f}" if t["val_loss"] is not None else f"error: {t['error']}"]
                + [f"{t['config'].get(k):.3g}" if isinstance(t["config"].get(k), float) else str(t["config"].get(k))
                   for k in keys] for t in sorted(result["trials"], key=lambda t: (t["val_loss"] is None, t["val_loss"] or 0))]
        click.echo(table(["val_loss", *keys], rows))
        if result["best"]:
            click.echo(f"best of {len(result['trials'])} trial(s): val_loss {result['best']['val_loss']:.4f}; "
                       f"experiment in {result['path']}")
    sys.exit(0 if result["best"] else 1)


# ---- dataset (issue 3) ---------------------------------------------------------------------------
@main.group("dataset")
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
@click.option("--n", type=click.IntRange(1), default=10000, show_default=True, help="Circuits to generate.")
@click.option("--seed", type=int, default=1, show_default=True, help="Generator seed (fixes circuits and split).")
@_db_option
@click.option("--ray-address", help="Simulate on this Ray cluster (or set RAY_ADDRESS); default: a local Ray.")
@click.option("--workers", type=click.IntRange(1), help="Simulation workers (default: one per CPU).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Time limit per simulation, seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary; no progress bar.")
def dataset_build(n, seed, db, ray_address, workers, timeout, as_json):
    """Generate N Bench-101-style circuits, simulate them with ngspice on Ray, and store them.

    The split is 90 % train / 10 % test by whole topology blocks (20 circuits per topology), so no
    test topology appears in training. Interrupted builds resume: run the same command again.
    """
    from cktflow.dataset import build_dataset
    from cktflow.flow import dumps

    try:
        s = build_dataset(n, seed, db, ray_address=ray_address, num_workers=workers, timeout_s=timeout,
                          progress=not as_json)
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    except ConnectionError as exc:      # ray.init could not reach --ray-address / RAY_ADDRESS
        raise InputProblem(f"cannot join the Ray cluster: {exc}") from None
    except RuntimeError as exc:         # the simulation workers could not start
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(dumps(s.to_dict()))
    else:
        fails = ", ".join(f"{k} {v}" for k, v in s.failures.items()) or "none"
        click.echo(f"{s.db}: {s.n} circuits (seed {s.seed}; {s.train} train / {s.test} test), "
                   f"{s.already_stored} already stored, {s.simulated} simulated, {s.stored} rows added, "
                   f"failures: {fails}; {s.seconds:.1f} s")


@dataset_group.command("stats")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def dataset_stats_command(db, as_json):
    """Counts, validity, failure reasons and label quantiles of a dataset."""
    from cktflow.dataset import Dataset, dataset_stats
    from cktflow.flow import dumps
    from cktflow.report import table

    with Dataset.open(_existing_db(db)) as ds:
        st = dataset_stats(ds)
    if as_json:
        click.echo(dumps(st))
        return
    splits = ", ".join(f"{k} {v}" for k, v in sorted(st["splits"].items()))
    click.echo(f"{st['db']}: {st['rows']} circuits ({splits}), {st['topologies']} topologies, "
               f"{st['measured']} measured, {st['invalid']} invalid")
    click.echo("failures: " + (", ".join(f"{k} {v}" for k, v in st["failures"].items()) or "none"))
    click.echo(f"topologies in both train and test: {st['topology_overlap']}")
    qs = list(next(iter(st["labels"].values()))["quantiles"])
    rows = [[m, str(d["n"]), str(d["missing"])] + [f"{d['quantiles'][q]:.4g}" if d["quantiles"][q] is not None
                                                    else "-" for q in qs] for m, d in st["labels"].items()]
    click.echo(table(["label", "n", "none"] + [f"q{q}" for q in qs], rows))


@dataset_group.command("export")
@_db_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), help="Default: from the file name.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--only-ok", is_flag=True, help="Leave out circuits that could not be measured.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def dataset_export(db, fmt, out, only_ok, as_json):
    """Write the dataset to Parquet or JSONL (every column; `cktflow dataset import` reads it back)."""
    from cktflow.dataset import Dataset, export_dataset
    from cktflow.flow import dumps

    path = _existing_db(db)
    try:
        with Dataset.open(path) as ds:
            n = export_dataset(ds, out, fmt, only_ok=only_ok)
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    click.echo(dumps({"rows": n, "file": out}) if as_json else f"wrote {n} rows to {out}")


@dataset_group.command("import")
@_db_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), help="Default: from the file name.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def dataset_import(db, fmt, as_json, file):
    """Append the rows of a Parquet/JSONL export (circuits already stored are skipped)."""
    from cktflow.dataset import Dataset, import_dataset
    from cktflow.flow import dumps

    try:
        with Dataset.open(db) as ds:
            n = import_dataset(ds, file, fmt)
            total = len(ds)
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    click.echo(dumps({"added": n, "rows": total}) if as_json else f"added {n} rows ({total} in {ds.path})")



# ---- model: train and evaluate (issue 4) -----------------------------------------------------------

@main.command("train")
@click.option("--recipe", "recipe_name", default="default", show_default=True,
              help="Training recipe: default (the shipped model), no-align, no-kl (ablations), tiny.")
@click.option("--db", type=click.Path(dir_okay=False),
              help="Dataset store to train on (default: the cktflow dataset, or a regenerated Bench-101 set).")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default runs/RECIPE).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt after its last finished epoch.")
@click.option("--seed", type=int, help="Training seed (default: the recipe's, 0).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to train; auto takes CUDA when torch sees one.")
@click.option("--epochs", type=click.IntRange(1), help="Epochs of the schedule (default: the recipe's).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="CPU threads for torch (1 is fastest on a busy shared machine).")
@click.option("--evaluator/--no-evaluator", "with_evaluator", default=True, show_default=True,
              help="Also train the evaluator network (the paper's learned judge) into OUT/evaluator.pt.")
@click.option("--predictor/--no-predictor", "with_predictor", default=True, show_default=True,
              help="Also train the performance predictor that refines decoded device values into "
                   "OUT/predictor.pt (about 5 minutes on one thread).")
@click.option("--onpolicy", type=click.IntRange(0), default=None,
              help="Decodes of each of the predictor's two on-policy rounds: the trained generator's decodes "
                   "for training conditions, refined and measured in ngspice, on which the predictor is "
                   "fine-tuned (default 10240, about 9 minutes for both rounds; 0 skips them).")
@click.option("--coverage", type=click.IntRange(0), default=0, show_default=True,
              help="Decodes of an optional coverage round for the predictor after those: conditions pushed off "
                   "the training specs, decoded, refined and measured; the circuits that land away from every "
                   "training circuit join one more fine-tune (16384: about 12 minutes). It met more specs "
                   "outside the data within few simulations, but fewer in-distribution class targets; see "
                   "the README. 0 skips it.")
@click.option("--ship", is_flag=True, help="Install the trained weights as the package's default model.")
@click.option("--finetune", is_flag=True,
              help="Continue from --checkpoint (default: the shipped model) on the dataset's current training "
                   "split instead of training from scratch (the flywheel's step; 3 epochs unless --epochs).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="With --finetune: the model to continue from.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary; no progress bar.")
def train_command(recipe_name, db, out, resume, seed, device, epochs, threads, with_evaluator, with_predictor,
                  onpolicy, coverage, ship, finetune, checkpoint, as_json):
    """Train the CktGen model (with its performance predictor and evaluator network) on the
    dataset's training split.

    Writes OUT/checkpoint.pt after every epoch (model, config, optimizer, epoch), so an interrupted
    run continues with --resume; OUT/model.pt (weights only), OUT/predictor.pt and OUT/evaluator.pt
    at the end. With --finetune the predictor beside --checkpoint is fine-tuned too.
    """
    import logging

    from cktflow.flow import dumps
    from cktflow.model.pipeline import run_recipe

    if not as_json:
        logging.basicConfig(level=logging.WARNING)
    if finetune:
        from cktflow.model.finetune import run_finetune
        try:
            summary = run_finetune(checkpoint, db=db, out_dir=out, epochs=epochs or 3, seed=seed or 0, device=device,
                                   threads=threads, ship=ship, progress=not as_json)
        except (ValueError, FileNotFoundError) as exc:
            raise InputProblem(str(exc)) from None
        click.echo(dumps(summary) if as_json else
                   f"fine-tuned {summary['source']} for {summary['epochs']} epochs on {summary['train_circuits']} "
                   f"circuits; weights in {summary['model']}" + (" (installed as the default model)" if ship else ""))
        return
    try:
        summary = run_recipe(recipe_name, db=db, out_dir=out, resume=resume, seed=seed, device=device,
                             epochs=epochs, threads=threads, evaluator=with_evaluator, predictor=with_predictor,
                             onpolicy=onpolicy, coverage=coverage, ship=ship, progress=not as_json)
    except (ValueError, FileNotFoundError) as exc:
        raise InputProblem(str(exc)) from None
    if as_json:
        click.echo(dumps(summary))
    else:
        click.echo(f"trained {summary['recipe']} for {summary['epochs']} epochs on {summary['train_circuits']} "
                   f"circuits in {summary['seconds_this_run']:.0f} s (generator epochs {summary['seconds_total']:.0f} s); "
                   f"weights in {summary['model']}"
                   + (" (installed as the default model)" if ship else ""))


@main.command("evaluate")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Model weights (default: the shipped model).")
@click.option("--evaluator", "evaluator_path", type=click.Path(dir_okay=False),
              help="Evaluator network (default: evaluator.pt beside the checkpoint; trained if missing).")
@click.option("--db", type=click.Path(dir_okay=False), help="Dataset store whose test split is used.")
@click.option("--rounds", type=click.IntRange(1), default=120, show_default=True, help="Protocol rounds.")
@click.option("--sim-rounds", type=click.IntRange(0), default=10, show_default=True,
              help="Rounds whose generated circuits are simulated in ngspice.")
@click.option("--candidates", type=click.IntRange(1), default=8, show_default=True,
              help="Latents decoded per condition; the model's own spec heads keep the best.")
@click.option("--continuous-specs", type=click.IntRange(0), default=100, show_default=True,
              help="Specs in the continuous (user) protocol; 0 skips it.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the protocol.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON; no progress bars.")
def evaluate_command(checkpoint, evaluator_path, db, rounds, sim_rounds, candidates, continuous_specs, seed, threads,
                     as_json):
    """Score a model on the test split: the CktGen paper's metrics beside its published row, Spec-Acc
    measured by ngspice, novelty, the retrieval baseline, and the continuous-spec protocol. Rows with
    and without guidance, best of --candidates and single, with the device values refined by the
    model's predictor.pt (when it has one) and, for comparison, unrefined."""
    import torch

    from cktflow.flow import dumps
    from cktflow.model.evaluate import ProtocolSettings, format_report, run_evaluation

    torch.set_num_threads(threads)
    settings = ProtocolSettings(rounds=rounds, sim_rounds=min(sim_rounds, rounds), seed=seed)
    try:
        report = run_evaluation(checkpoint, db=db, settings=settings, evaluator_path=evaluator_path,
                                candidates=candidates, continuous_specs=continuous_specs, progress=not as_json)
    except (ValueError, FileNotFoundError) as exc:
        raise InputProblem(str(exc)) from None
    click.echo(dumps(report) if as_json else format_report(report))

@main.command("flywheel")
@click.option("--specs", "specs_path", required=True, type=click.Path(dir_okay=False),
              help="YAML list of specs (each item shaped like a spec file).")
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True,
              help="Rounds of generate -> append verified circuits -> fine-tune.")
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False),
              help="Dataset the verified circuits are appended to and fine-tuned on (default: the built one).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Starting model (default: the shipped one).")
@click.option("-n", "n", type=click.IntRange(1), default=32, show_default=True, help="Candidates per spec.")
@click.option("--top-k", type=click.IntRange(1), default=4, show_default=True, help="Candidates sized per spec.")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True,
              help="ngspice simulations per spec, first simulations included.")
@click.option("--epochs", type=click.IntRange(1), default=3, show_default=True, help="Fine-tune epochs per round.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling, sizing and fine-tuning.")
@click.option("--out", default="runs/flywheel", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the run (per round: spec reports, sizing histories, the fine-tuned model).")
@_pool_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def flywheel_command(specs_path, rounds, dataset_path, checkpoint, n, top_k, budget, epochs, seed, out, workers,
                     ray_address, as_json):
    """Run the flywheel: per round, generate for every spec, append the verified circuits (with their
    provenance) to the dataset, and fine-tune the model on the grown training split; the next round
    uses the fine-tuned model. Prints per round the success rate and simulations per success.
    Interrupted runs resume from --out.
    """
    from cktflow.flow import dumps, flywheel, load_spec_list
    from cktflow.spec import SpecError

    try:
        specs = load_spec_list(specs_path)
    except SpecError as exc:
        raise InputProblem(str(exc)) from None
    _checkpoint_arg(checkpoint)

    def show(summary):
        if not as_json:
            sps = summary["simulations_per_success"]
            click.echo(f"round {summary['round']}: {summary['success']}/{summary['specs']} specs met "
                       f"({100 * summary['success_rate']:.0f} %), "
                       f"{'-' if sps is None else f'{sps:.1f}'} simulations per success, "
                       f"{summary['appended']} circuit(s) appended, fine-tuned on {summary['train_circuits']} circuits")

    with _sim_pool(workers, ray_address, progress=False) as pool:
        try:
            summaries = flywheel(specs, rounds, out, dataset_path=dataset_path, checkpoint=checkpoint, n=n,
                                 top_k=top_k, budget=budget, finetune_epochs=epochs, seed=seed, pool=pool,
                                 progress=not as_json, on_round=show)
        except (ValueError, FileNotFoundError) as exc:
            raise InputProblem(str(exc)) from None
    if as_json:
        click.echo(dumps({"rounds": summaries}))
    sys.exit(0 if summaries and summaries[-1]["success"] else 1)


if __name__ == "__main__":
    main()
