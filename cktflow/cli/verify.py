"""`cktflow verify`: measure circuits or netlists with ngspice and check them against a spec."""

from __future__ import annotations

import sys

import click

from .common import (EXIT_MET, EXIT_NOT_MET, InputProblem, alias_option, echo_json, json_option, load_spec_arg,
                     quiet_stdout, spec_at_pdk, spec_option)


@click.command("verify")
@spec_option()
@click.option("--sim", type=click.Choice(["ngspice"]), default="ngspice", show_default=True,
              help="Simulator that measures the circuit.")
@alias_option("--input-node", "input_net", default="in", show_default=True, aliases=("--input",),
              help="Input node of a netlist.")
@alias_option("--output-node", "output_net", default="out", show_default=True, aliases=("--output",),
              help="Output node of a netlist.")
@click.option("--pdk", "pdk", default=None, metavar="NAME",
              help="Verify at transistor level on this PDK (e.g. sky130) when the spec names none.")
@click.option("--timeout", type=float, default=None,
              help="Time limit per simulation, seconds [default: 30; 180 per condition at transistor level].")
@json_option
@click.argument("circuits", nargs=-1, required=True, type=click.Path(dir_okay=False))
def verify(spec_path, sim, input_net, output_net, pdk, timeout, as_json, circuits):
    """Measure CIRCUITS (circuit JSON, SPICE or Spectre .scs netlists) with ngspice and check them against a spec.

    A netlist names its input node `in` and its output node `out` (or see --input-node/--output-node);
    when no source drives the input, verify adds the testbench's AC source. Netlists are checked
    before they run: .control blocks, shell commands and includes outside the PDK folder are refused.

    At transistor level (the spec's `pdk:`, or --pdk), a circuit is a subcircuit with ports
    inp inn out vdd vss (a .cir/.spice file or a transistor circuit JSON) measured at every corner
    and temperature of the spec's conditions: a table per condition, the worst case, the targets.
    """
    from cktflow.flow import InputError, load_design, verify_design
    from cktflow.report import verify_table
    from spice_sim import LocalSimulator

    spec = load_spec_arg(spec_path)
    spec = spec_at_pdk(spec, pdk)
    if spec.level == "transistor":
        _verify_transistor(spec, timeout, as_json, circuits)
        return
    timeout = 30.0 if timeout is None else timeout
    try:
        designs = [load_design(p, input_net, output_net) for p in circuits]
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    with quiet_stdout(as_json), LocalSimulator(timeout_s=timeout) as simulator:
        reports = [verify_design(d, spec, simulator) for d in designs]
    for d in designs:
        for note in d.notes:
            click.echo(f"note: {note}", err=True)
    _finish(spec, reports, as_json, verify_table, "")


def _verify_transistor(spec, timeout, as_json, circuits):
    from cktflow.flow import InputError
    from cktflow.flow.transistor import DEFAULT_TIMEOUT_S, load_transistor_design, verify_transistor
    from cktflow.report import condition_table
    from spice_sim import LocalSimulator

    try:
        designs = [load_transistor_design(p, spec.pdk) for p in circuits]
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    progress = None if as_json else (lambda msg: click.echo(f"measuring {msg}", err=True))
    with quiet_stdout(as_json), LocalSimulator(timeout_s=timeout or DEFAULT_TIMEOUT_S) as simulator:
        reports = [verify_transistor(d, spec, simulator, progress) for d in designs]
    _finish(spec, reports, as_json, condition_table, " at every condition")


def _finish(spec, reports, as_json: bool, table, where: str) -> None:
    """Print the reports (JSON, or a table each and a count) and exit 0 when all pass, else 1."""
    if as_json:
        echo_json({"spec": spec.to_dict(), "passed": all(r.passed for r in reports),
                   "results": [r.to_dict() for r in reports]})
    else:
        for r in reports:
            click.echo(table(r))
            click.echo()
        n_pass = sum(r.passed for r in reports)
        click.echo(f"{n_pass} of {len(reports)} circuit(s) meet spec '{spec.name}'{where}")
    sys.exit(EXIT_MET if all(r.passed for r in reports) else EXIT_NOT_MET)
