"""Output safety (tests/reliability/output_safety.py): no user file overwritten or deleted without
--force, atomic writes under SIGKILL. `generate` runs the model, so it is in the slow set."""

import pytest

from . import output_safety


def test_export_refuses_and_keeps_user_files():
    out = output_safety.folder_refusals(with_generate=False)
    assert out.ok, out.summary()


def test_atomic_write_killed():
    out = output_safety.atomic_kills(2)
    assert out.ok, out.summary()


@pytest.mark.slow
def test_generate_refuses_and_keeps_user_files():
    out = output_safety.folder_refusals(with_generate=True)
    assert out.ok, out.summary()
