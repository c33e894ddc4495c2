"""One grammar for every command: -o/--out, --spec, --json, exit codes, --version, output folders."""

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cktflow.cli.common import EXIT_INTERNAL
from cktflow.cli.main import CktflowGroup
from cktflow.fsutil import MARKER
from cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEC = str(ROOT / "examples" / "spec.yaml")
MILLER = str(ROOT / "examples" / "circuits" / "two_stage_miller.json")


def _leaves(group, prefix=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), cmd


def _opts(cmd):
    return {o for p in cmd.params for o in getattr(p, "opts", [])}


WRITERS = {"export", "size", "generate", "flywheel", "train", "tune", "dataset export", "pdk characterize"}
SPEC_READERS = {"verify", "size", "generate", "flywheel"}


@pytest.mark.parametrize("name,cmd", list(_leaves(main)))
def test_the_grammar(name, cmd):
    opts = _opts(cmd)
    assert "--json" in opts, name
    if name in WRITERS:
        assert {"-o", "--out"} <= opts, name
    else:
        assert "--out" not in opts and "-o" not in opts, name
    if name in SPEC_READERS:
        assert "--spec" in opts, name


def test_old_spellings_still_work_but_are_not_shown(tmp_path):
    r = CliRunner().invoke(main, ["export", "--format", "spectre", "--output", str(tmp_path / "m.scs"), MILLER])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m.scs").is_file()
    helps = CliRunner().invoke(main, ["export", "--help"]).output
    assert "--output" not in helps and "-o, --out" in helps
    assert "--specs" not in CliRunner().invoke(main, ["flywheel", "--help"]).output


@pytest.mark.parametrize("args", [["export", "--format", "svg", MILLER], ["dataset", "export"],
                                  ["verify", MILLER], ["generate"]])
def test_a_missing_required_option_is_bad_input(args):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "Missing option" in r.output and "--output" not in r.output


def test_version_names_package_model_and_ngspice():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].startswith("cktflow ") and lines[1].startswith("model default.pt sha256 ")
    assert lines[2].startswith("ngspice ngspice-")


def test_json_is_one_document_on_stdout():
    r = subprocess_run(["verify", "--spec", SPEC, "--json", MILLER])
    assert r.returncode == 0
    assert json.loads(r.stdout)["passed"] is True


def subprocess_run(args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-c", "import cli; cli.main()", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_generate_refuses_a_users_folder(tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("precious")
    r = CliRunner().invoke(main, ["generate", "--spec", SPEC, "-o", str(tmp_path)])
    assert r.exit_code == 2 and "--force" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_export_all_marks_its_folder_and_writes_there_again(tmp_path):
    out = tmp_path / "o"
    args = ["export", "--format", "all", "-o", str(out), MILLER]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert (out / MARKER).is_file()
    assert CliRunner().invoke(main, args).exit_code == 0          # its own folder: no --force needed


def test_an_unexpected_error_exits_with_3():
    @click.group(cls=CktflowGroup)
    def group():
        pass

    @group.command()
    def boom():
        raise KeyError("a bug")

    r = CliRunner().invoke(group, ["boom"])
    assert r.exit_code == EXIT_INTERNAL
    assert "internal error: KeyError" in r.output


def test_design_commands_run_torch_on_one_thread_unless_omp_says_otherwise(monkeypatch):
    """torch's thread-per-core default made generate's proposals 24x slower beside another process."""
    import torch

    from cktflow.cli.common import one_torch_thread
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        one_torch_thread()
        assert torch.get_num_threads() == 2          # the user's setting stands
        monkeypatch.delenv("OMP_NUM_THREADS")
        one_torch_thread()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
