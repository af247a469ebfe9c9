"""Every committed notebook follows the course conventions and carries no outputs."""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


def test_stored_without_outputs(notebook):
    path, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs (make strip)"


def test_kernelspec_is_python3(notebook):
    _, nb = notebook
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_title_install_parameters_layout(notebook):
    path, nb = notebook
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "first cell: an H1 title"
    assert "import safelora_lite" in cells[1].source and "pip install" in cells[1].source, "second cell: install cell"
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is cells[2], "third cell: the one `parameters` cell"
    assert re.search(r"^device = \"auto\"", tagged[0].source, re.M)
    assert re.search(r"^results_path = None", tagged[0].source, re.M)
    assert "record_results(" in cells[-1].source and path.stem in cells[-1].source, "last cell records results"


def test_no_literal_cuda(notebook):
    path, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert '"cuda"' not in cell.source and "'cuda'" not in cell.source, f"{path.name}: use sl.pick_device"


def test_papermill_sees_every_parameter(notebook):
    """papermill (and `safelora-lite course -p`) must parse every knob of the parameters cell."""
    import ast

    import papermill

    path, nb = notebook
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {t.id for n in ast.parse(cell.source).body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    missing = names - set(papermill.inspect_notebook(str(path)))
    assert not missing, f"{path.name}: papermill cannot parse {sorted(missing)} (no '=' in a parameter's comment)"
