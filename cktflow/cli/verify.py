"""`cktflow verify`: measure circuits or netlists with ngspice and check them against a spec."""

from __future__ import annotations

import sys

import click

from .common import (EXIT_MET, EXIT_NOT_MET, InputProblem, alias_option, echo_json, json_option, load_spec_arg,
                     quiet_stdout, spec_option)


@click.command("verify")
@spec_option()
@click.option("--sim", type=click.Choice(["ngspice"]), default="ngspice", show_default=True,
              help="Simulator that measures the circuit.")
@alias_option("--input-node", "input_net", default="in", show_default=True, aliases=("--input",),
              help="Input node of a netlist.")
@alias_option("--output-node", "output_net", default="out", show_default=True, aliases=("--output",),
              help="Output node of a netlist.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Time limit per simulation, seconds.")
@json_option
@click.argument("circuits", nargs=-1, required=True, type=click.Path(dir_okay=False))
def verify(spec_path, sim, input_net, output_net, timeout, as_json, circuits):
    """Measure CIRCUITS (circuit JSON, SPICE or Spectre .scs netlists) with ngspice and check them against a spec.

    A netlist names its input node `in` and its output node `out` (or see --input-node/--output-node);
    when no source drives the input, verify adds the testbench's AC source. Netlists are checked
    before they run: .control blocks, shell commands and includes outside the PDK folder are refused.
    """
    from cktflow.flow import InputError, load_design, verify_design
    from cktflow.report import verify_table
    from spice_sim import LocalSimulator

    spec = load_spec_arg(spec_path)
    try:
        designs = [load_design(p, input_net, output_net) for p in circuits]
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    with quiet_stdout(as_json), LocalSimulator(timeout_s=timeout) as simulator:
        reports = [verify_design(d, spec, simulator) for d in designs]
    for d in designs:
        for note in d.notes:
            click.echo(f"note: {note}", err=True)
    if as_json:
        echo_json({"spec": spec.to_dict(), "passed": all(r.passed for r in reports),
                   "results": [r.to_dict() for r in reports]})
    else:
        for r in reports:
            click.echo(verify_table(r))
            click.echo()
        n_pass = sum(r.passed for r in reports)
        click.echo(f"{n_pass} of {len(reports)} circuit(s) meet spec '{spec.name}'")
    sys.exit(EXIT_MET if all(r.passed for r in reports) else EXIT_NOT_MET)
