"""The Bode plot helper writes a real PNG and refuses malformed input."""

import numpy as np
import pytest

from cktflow.export.bode import plot_bode


def _two_pole():
    f = np.logspace(0, 11, 1101)
    s = 2j * np.pi * f
    return f, -1e4 / ((1 + s / 1e3) * (1 + s / 1e8))


def test_writes_png(tmp_path):
    f, h = _two_pole()
    out = plot_bode(f, h, tmp_path / "sub" / "bode.png", title="two-pole")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_rejects_mismatched_arrays(tmp_path):
    f, h = _two_pole()
    with pytest.raises(ValueError):
        plot_bode(f, h[:-1], tmp_path / "x.png")
