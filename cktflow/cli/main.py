"""The `cktflow` command group: every command of the package, the version, the exit codes."""

from __future__ import annotations

import traceback

import click

from .common import EXIT_CODES_HELP, InternalProblem
from .dataset import dataset_group
from .design import flywheel_command, generate_command, size_command
from .export import export_command
from .model import evaluate_command, train_command, tune_command
from .pdk import pdk
from .verify import verify


def version_lines() -> list[str]:
    """The package version, the shipped model's hash and the ngspice cktflow simulates with."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from cktflow.resources import weights_dir

    try:
        pkg = version("cktflow")
    except PackageNotFoundError:
        pkg = "unknown (not installed)"
    weights = weights_dir() / "default.pt"
    model = (f"{weights.name} sha256 {hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}"
             if weights.is_file() else f"missing ({weights})")
    try:
        from cktflow.simulate import simulator_version
        ngspice = simulator_version()
    except Exception as exc:          # no shared library: the version still prints
        ngspice = f"not available ({exc})"
    return [f"cktflow {pkg}", f"model {model}", f"ngspice {ngspice}"]


def _print_version(ctx, _param, value):
    if not value or ctx.resilient_parsing:
        return
    for line in version_lines():
        click.echo(line)
    ctx.exit(0)


class CktflowGroup(click.Group):
    """A click group whose unexpected errors exit with code 3 (after the traceback on stderr)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            traceback.print_exc()
            raise InternalProblem(f"internal error: {type(exc).__name__}: {exc} (traceback above)") from None


@click.group(cls=CktflowGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the cktflow version, the shipped model's hash and the ngspice version, and exit.")
def main():
    """cktflow: analog op-amp circuits from a specification, with ngspice in the loop.

    Every command that writes takes -o/--out, every command that reads a spec takes --spec, and
    --json prints one JSON document on stdout and nothing else; progress and logs go to stderr.
    """


for _command in (verify, export_command, size_command, generate_command, flywheel_command, train_command,
                 evaluate_command, tune_command, dataset_group, pdk):
    main.add_command(_command)
