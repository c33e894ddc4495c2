"""SVG schematic: well-formed XML that names every element, its value and every net."""

import io
import xml.etree.ElementTree as ET

import pytest

from cktflow.export import svg
from cktflow.export.elements import circuit_elements
from export_helpers import varied_circuits

NS = "{http://www.w3.org/2000/svg}"
CIRCUITS = varied_circuits(10, first_seed=3000)


@pytest.mark.parametrize("k", range(len(CIRCUITS)))
def test_well_formed_and_names_every_element(k):
    c = CIRCUITS[k]
    buf = io.StringIO()
    svg.write(c, buf, title=f"circuit <{k}> & co")
    root = ET.fromstring(buf.getvalue())          # raises on malformed XML
    assert root.tag == NS + "svg"
    groups = {g.get("id"): g for g in root.iter(NS + "g") if g.get("class") == "element"}
    texts = [t.text for t in root.iter(NS + "text")]
    elements = circuit_elements(c)
    assert set(groups) == {e.name for e in elements}
    for e in elements:
        shown = [t.text for t in groups[e.name].iter(NS + "text")]
        assert e.name in shown
        assert groups[e.name].find(NS + "title") is not None
    nets = {n for e in elements for n in e.nets if n != "0" and not n.startswith("x")}
    assert nets <= set(texts)
    assert f"circuit <{k}> & co" in texts


def test_feedback_branch_is_mirrored():
    c = next(c for c in varied_circuits(40, first_seed=3100)
             if any(n.kind.feedback and n.pos >= 5 for n in c.nodes))
    buf = io.StringIO()
    svg.write(c, buf)
    assert "scale(-1,1)" in buf.getvalue()
