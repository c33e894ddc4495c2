"""The design commands: `size` one circuit, `generate` circuits for a spec, run the `flywheel`."""

from __future__ import annotations

import sys

import click

from .common import (EXIT_MET, EXIT_NOT_MET, InputProblem, checkpoint_arg, circuit_arg, echo_json,
                     force_option, json_option, load_spec_arg, one_torch_thread, out_option, output_folder,
                     pool_options, quiet_stdout, sim_pool, spec_at_pdk, spec_option)


@click.command("size")
@spec_option(help="Spec YAML with the targets (and the objective: max_margin, min_total_gm; at transistor level "
                  "min_power, min_area).")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True,
              help="Most ngspice simulations to spend, the start point included (transistor level: each "
                   "condition run of a point is one).")
@click.option("--batch", type=click.IntRange(1), default=4, show_default=True,
              help="Points asked and simulated in parallel per round.")
@click.option("--margin", type=click.FloatRange(0), default=0.01, show_default=True,
              help="Normalised margin every target must clear before sizing stops (0.01 = 0.2 dB, "
                   "0.3 deg, 2.3 %% in frequency).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the optimiser.")
@click.option("--history", type=click.Path(dir_okay=False),
              help="JSON-lines file of every simulated point; an existing one is resumed.")
@click.option("--pdk", "pdk", default=None, metavar="NAME",
              help="Size at transistor level on this PDK (e.g. sky130) when the spec names none.")
@out_option("Write the sized circuit JSON to this file (transistor level: and FILE.report.md beside it).",
            folder=False)
@click.option("--force", is_flag=True, help="Transistor level: overwrite the output files if they exist.")
@pool_options
@json_option
@click.argument("circuit", type=click.Path(dir_okay=False))
def size_command(spec_path, budget, batch, margin, seed, history, pdk, out, force, workers, ray_address, as_json,
                 circuit):
    """Size the device values of CIRCUIT (a circuit JSON) against a spec with Bayesian optimisation.

    Starts from the circuit's own values; stops as soon as every target is met with --margin, or
    after --budget simulations. Exit code 0 when the spec is met, 1 when it is not within the budget.

    At transistor level (the spec's `pdk:`, or --pdk) CIRCUIT is a transistor circuit JSON or a
    .cir/.spice subcircuit with ports inp inn out vdd vss (as `cktflow verify` reads them); its
    sizing parameters are sized on the PDK's grid against the worst case over the spec's corners
    and temperatures, the typical condition simulated first and the others only for points that
    meet every target there, one after another until the first the point misses.
    """
    from cktflow.fsutil import atomic_write_text
    from cktflow.report import sizing_table
    from cktflow.sizing import SizingConfig, size

    from .design_transistor import size_transistor_command

    spec = spec_at_pdk(load_spec_arg(spec_path), pdk)
    if spec.level == "transistor":
        size_transistor_command(spec, circuit, budget, batch, margin, seed, history, out, force, workers,
                                ray_address, as_json)
        return
    start = circuit_arg(circuit, "sizing")
    config = SizingConfig(budget=budget, batch=batch, stop_margin=margin)
    with quiet_stdout(as_json), sim_pool(workers, ray_address, progress=False) as pool:
        try:
            result = size(start, spec, pool=pool, config=config, seed=seed, history_path=history,
                          progress=not as_json)
        except ValueError as exc:
            raise InputProblem(str(exc)) from None
    if out:
        atomic_write_text(out, result.circuit.to_json(indent=1) + "\n")
    if as_json:
        echo_json({"spec": spec.to_dict(), **result.to_dict()})
    else:
        click.echo(sizing_table(spec, start, result))
    sys.exit(EXIT_MET if result.met else EXIT_NOT_MET)


@click.command("generate")
@spec_option()
@click.option("-n", "n", type=click.IntRange(0), default=None,
              help="Candidates the model proposes (distinct, valid) [default: 32; at transistor level 4, each "
                   "realised on the PDK beside its templates, and as many stored circuits nearest the spec from "
                   "the PDK's dataset store when there is one; 0 for the templates only].")
@click.option("--top-k", type=click.IntRange(1), default=None,
              help="Best-ranked candidates to size when none meets the spec as proposed [default: 4; 2 at "
                   "transistor level].")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True,
              help="ngspice simulations in all, the candidates' first simulations included.")
@click.option("--want", type=click.IntRange(1), default=None,
              help="Stop sizing once this many circuits meet the spec with the margin [default: 3; 1 at "
                   "transistor level].")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="Model checkpoint (default: the shipped model; at a PDK its shipped full-spec generator, or "
                   "a behavioural checkpoint given here, which reads gain, UGF and PM only).")
@click.option("--no-guidance", is_flag=True, help="Sample without classifier guidance.")
@click.option("--no-refine", is_flag=True,
              help="Keep the decoded device values (no refinement by the model's performance predictor).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and sizing.")
@click.option("--pdk", "pdk", default=None, metavar="NAME",
              help="Design at transistor level on this PDK (e.g. sky130) when the spec names none.")
@out_option("Output folder (default: generated/<spec name>); refused when it holds files cktflow did not "
            "write, unless --force.", folder=True)
@force_option
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False),
              help="Append the verified circuits to this dataset, with their provenance.")
@click.option("--memory", is_flag=True,
              help="When the model's proposals miss, try the -n stored circuits measured nearest the spec "
                   "(from --dataset, default the built dataset).")
@click.option("--screen-all", is_flag=True,
              help="At a PDK: simulate every candidate once at typical instead of ranking them by the PDK's "
                   "predictor and screening the best first.")
@pool_options
@json_option
def generate_command(spec_path, n, top_k, budget, want, checkpoint, no_guidance, no_refine, seed, pdk, out, force,
                     dataset_path, memory, screen_all, workers, ray_address, as_json):
    """Design circuits for a spec: the model proposes candidates, ngspice measures them, Bayesian
    sizing refines the best, and a final ngspice run verifies the winners. When fewer than --want
    candidates meet the spec as proposed, the model first proposes -n more, sampled wider (and, with
    --memory, the nearest stored circuits follow when those miss too).

    Writes OUT/report.md and OUT/report.json (verified circuits ranked, measured vs target) and, per
    circuit, its JSON, netlists, schematics and Bode plot. Sizing histories live in OUT/sizing, so an
    interrupted run resumes. Exit code 0 when at least one circuit is verified; 1 otherwise (the
    closest circuit and its shortfall are reported).

    At transistor level (the spec's `pdk:`, or --pdk) the candidates are the PDK's op-amp
    templates, the -n best proposals of the PDK's full-spec generator (it reads every bound of the
    spec, its load and supply) realised on the PDK at first gm/Id sizes (a proposal that cannot be
    realised is reported and skipped) and the -n stored circuits nearest the spec. The PDK's
    predictor ranks them and the best (--top-k plus two) are simulated once at typical, the next
    ones only when those are used up (--screen-all simulates every one); the most
    promising --top-k are sized side by side, a chunk of simulations each in turn (--budget
    simulations in all, each condition run of a point counting one), and the ones that meet the
    spec are verified with every testbench at every corner and temperature (a claim the verification rejects hands its place to the next candidate). Per
    circuit OUT holds the subcircuit, a plain-ngspice testbench, xschem and KiCad schematics, Bode
    and step plots and the operating-point table; report.md ranks them by worst-case margin. Exit 0 when at least one
    circuit is verified at every condition, 1 otherwise (the nearest miss is reported).
    """
    from pathlib import Path

    from cktflow.flow import generate, run_provenance, write_design_report

    from .design_transistor import generate_transistor_command

    spec = spec_at_pdk(load_spec_arg(spec_path), pdk)
    if spec.level == "transistor":
        given = [name for name, on in (("--dataset", dataset_path), ("--memory", memory)) if on]
        if given:
            raise InputProblem(f"{', '.join(given)}: the dataset's circuits are behavioural; at transistor level "
                               "generate starts from the PDK's templates and the model's realised proposals")
        checkpoint_arg(checkpoint)
        one_torch_thread()
        generate_transistor_command(spec, budget, top_k or 2, want or 1, seed, out, force, workers, ray_address,
                                    as_json, model={"n": 4 if n is None else n, "checkpoint": checkpoint,
                                                    "guidance": not no_guidance, "refine": not no_refine},
                                    rank=not screen_all)
        return
    if screen_all:
        raise InputProblem("--screen-all applies at a PDK (the spec's pdk: or --pdk): the behavioural level "
                           "screens every proposal")
    if n == 0:
        raise InputProblem("-n 0: at behavioural level every candidate comes from the model; give -n 1 or more")
    n, top_k, want = n or 32, top_k or 4, want or 3
    out_dir = Path(out or Path("generated") / spec.name)
    checkpoint_arg(checkpoint)
    one_torch_thread()
    nearest = None
    if memory:
        from cktflow.dataset import NearestCircuits
        try:
            nearest = NearestCircuits.from_dataset(dataset_path)
        except FileNotFoundError as exc:
            raise InputProblem(f"--memory: {exc}") from None
    output_folder(out_dir, force)
    provenance = run_provenance(checkpoint, seed)
    if not as_json:
        import logging
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        click.echo(f"generating for spec '{spec.name}' with {provenance['model']} (run {provenance['run_id']})",
                   err=True)
    with quiet_stdout(as_json), sim_pool(workers, ray_address, progress=not as_json) as pool:
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
        echo_json({**data, "out": str(out_dir)})
    else:
        from cktflow.units import format_si
        from spice_sim import METRIC_UNITS
        for rank, o in enumerate(result.outcomes, 1):
            perf = o.performance
            state = "VERIFIED" if o.passed else f"miss {o.shortfall:.3g}"
            click.echo(f"#{rank} {state:<10} " + "  ".join(
                f"{b.metric}={format_si(perf.get(b.metric), METRIC_UNITS[b.metric], sep='')}" if perf
                else f"{b.metric}=none" for b in spec.bounds)
                + (f"  (sized, {o.sizing.evaluations} sims)" if o.sizing else ""))
        if result.verified:
            click.echo(f"{len(result.verified)} circuit(s) verified for '{spec.name}' in {result.simulations} "
                       f"simulations, {result.seconds:.1f} s; report: {out_dir / 'report.md'}")
        else:
            c = result.closest
            how = f"the closest misses by a normalised shortfall of {c.shortfall:.3g}" if c else "nothing simulated"
            click.echo(f"no circuit met '{spec.name}' within {budget} simulations: {how}; report: "
                       f"{out_dir / 'report.md'}")
    sys.exit(EXIT_MET if result.verified else EXIT_NOT_MET)


@click.command("flywheel")
@spec_option(help="YAML list of specs (each item shaped like a spec file).", aliases=("--specs",))
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True,
              help="Rounds of generate -> append verified circuits -> fine-tune.")
@click.option("--pdk", metavar="NAME",
              help="Design every spec as a transistor op-amp on this PDK (specs that name a pdk need no flag): "
                   "the verified circuits go to the PDK's store and its performance predictor is fine-tuned.")
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False),
              help="Dataset the verified circuits are appended to and fine-tuned on (default: the built one; "
                   "at a PDK <cache>/data/<pdk>.sqlite).")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="Starting model (default: the shipped one); at a PDK the starting predictor.")
@click.option("-n", "n", type=click.IntRange(1), default=None,
              help="Candidates per spec [default: 32; at a PDK 4 model proposals and 4 stored circuits].")
@click.option("--top-k", type=click.IntRange(1), default=None,
              help="Candidates sized per spec [default: 4; at a PDK 2].")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True,
              help="ngspice simulations per spec, first simulations included.")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Fine-tune epochs per round [default: 3; the PDK predictor's 20].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling, sizing and fine-tuning.")
@out_option("Folder of the run (per round: spec reports, sizing histories, the fine-tuned model).", folder=True,
            default="runs/flywheel")
@force_option
@pool_options
@json_option
def flywheel_command(spec_path, rounds, pdk, dataset_path, checkpoint, n, top_k, budget, epochs, seed, out, force,
                     workers, ray_address, as_json):
    """Run the flywheel: per round, generate for every spec, append the verified circuits (with their
    provenance) to the dataset, and fine-tune the model on the grown training split; the next round
    uses the fine-tuned model. Prints per round the success rate and simulations per success.
    Interrupted runs resume from --out.
    """
    from cktflow.flow import flywheel, load_spec_list
    from cktflow.spec import SpecError

    try:
        specs = load_spec_list(spec_path)
    except SpecError as exc:
        raise InputProblem(str(exc)) from None
    if pdk is not None:
        try:
            specs = [s if s.pdk == pdk else s.with_pdk(pdk) for s in specs]
        except SpecError as exc:
            raise InputProblem(str(exc)) from None
    levels = {s.level for s in specs}
    if len(levels) > 1 or len({s.pdk for s in specs}) > 1:
        raise InputProblem(f"{spec_path}: the specs mix levels or PDKs; one flywheel run designs at one")
    if levels == {"transistor"}:
        _transistor_flywheel(specs, rounds, dataset_path, checkpoint, n, top_k, budget, epochs, seed, out, force,
                             workers, ray_address, as_json)
        return
    n, top_k, epochs = n or 32, top_k or 4, epochs or 3
    checkpoint_arg(checkpoint)
    output_folder(out, force)
    one_torch_thread()

    def show(summary):
        if not as_json:
            _say_round(summary, "fine-tuned")

    with quiet_stdout(as_json), sim_pool(workers, ray_address, progress=False) as pool:
        try:
            summaries = flywheel(specs, rounds, out, dataset_path=dataset_path, checkpoint=checkpoint, n=n,
                                 top_k=top_k, budget=budget, finetune_epochs=epochs, seed=seed, pool=pool,
                                 progress=not as_json, on_round=show)
        except (ValueError, FileNotFoundError) as exc:
            raise InputProblem(str(exc)) from None
    if as_json:
        echo_json({"rounds": summaries})
    sys.exit(EXIT_MET if summaries and summaries[-1]["success"] else EXIT_NOT_MET)


def _say_round(summary: dict, tuned: str) -> None:
    """One flywheel round's line: success, simulations per success, rows appended, the fine-tune."""
    sps = summary["simulations_per_success"]
    click.echo(f"round {summary['round']}: {summary['success']}/{summary['specs']} specs met "
               f"({100 * summary['success_rate']:.0f} %), "
               f"{'-' if sps is None else f'{sps:.1f}'} simulations per success, "
               f"{summary['appended']} circuit(s) appended"
               + (f", {tuned} on {summary['train_circuits']} circuits" if summary["train_circuits"] else ""))


def _transistor_flywheel(specs, rounds, dataset_path, checkpoint, n, top_k, budget, epochs, seed, out, force,
                         workers, ray_address, as_json):
    from cktflow.flow.transistor_design import MODEL_PROPOSALS
    from cktflow.flow.transistor_flywheel import flywheel_transistor
    from cktflow.technology import PdkNotInstalledError

    from pathlib import Path

    from cktflow.dataset.transistor_build import default_transistor_db

    from .design_transistor import simulator

    # refuse before anything is written: the store the round appends to must exist
    db = Path(dataset_path) if dataset_path else default_transistor_db(specs[0].pdk)
    if not db.exists():
        raise InputProblem(f"dataset {db} does not exist (build it with `cktflow dataset build --pdk "
                           f"{specs[0].pdk}`, or name one with --dataset)")
    output_folder(out, force)
    one_torch_thread()

    def show(summary):
        if not as_json:
            _say_round(summary, "predictor fine-tuned")

    with quiet_stdout(as_json), simulator(workers, ray_address, progress=False) as sim:
        try:
            summaries = flywheel_transistor(specs, rounds, out, dataset_path=db, predictor_path=checkpoint,
                                            n=n or MODEL_PROPOSALS, top_k=top_k or 2, budget=budget,
                                            finetune_epochs=epochs, seed=seed, pool=sim, progress=not as_json,
                                            on_round=show)
        except (ValueError, FileNotFoundError, PdkNotInstalledError) as exc:
            raise InputProblem(str(exc)) from None
    if as_json:
        echo_json({"rounds": summaries})
    sys.exit(EXIT_MET if summaries and summaries[-1]["success"] else EXIT_NOT_MET)
