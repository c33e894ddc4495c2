"""SI values: parse "100MHz", "2p", "60dB", "1Meg"; format values for SPICE netlists and people.

One parser and one formatter for the whole project. In spec files prefixes follow SI (M = mega,
m = milli, "Meg" accepted too); in SPICE output mega is written "Meg", because SPICE reads M as milli.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_si", "format_spice", "format_si", "UnitError"]

_SI_PREFIX = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "m": 1e-3, "": 1.0,
              "k": 1e3, "K": 1e3, "M": 1e6, "Meg": 1e6, "meg": 1e6, "G": 1e9, "T": 1e12}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_PATTERN = re.compile(rf"^\s*({_NUMBER})\s*(Meg|meg|[fpnuµmkKMGT]?)\s*([A-Za-z°%]*)\s*$")


class UnitError(ValueError):
    pass


def parse_si(text, unit: str | None = None) -> float:
    """Parse a number with optional SI prefix and unit. `unit` is the only unit allowed (e.g. "Hz").

    >>> parse_si("100MHz", "Hz"), parse_si("2p"), parse_si("60dB", "dB")
    (100000000.0, 2e-12, 60.0)
    """
    if isinstance(text, bool):
        raise UnitError(f"expected a number, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _PATTERN.match(str(text))
        if not m:
            raise UnitError(f"cannot read {text!r} as a number with an optional SI prefix and unit")
        number, prefix, suffix = m.groups()
        # "m" alone before a unit-less end, or "dB"/"deg" starting with a letter that is also a
        # prefix: decide by the expected unit first ("60dB" is 60 dB, not 60 deci-B).
        if unit and prefix + suffix == unit:
            prefix, suffix = "", unit
        elif unit and suffix and suffix != unit:
            raise UnitError(f"{text!r}: unit '{suffix}' does not fit, expected '{unit}'")
        elif not unit and suffix:
            raise UnitError(f"{text!r}: unexpected unit '{suffix}'")
        value = float(number) * _SI_PREFIX[prefix]
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is not a finite number")
    return value


_SPICE_PREFIX = [(1e12, "T"), (1e9, "G"), (1e6, "Meg"), (1e3, "k"), (1.0, ""), (1e-3, "m"),
                 (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")]


def format_spice(value: float) -> str:
    """Exact (15 significant digits) SPICE number with an engineering suffix, e.g. 1e6 -> "1Meg"."""
    if value == 0:
        return "0"
    mag = abs(value)
    for scale, suffix in _SPICE_PREFIX:
        if mag >= scale * (1 - 1e-12):
            return f"{value / scale:.15g}{suffix}"
    return f"{value:.15g}"


def format_si(value: float | None, unit: str = "", digits: int = 4, sep: str = " ") -> str:
    """Short human-readable form, e.g. 1.5915e8 Hz -> "159.2 MHz" (sep="" gives "159.2MHz")."""
    if value is None:
        return "none"
    if unit == "bool" or isinstance(value, bool):
        return "true" if value else "false"
    if unit == "%" and math.isfinite(value):
        return f"{value:.2f} %"
    if value == 0 or not math.isfinite(value) or unit in ("dB", "deg"):
        return f"{value:.{digits}g} {unit}".strip()
    mag = abs(value)
    for scale, prefix in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"),
                          (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")]:
        if mag >= scale * (1 - 1e-12):
            return f"{value / scale:.{digits}g}{sep}{prefix}{unit}".strip()
    return f"{value:.{digits}g} {unit}".strip()
