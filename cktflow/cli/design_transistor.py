"""`size` and `generate` at transistor level (a spec with `pdk:`, or --pdk): the parts of those
commands that differ from the behavioural ones. Parse, call the library, print."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from .common import EXIT_MET, EXIT_NOT_MET, InputProblem, echo_json, output_folder, quiet_stdout, sim_pool


@contextlib.contextmanager
def simulator(workers, ray_address, progress: bool):
    """The Ray pool of --workers/--ray-address, else local ngspice processes that keep the PDK's
    library loaded, one per amplifier and corner (a sizing run's simulations cost ~0.1 s each:
    Ray's start-up would not pay)."""
    from cktflow.flow.transistor import DEFAULT_TIMEOUT_S
    from cktflow.transistor.jobs import KeyedLocalSimulator
    with sim_pool(workers, ray_address, progress=False) as pool:
        if pool is not None:
            yield pool
            return
        with KeyedLocalSimulator(timeout_s=DEFAULT_TIMEOUT_S) as local:
            yield local


def _refuse_existing(paths: list[Path], force: bool) -> None:
    for p in paths:
        if p.exists() and not force:
            raise InputProblem(f"{p}: exists; cktflow does not overwrite it without --force")


def size_transistor_command(spec, circuit_path, budget, batch, margin, seed, history, out, force, workers,
                            ray_address, as_json):
    from cktflow.flow import InputError
    from cktflow.flow.transistor import conditions_of, load_transistor_design
    from cktflow.fsutil import atomic_write_text
    from cktflow.report import transistor_sizing_text
    from cktflow.sizing import SizingConfig
    from cktflow.sizing.transistor import TRANSISTOR_CONFIG, size_transistor
    from cktflow.technology import load_technology

    try:
        design = load_transistor_design(circuit_path, spec.pdk)
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    outputs = []
    if out:
        out = Path(out)
        if out.resolve() == Path(circuit_path).resolve():
            raise InputProblem(f"{out}: is the input circuit; write the sized circuit to another file")
        outputs = [out, out.with_suffix(".report.md")]
        _refuse_existing(outputs, force)
    try:
        config = SizingConfig(**{**TRANSISTOR_CONFIG.__dict__, "budget": budget, "batch": batch,
                                 "stop_margin": margin})
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    conds = conditions_of(spec, load_technology(spec.pdk), design.circuit)
    with quiet_stdout(as_json), simulator(workers, ray_address, not as_json) as sim:
        try:
            result = size_transistor(design.circuit, spec, conds, sim, config=config, seed=seed,
                                     history_path=history, progress=not as_json)
        except ValueError as exc:
            raise InputProblem(str(exc)) from None
    text = transistor_sizing_text(spec, design.circuit, result)
    if out:
        atomic_write_text(outputs[0], result.circuit.to_json(indent=1) + "\n")
        atomic_write_text(outputs[1], f"# cktflow size: {spec.name}\n\n```text\n{text}\n```\n")
    if as_json:
        echo_json({"spec": spec.to_dict(), "source": design.source,
                   "files": [str(p) for p in outputs], **result.to_dict()})
    else:
        click.echo(text)
    sys.exit(EXIT_MET if result.met else EXIT_NOT_MET)


def generate_transistor_command(spec, budget, top_k, want, seed, out, force, workers, ray_address, as_json,
                                model: dict, rank: bool = True):
    """`model`: model_candidates' options (n, checkpoint, guidance, refine). `n` also counts the stored
    circuits nearest the spec (the PDK's dataset store, when there is one). With `rank` the PDK's
    shipped predictor orders the candidates and only the best are screened up front
    (cktflow.flow.transistor_design.design_at_pdk); without, every candidate is screened."""
    from cktflow.flow.transistor_design import design_at_pdk
    from cktflow.flow.transistor_output import write_transistor_report
    from cktflow.technology import PdkNotInstalledError

    out_dir = Path(out or Path("generated") / spec.name)
    output_folder(out_dir, force)
    say = None if as_json else (lambda msg: click.echo(msg, err=True))
    with quiet_stdout(as_json), simulator(workers, ray_address, not as_json) as sim:
        try:
            result = design_at_pdk(spec, sim, **model, predictor="shipped" if rank else None, budget=budget,
                                   top_k=top_k, want=want, seed=seed, history_dir=out_dir / "sizing",
                                   progress=not as_json, on_progress=say)
        except (ValueError, PdkNotInstalledError) as exc:
            raise InputProblem(str(exc)) from None
        data = write_transistor_report(result, out_dir, {"seed": seed, "budget": budget, "top_k": top_k,
                                                         "model_proposals": model["n"], "ranked": rank,
                                                         "checkpoint": str(model["checkpoint"] or "shipped")})
    if as_json:
        echo_json({**data, "out": str(out_dir)})
    else:
        for rank, o in enumerate(result.outcomes, 1):
            # a candidate that met the spec at typical but was not verified (--want was reached) is no miss
            state = ("VERIFIED" if o.passed else "unverified" if o.report is None and o.shortfall == 0
                     else f"miss {o.shortfall:.3g}")
            margin = f"margin {o.margin:.3f}" if o.margin is not None else "screen only"
            click.echo(f"#{rank} {state:<10} {o.candidate.origin:<24} {margin}"
                       + (f"  (sized, {o.sizing.simulations} sims)" if o.sizing else ""))
        if result.verified:
            click.echo(f"{len(result.verified)} circuit(s) verified for '{spec.name}' at every condition in "
                       f"{result.simulations} simulations (+{result.verification_simulations} verification runs), "
                       f"{result.seconds:.1f} s; report: {out_dir / 'report.md'}")
        else:
            c = result.closest
            how = (f"the nearest miss ({c.candidate.origin}) misses by a normalised shortfall of {c.shortfall:.3g}"
                   if c else "nothing simulated")
            click.echo(f"no circuit met '{spec.name}' at every condition within {budget} simulations: {how}; "
                       f"report: {out_dir / 'report.md'}")
    sys.exit(EXIT_MET if result.verified else EXIT_NOT_MET)
