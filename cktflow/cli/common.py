"""What every command shares: the exit codes, the bad-input exception, the options of the one CLI
grammar (`--spec`, `-o/--out`, `--json`, `--force`, the Ray pool), and the argument loaders that turn
library errors into bad input.

The grammar: a command that writes takes `-o/--out`; a command that reads a spec takes `--spec`;
`--json` prints one JSON document on stdout and nothing else; progress and logs go to stderr.
Spellings of an earlier release stay accepted as hidden aliases (`alias_option`).
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

#: Exit codes, the same for every command (documented once, in `cktflow --help`).
EXIT_MET = 0
EXIT_NOT_MET = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

EXIT_CODES_HELP = ("Exit codes: 0 done (every target met), 1 a target not met, 2 bad input (a usage "
                   "error, an unreadable or invalid file, an output folder cktflow may not write into), "
                   "3 an internal error (a bug or a failed service; the traceback goes to stderr).")


class InputProblem(click.ClickException):
    """Bad input: exit code 2 and a message that names the file, line and field."""
    exit_code = EXIT_BAD_INPUT


class InternalProblem(click.ClickException):
    """Not the user's fault: a bug, or a service (Ray, ngspice) that failed; exit code 3."""
    exit_code = EXIT_INTERNAL


class AliasOption(click.Option):
    """An option that also answers to older spellings, which its help does not show."""

    def __init__(self, param_decls, *, aliases=(), **kwargs):
        super().__init__(list(param_decls) + list(aliases), **kwargs)
        self.aliases = tuple(aliases)

    @contextlib.contextmanager
    def _shown_opts(self):
        saved, self.opts = self.opts, [o for o in self.opts if o not in self.aliases]
        try:
            yield
        finally:
            self.opts = saved

    def get_help_record(self, ctx):
        with self._shown_opts():
            return super().get_help_record(ctx)

    def get_error_hint(self, ctx):
        with self._shown_opts():
            return super().get_error_hint(ctx)


def alias_option(*param_decls, aliases=(), **kwargs):
    """click.option with hidden older spellings (`aliases`); always give the parameter name."""
    return click.option(*param_decls, cls=AliasOption, aliases=aliases, **kwargs)


def spec_option(help="Spec YAML with the targets (see examples/spec.yaml and docs/spec.md).", aliases=()):
    return alias_option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False), help=help,
                        aliases=aliases)


def out_option(help, *, folder: bool, required: bool = False, default=None, aliases=()):
    """-o/--out: the file or folder a command writes."""
    kind = click.Path(file_okay=not folder, dir_okay=folder) if folder is not None else click.Path()
    # no default at all rather than default=None: click takes an explicit None as a value given
    extra = {} if default is None else {"default": default, "show_default": True}
    return alias_option("-o", "--out", "out", type=kind, required=required, help=help, aliases=aliases, **extra)



force_option = click.option("--force", is_flag=True,
                            help="Write into the output folder even though it holds files cktflow did not write.")

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout and nothing else (progress off).")


def output_folder(path, force: bool):
    """Claim an output folder (cktflow.fsutil.claim_output_dir); a refusal is bad input."""
    from cktflow.fsutil import OutputFolderError, claim_output_dir
    try:
        return claim_output_dir(path, force=force)
    except OutputFolderError as exc:
        raise InputProblem(str(exc)) from None


@contextlib.contextmanager
def quiet_stdout(active: bool):
    """With --json: whatever the library or a service prints goes to stderr, so stdout carries the
    one JSON document alone."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def bad_input(*kinds: type[BaseException]):
    """Library errors of these kinds (default ValueError) raised inside the block are bad input (exit 2)."""
    try:
        yield
    except kinds or (ValueError,) as exc:
        raise InputProblem(str(exc)) from None


def one_torch_thread() -> None:
    """One torch thread for the model's inference in the design commands, unless OMP_NUM_THREADS says
    otherwise. torch's default of a thread per core collapses when anything else uses the cores (its
    threads spin waiting for each other): measured on 2 cores beside a training run, the proposals of
    `generate -n 8` took 133 s with the default and 5.5 s with one thread."""
    if "OMP_NUM_THREADS" not in os.environ:
        import torch
        torch.set_num_threads(1)


def emit(as_json: bool, data, text: str) -> None:
    """A command's result: the JSON document with --json, else the text."""
    if as_json:
        echo_json(data)
    else:
        click.echo(text)


def load_spec_arg(path):
    from cktflow.spec import SpecError, load_spec
    try:
        return load_spec(path)
    except SpecError as exc:
        raise InputProblem(str(exc)) from None


def spec_at_pdk(spec, pdk):
    """The spec at --pdk: a transistor PDK moves a behavioural spec to transistor level."""
    from cktflow.spec import SpecError
    from cktflow.technology import load_technology
    if pdk is None:
        return spec
    try:
        tech = load_technology(pdk)
    except FileNotFoundError as exc:
        raise InputProblem(f"--pdk: {exc}") from None
    if tech.kind != "transistor":
        if spec.level == "transistor":
            raise InputProblem(f"--pdk {pdk}: {spec.source} is a transistor-level spec (pdk: {spec.pdk})")
        return spec
    if spec.pdk not in (None, tech.name):
        raise InputProblem(f"--pdk {pdk}: {spec.source} names another PDK (pdk: {spec.pdk})")
    try:
        return spec.with_pdk(tech.name)
    except SpecError as exc:
        raise InputProblem(str(exc)) from None


def circuit_arg(path, purpose: str):
    """The Circuit in a circuit JSON file; bad input or a netlist is an InputProblem."""
    from cktflow.flow import InputError, load_design
    try:
        design = load_design(path)
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    if design.circuit is None:
        raise InputProblem(f"{path}: {purpose} needs a circuit JSON (the cktflow IR), not a netlist")
    return design.circuit


def checkpoint_arg(checkpoint):
    """A --checkpoint the user named must exist (None: the shipped model)."""
    from pathlib import Path
    if checkpoint and not Path(checkpoint).is_file():
        raise InputProblem(f"{checkpoint}: no such checkpoint file")


def pool_options(command):
    """--workers/--ray-address of the commands that can simulate on a Ray pool (see `sim_pool`)."""
    command = click.option("--ray-address", help="Simulate on this Ray cluster (or set RAY_ADDRESS).")(command)
    return click.option("--workers", type=click.IntRange(1),
                        help="Simulate on a local Ray pool of this many workers.")(command)


@contextlib.contextmanager
def sim_pool(workers, ray_address, progress: bool):
    """The Ray pool --workers/--ray-address ask for, closed afterwards; None (simulate locally) without them.

    The pool starts Ray on its first map, as before; SimPool's own `with` would start it at once.
    """
    if not (workers or ray_address):
        yield None
        return
    from cktflow.simulate import open_pool
    from spice_sim.pool import ClusterLost
    pool = open_pool(ray_address=ray_address, num_workers=workers, progress=progress)
    try:
        yield pool
    except ClusterLost as exc:          # the head died mid-run: a message, not a traceback
        raise InternalProblem(str(exc)) from None
    except ConnectionError as exc:      # Ray refused to let us join (e.g. the authentication token)
        raise InputProblem(f"cannot join the Ray cluster: {exc}") from None
    finally:
        pool.close()


def echo_json(data) -> None:
    """The one JSON document of --json (cktflow.flow.dumps: numpy values and paths included)."""
    from cktflow.flow import dumps
    click.echo(dumps(data))
