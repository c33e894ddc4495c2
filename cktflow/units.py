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
    elif unit and ("/" in unit or unit == "um2"):
        value = _parse_compound(str(text), unit)
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


#: How a compound unit may be written after the number: spellings of the unit itself (no
#: prefix allowed on it), or "numerator/denominator" with an SI prefix on either side.
_AREA_SPELLINGS = ("um2", "um^2", "µm2", "µm²", "um²")
_DENOMINATORS = {"V/s": {"s": "s"}, "V/sqrt(Hz)": {"sqrt(Hz)": "", "rtHz": "", "√Hz": ""}}
_COMPOUND = re.compile(rf"^\s*({_NUMBER})\s*(.*?)\s*$")


def _parse_compound(text: str, unit: str) -> float:
    """A value of a compound unit: "5V/us" (V/s), "10nV/rtHz" (V/sqrt(Hz)), "120um2" (um2)."""
    m = _COMPOUND.match(text)
    if not m:
        raise UnitError(f"cannot read {text!r} as a number with an optional SI prefix and unit")
    number, rest = float(m.group(1)), m.group(2)
    if unit == "um2":
        if rest and rest not in _AREA_SPELLINGS:
            raise UnitError(f"{text!r}: unit '{rest}' does not fit, expected 'um2'")
        value = number
    elif not rest:
        value = number
    elif len(rest) == 1 and rest in _SI_PREFIX:          # "5u": a bare prefix
        value = number * _SI_PREFIX[rest]
    else:
        num_unit = unit.split("/")[0]
        head, sep, den = rest.partition("/")
        pre = head[:-len(num_unit)] if head.endswith(num_unit) else None
        value = None
        if sep and pre is not None and pre in _SI_PREFIX:
            for spelling, base in _DENOMINATORS[unit].items():
                dpre = den[:-len(spelling)] if den.endswith(spelling) else None
                if dpre is not None and (dpre in _SI_PREFIX if base else dpre == ""):
                    value = number * _SI_PREFIX[pre] / _SI_PREFIX[dpre]
                    break
        if value is None:
            spellings = ", ".join(f"{num_unit}/{d}" for d in _DENOMINATORS[unit])
            raise UnitError(f"{text!r}: unit '{rest}' does not fit, expected {spellings} (with SI prefixes)")
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
    if unit == "V/s" and math.isfinite(value):          # designers read slew rates in V/us
        return f"{value / 1e6:.{digits}g}{sep}V/us"
    if unit == "um2":
        return f"{value:.{digits}g}{sep}um2"
    if unit == "V/sqrt(Hz)":
        unit = "V/√Hz"
    if unit in ("dB", "deg") and abs(value) < 5e-4:      # e.g. a peaking of 3e-8 dB reads as none
        return f"0 {unit}"
    if value == 0 or not math.isfinite(value) or unit in ("dB", "deg"):
        return f"{value:.{digits}g} {unit}".strip()
    mag = abs(value)
    for scale, prefix in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"),
                          (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")]:
        if mag >= scale * (1 - 1e-12):
            return f"{value / scale:.{digits}g}{sep}{prefix}{unit}".strip()
    return f"{value:.{digits}g} {unit}".strip()
