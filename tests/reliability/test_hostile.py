"""The hostile corpus (tests/data/hostile/cases.yaml): refused, or run to an ordinary end within
bounds, and nothing written outside the output folder. In process by default; as real `cktflow`
processes (time and memory measured) with -m slow and in bench/reliability.py."""

import pytest

from .hostile import cases, run_corpus, symlink_escape


def test_corpus_size():
    assert len(cases()) >= 30


def test_hostile_corpus_in_process():
    out = run_corpus("cli")
    assert out.ok, out.summary()


def test_symlink_out_of_the_pdk():
    out = symlink_escape()
    assert out.ok, out.summary()


@pytest.mark.slow
def test_hostile_corpus_as_processes():
    out = run_corpus("process")
    assert out.ok, out.summary()
