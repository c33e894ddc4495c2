"""docs/cli.md is generated from the click commands; it must be current."""

from cktflow.cli.docs import DOC_PATH, SPEC_DOC_PATH, render_markdown, render_spec_doc


def test_docs_cli_md_is_current():
    assert DOC_PATH.is_file(), "docs/cli.md is missing: run `python -m cktflow.cli.docs`"
    assert DOC_PATH.read_text() == render_markdown(), "docs/cli.md is stale: run `python -m cktflow.cli.docs`"


def test_every_command_is_documented_and_hidden_spellings_are_not():
    page = render_markdown()
    for command in ("verify", "export", "size", "generate", "flywheel", "train", "evaluate", "tune",
                    "dataset build", "dataset stats", "dataset export", "dataset import"):
        assert f"## cktflow {command}\n" in page, command
    helps = "".join(part.split("```")[0] for part in page.split("```text")[1:])      # the --help texts
    assert "--specs" not in helps and "--output " not in helps and "--input " not in helps


def test_the_metric_tables_of_docs_spec_md_are_the_registry():
    text = SPEC_DOC_PATH.read_text()
    assert text == render_spec_doc(text), "docs/spec.md's metric tables are stale: run `python -m cktflow.cli.docs`"
    from spice_sim.metrics import REGISTRY
    blocks = "".join(part.split("<!-- /metrics -->")[0] for part in text.split("<!-- metrics:")[1:])
    for name in REGISTRY:       # every registered metric is defined in the docs, once
        assert blocks.count(f"| `{name}` |") == 1, name
