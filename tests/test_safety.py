"""Hostile and malformed netlists are refused before anything reaches ngspice."""

import pytest

from cktflow.resources import pdk_dir
from spice_sim import UnsafeNetlistError, check_netlist

BASE = "* amp\nG1 out 0 in 0 1m\nR1 out 0 1Meg\n"


@pytest.mark.parametrize("extra, message", [
    (".control\nshell rm -rf ~\n.endc\n", "'.control' runs simulator commands"),
    (".CONTROL\nset x=1\n.ENDC\n", "'.control' runs simulator commands"),
    (".endc\n", "'.endc' ends a .control block"),
    ("*# shell touch /tmp/pwned\n", "'*#' lines are executed"),
    (".include /etc/passwd\n", "reads a file outside the PDK folder"),
    (".lib '/etc/shadow' tt\n", "reads a file outside the PDK folder"),
    (".inc ../../../../etc/hosts\n", "reads a file outside the PDK folder"),
    ("A1 [in] [out] src\n.model src filesource (file=\"/etc/passwd\")\n", "XSPICE code-model"),
    (".exec shell ls\n", "'.exec' runs simulator commands"),
    (".csparam x=1\n", "directive '.csparam' is not allowed"),
    (".if (1)\n.endif\n", "directive '.if' is not allowed"),
    ("%%% junk line\n", "is not a SPICE element"),
])
def test_hostile_lines_are_refused(extra, message):
    with pytest.raises(UnsafeNetlistError) as err:
        check_netlist(BASE + extra, source="evil.cir", allowed_dirs=(pdk_dir(),))
    assert message in str(err.value)
    assert "evil.cir:" in str(err.value)   # file and line are named


def test_line_number_is_reported():
    with pytest.raises(UnsafeNetlistError, match=r"evil.cir:4: '.control'"):
        check_netlist(BASE + ".control\n", source="evil.cir")


def test_include_inside_pdk_is_allowed(tmp_path):
    target = pdk_dir() / "ocb_behavioural.yaml"   # any file inside the PDK folder
    checked = check_netlist(BASE + f".include {target}\n", allowed_dirs=(pdk_dir(),))
    assert any(line.startswith(".include") for line in checked.lines)


def test_analysis_lines_are_dropped_and_comments_removed():
    checked = check_netlist(BASE + ".ac dec 10 1 1G\n.print ac v(out)\nC1 out 0 1p ; load\n.end\nR9 x y 1\n")
    assert checked.lines == ["G1 out 0 in 0 1m", "R1 out 0 1Meg", "C1 out 0 1p"]
    assert len(checked.dropped) == 2
    assert checked.nodes == {"in", "out", "0"}


def test_continuation_lines_are_joined():
    checked = check_netlist("* t\nR1 a\n+ b 1k\n")
    assert checked.lines == ["R1 a b 1k"] and checked.nodes == {"a", "b"}


def test_source_detection():
    checked = check_netlist(BASE + "V1 in 0 DC 0 AC 1\n")
    assert checked.has_source_at("in") and not checked.has_source_at("out")
