"""The model commands: `train` (and fine-tune) the CktGen model, `evaluate` it, `tune` its training."""

from __future__ import annotations

import sys

import click

from .common import (EXIT_MET, EXIT_NOT_MET, InputProblem, bad_input, echo_json, emit, force_option, json_option,
                     out_option, output_folder, quiet_stdout)


@click.command("train")
@click.option("--recipe", "recipe_name", default="default", show_default=True,
              help="Training recipe: default (the shipped model), no-align, no-kl (ablations), tiny.")
@click.option("--db", type=click.Path(dir_okay=False),
              help="Dataset store to train on (default: the cktflow dataset, or a regenerated Bench-101 set).")
@out_option("Output folder (default runs/RECIPE, or runs/finetune with --finetune).", folder=True)
@force_option
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
                   "docs/model.md. 0 skips it.")
@click.option("--ship", is_flag=True, help="Install the trained weights as the package's default model.")
@click.option("--finetune", is_flag=True,
              help="Continue from --checkpoint (default: the shipped model) on the dataset's current training "
                   "split instead of training from scratch (the flywheel's step; 3 epochs unless --epochs).")
@click.option("--predictor-only", is_flag=True,
              help="Only the recipe's predictor steps (training, then its on-policy rounds) on the trained "
                   "generator --checkpoint (default: the shipped model): when only what the predictor learns "
                   "changed. With --ship, installs OUT/predictor.pt beside the shipped model.")
@click.option("--usable", is_flag=True,
              help="Fine-tune --checkpoint (default: the shipped model) to propose circuits usable in feedback: "
                   "measure random circuits of the generator's family and the model's own decodes for training "
                   "conditions (test-split topologies excluded), keep the usable ones, fine-tune the generator on "
                   "them mixed with the training split and the predictor on everything measured (10 epochs "
                   "unless --epochs; 27 minutes on a busy 2-core machine); see docs/model.md.")
@click.option("--usable-draws", type=click.IntRange(0), default=None,
              help="With --usable: random circuits to measure (default 20000).")
@click.option("--usable-decodes", type=click.IntRange(0), default=None,
              help="With --usable: the model's decodes to refine and measure (default 12288).")
@click.option("--usable-thin", type=click.IntRange(0), default=None,
              help="With --usable: then this many more decodes for training conditions where the usable circuits "
                   "gathered so far are scarce (default 6144; 0 skips them).")
@click.option("--workers", type=click.IntRange(1),
              help="With --usable: simulation workers on the local Ray pool (default: one per CPU).")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="With --finetune or --usable: the model to continue from; with --predictor-only: the generator; "
                   "with --pdk --finetune: the transistor-level predictor (default: the shipped one).")
@click.option("--pdk", metavar="NAME",
              help="Train the transistor-level models of this PDK (e.g. sky130) on its dataset store (`cktflow "
                   "dataset build --pdk`; --db to name another): the performance predictor into "
                   "OUT/<pdk>_predictor.pt, measured on the store's test split (OUT/accuracy.json), then the "
                   "full-spec generator into OUT/generator/<pdk>_generator.pt (OUT/generator/generator.json). "
                   "About 18 + 4 minutes on 2 threads for 3400 circuits. With --finetune: continue the predictor "
                   "from --checkpoint (the generator is not trained then).")
@click.option("--generator/--no-generator", "with_generator", default=True, show_default=True,
              help="With --pdk: also train the full-spec generator (fine-tuned from the behavioural model).")
@click.option("--from-scratch", is_flag=True,
              help="With --pdk: train the full-spec generator from random weights instead of fine-tuning the "
                   "behavioural model (the comparison of docs/benchmarks.md).")
@json_option
def train_command(recipe_name, db, out, force, resume, seed, device, epochs, threads, with_evaluator, with_predictor,
                  onpolicy, coverage, ship, finetune, predictor_only, usable, usable_draws, usable_decodes, usable_thin,
                  workers, checkpoint, pdk, with_generator, from_scratch, as_json):
    """Train the CktGen model (with its performance predictor and evaluator network) on the
    dataset's training split.

    Writes OUT/checkpoint.pt after every epoch (model, config, optimizer, epoch), so an interrupted
    run continues with --resume; OUT/model.pt (weights only), OUT/predictor.pt and OUT/evaluator.pt
    at the end. With --finetune the predictor beside --checkpoint is fine-tuned too.
    """
    import logging
    from pathlib import Path

    if not as_json:
        logging.basicConfig(level=logging.WARNING)
    if any(v is not None for v in (usable_draws, usable_decodes, usable_thin, workers)) and not usable:
        raise InputProblem("--usable-draws, --usable-decodes, --usable-thin and --workers need --usable")
    if sum((finetune, predictor_only, usable)) > 1:
        raise InputProblem("--finetune, --predictor-only and --usable are separate runs: give one")
    if pdk is not None:
        if predictor_only or usable or resume:
            raise InputProblem("--pdk trains the transistor-level predictor: --predictor-only, --usable and --resume "
                               "do not apply")
        if from_scratch and (finetune or not with_generator):
            raise InputProblem("--from-scratch trains the full-spec generator: not with --no-generator or --finetune")
        _train_pdk(pdk, db, out, force, epochs, seed, threads, finetune, checkpoint, ship,
                   with_generator and not finetune, from_scratch, as_json)
        return
    if from_scratch:
        raise InputProblem("--from-scratch applies to --pdk's full-spec generator")
    out_dir = output_folder(out or Path("runs") / ("finetune" if finetune else "predictor" if predictor_only
                                                   else "usable" if usable else recipe_name), force)
    shipped = " (installed as the default model)" if ship else ""
    if usable:
        from cktflow.model.usable import run_usable_finetune
        sizes = {k: v for k, v in (("random_n", usable_draws), ("decodes", usable_decodes),
                                   ("thin_decodes", usable_thin)) if v is not None}
        with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
            summary = run_usable_finetune(checkpoint, out_dir, db=db, epochs=epochs or 10, seed=seed or 0,
                                          device="cpu" if device == "auto" else device, threads=threads,
                                          workers=workers, ship=ship, progress=not as_json, **sizes)
        emit(as_json, summary, f"fine-tuned {summary['source']} on {summary['usable_circuits']} usable circuits "
                               f"({summary['mixed_circuits']} with the training split) in {summary['seconds']:.0f} s; "
                               f"weights in {summary['model']}" + shipped)
        return
    if predictor_only:
        from cktflow.model.pipeline import retrain_predictor
        with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
            summary = retrain_predictor(checkpoint, out_dir, db=db, seed=seed or 0, device=device, threads=threads,
                                        ship=ship, progress=not as_json,
                                        **({} if onpolicy is None else {"onpolicy": onpolicy}))
        emit(as_json, summary, f"trained the predictor of {summary['generator']} in {summary['seconds']:.0f} s; "
                               f"weights in {summary['predictor']}" + (" (installed beside the shipped model)"
                                                                       if ship else ""))
        return
    if finetune:
        from cktflow.model.finetune import run_finetune
        with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
            summary = run_finetune(checkpoint, db=db, out_dir=out_dir, epochs=epochs or 3, seed=seed or 0,
                                   device=device, threads=threads, ship=ship, progress=not as_json)
        emit(as_json, summary, f"fine-tuned {summary['source']} for {summary['epochs']} epochs on "
                               f"{summary['train_circuits']} circuits; weights in {summary['model']}" + shipped)
        return
    from cktflow.model.pipeline import run_recipe
    with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
        summary = run_recipe(recipe_name, db=db, out_dir=out_dir, resume=resume, seed=seed, device=device,
                             epochs=epochs, threads=threads, evaluator=with_evaluator, predictor=with_predictor,
                             onpolicy=onpolicy, coverage=coverage, ship=ship, progress=not as_json)
    emit(as_json, summary, f"trained {summary['recipe']} for {summary['epochs']} epochs on {summary['train_circuits']} "
                           f"circuits in {summary['seconds_this_run']:.0f} s (generator epochs "
                           f"{summary['seconds_total']:.0f} s); weights in {summary['model']}" + shipped)


def _train_pdk(pdk, db, out, force, epochs, seed, threads, finetune, checkpoint, ship, generator, from_scratch,
               as_json):
    from pathlib import Path

    from cktflow.model.sizing_predictor import shipped_sizing_predictor
    from cktflow.model.sizing_recipe import run_sizing_recipe
    from cktflow.technology import load_technology

    with bad_input(ValueError, FileNotFoundError):
        load_technology(pdk)
    source = None
    if finetune:
        source = checkpoint or shipped_sizing_predictor(pdk)
        if source is None:
            raise InputProblem(f"--finetune: no predictor shipped for {pdk}; give --checkpoint")
    out_dir = output_folder(out or Path("runs") / f"{pdk}_predictor", force)
    with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
        summary = run_sizing_recipe(pdk, out_dir, db=db, epochs=epochs, seed=seed or 0, threads=threads,
                                    finetune_from=source, ship=ship, progress=not as_json)
    lines = [f"trained the {pdk} predictor on {summary['train_circuits']} circuits ({summary['epochs']} epochs, "
             f"{summary['seconds']:.0f} s); weights in {summary['predictor']}"
             + (f", installed as {summary['shipped']}" if ship else ""),
             f"test split: {summary['test_circuits']} circuits of {summary['test_topologies']} unseen topologies"]
    held = {r["metric"]: r for r in summary["accuracy_held_out_sizings"]}
    lines[-1] += f"; in brackets: {summary['held_out_sizings']} held-out sizings of seen topologies"
    for r in summary["accuracy"]:
        h = held.get(r["metric"], {})
        if "mae" in r:
            lines.append(f"  {r['metric']:<20} MAE {r['mae']:.3g} {r['unit']:<8} [{h.get('mae', float('nan')):.3g}]  "
                         f"within one spec scale {100 * r['within_scale']:.0f} % "
                         f"[{100 * h.get('within_scale', float('nan')):.0f} %]  "
                         f"(training mean: MAE {r['baseline_mae']:.3g})")
        else:
            lines.append(f"  {r['metric']:<20} right {100 * r['accuracy']:.0f} % "
                         f"[{100 * h.get('accuracy', float('nan')):.0f} %]  "
                         f"(training majority: {100 * r['baseline_accuracy']:.0f} %)")
    if generator:
        from cktflow.model.full_spec_training import run_generator_recipe
        with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
            g = run_generator_recipe(pdk, out_dir / "generator", db=db, seed=seed or 0, threads=threads,
                                     from_scratch=from_scratch, ship=ship, progress=not as_json)
        summary = {**summary, "generator": g}
        b, a = g["held_out_before"], g["held_out_after"]
        lines += [f"trained the {pdk} full-spec generator ({'from scratch' if from_scratch else 'from ' + g['source']}) "
                  f"on {g['train_pairs']} pairs of {g['train_topologies']} topologies ({g['epochs']} epochs, "
                  f"{g['seconds']:.0f} s); weights in {g['generator']}" + (f", installed as {g['shipped']}" if ship else ""),
                  f"  test split ({g['test_pairs']} pairs, {g['test_topologies']} unseen topologies), before -> after: "
                  f"loss {b['loss']:.2f} -> {a['loss']:.2f}, node types from the spec {100 * b['type_acc']:.0f} -> "
                  f"{100 * a['type_acc']:.0f} %, edges {100 * b['edge_acc']:.0f} -> {100 * a['edge_acc']:.0f} %, "
                  f"spec head MAE {b['head_mae']:.3f} -> {a['head_mae']:.3f}"]
    emit(as_json, summary, "\n".join(lines))


@click.command("evaluate")
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
@json_option
def evaluate_command(checkpoint, evaluator_path, db, rounds, sim_rounds, candidates, continuous_specs, seed, threads,
                     as_json):
    """Score a model on the test split: the CktGen paper's metrics beside its published row, Spec-Acc
    measured by ngspice, novelty, the retrieval baseline, and the continuous-spec protocol. Rows with
    and without guidance, best of --candidates and single, with the device values refined by the
    model's predictor.pt (when it has one) and, for comparison, unrefined."""
    import torch

    from cktflow.model.evaluate import ProtocolSettings, format_report, run_evaluation

    torch.set_num_threads(threads)
    settings = ProtocolSettings(rounds=rounds, sim_rounds=min(sim_rounds, rounds), seed=seed)
    with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
        report = run_evaluation(checkpoint, db=db, settings=settings, evaluator_path=evaluator_path,
                                candidates=candidates, continuous_specs=continuous_specs, progress=not as_json)
    emit(as_json, report, "" if as_json else format_report(report))


@click.command("tune")
@click.option("--recipe", "recipe_name", default="default", show_default=True,
              help="Training recipe whose hyper-parameters are searched (see `cktflow train --recipe`).")
@click.option("--trials", type=click.IntRange(1), default=8, show_default=True,
              help="Training runs to try (each one a whole training run).")
@click.option("--epochs", type=click.IntRange(1), help="Epochs per trial (default: the recipe's).")
@click.option("--concurrent", type=click.IntRange(1), default=1, show_default=True, help="Trials at once.")
@click.option("--limit", type=click.IntRange(2), help="Train each trial on only this many training circuits.")
@click.option("--db", type=click.Path(dir_okay=False), help="Dataset to train on (default: the built one).")
@out_option("Folder of the Tune experiment.", folder=True, default="runs/tune")
@force_option
@click.option("--name", default="cktgen-hparams", show_default=True, help="Experiment name (its folder under --out).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the searcher and the validation share.")
@click.option("--resume", is_flag=True, help="Continue the experiment in --out/--name.")
@click.option("--ray-address", help="Run the trials on this Ray cluster (or set RAY_ADDRESS).")
@json_option
def tune_command(recipe_name, trials, epochs, concurrent, limit, db, out, force, name, seed, resume, ray_address,
                 as_json):
    """Search the model's training hyper-parameters with Ray Tune (Optuna searcher, reused actors).

    Every trial trains the recipe with sampled lr, weight decay, KL and alignment weights, InfoNCE
    temperature and batch size, and is scored by its loss on a validation share of the training
    split (the test split is not touched).
    """
    from cktflow.report import table
    from cktflow.tuning import tune_training

    output_folder(out, force)
    with bad_input(ValueError, FileNotFoundError), quiet_stdout(as_json):
        result = tune_training(recipe_name=recipe_name, num_samples=trials, epochs=epochs, max_concurrent=concurrent,
                               limit=limit, db=db, out_dir=out, name=name, seed=seed, ray_address=ray_address,
                               resume=resume, verbose=not as_json)
    if as_json:
        echo_json(result)
    else:
        keys = list(result["trials"][0]["config"]) if result["trials"] else []
        rows = [[f"{t['val_loss']:.4f}" if t["val_loss"] is not None else f"error: {t['error']}"]
                + [f"{t['config'].get(k):.3g}" if isinstance(t["config"].get(k), float) else str(t["config"].get(k))
                   for k in keys] for t in sorted(result["trials"], key=lambda t: (t["val_loss"] is None, t["val_loss"] or 0))]
        click.echo(table(["val_loss", *keys], rows))
        if result["best"]:
            click.echo(f"best of {len(result['trials'])} trial(s): val_loss {result['best']['val_loss']:.4f}; "
                       f"experiment in {result['path']}")
    sys.exit(EXIT_MET if result["best"] else EXIT_NOT_MET)
