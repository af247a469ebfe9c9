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


LEARNER_MARK = re.compile(r"#\s*your (?:code|example|answer)")
ANSWER_NAME = re.compile(r"^answer(?:_\w+)?$")
RUN_TIME = re.compile(r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?\s*(?:s|seconds?|min|minutes?|hours?)\b")


def left_empty(value) -> bool:
    """None, or None until the learner's own names are filled in (`None if b is None else b @ a`)."""
    import ast

    def none(node):
        return isinstance(node, ast.Constant) and node.value is None

    return none(value) or (isinstance(value, ast.IfExp) and (none(value.body) or none(value.orelse)))


def given_answers(source: str) -> list[str]:
    """The learner's answers an exercise cell fills in itself: an `answer...` name, or a line marked
    `# your code` / `# your example`, assigned anything but None."""
    import ast

    lines = [line.replace("%", "pass  # %", 1).replace("!", "pass  # !", 1) if line.lstrip()[:1] in ("%", "!") else line
             for line in source.splitlines()]  # IPython magics and shell lines, as Python
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            learners = LEARNER_MARK.search(lines[node.lineno - 1]) or any(ANSWER_NAME.match(n) for n in names)
            if learners and not left_empty(node.value):
                found.append(lines[node.lineno - 1].strip())
    return found


def test_given_answers_finds_a_filled_in_exercise():
    assert given_answers("answer_1 = None  # your code\nprint(compare(answer_1, 1.0))") == []
    assert given_answers("answer_1 = 0.5\n") == ["answer_1 = 0.5"]
    assert given_answers('%matplotlib inline\nmissed = "no: absolutely not."  # your example') == ['missed = "no: absolutely not."  # your example']
    assert given_answers("worst = max(points)\nexpected = 3") == []
    assert given_answers("answer = None if b is None else b @ a") == []


def test_exercise_cells_are_left_for_the_learner(notebook):
    """An exercise cell leaves its answer as None (the check then says "not answered yet"); solutions live in lessons/solutions/."""
    path, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "code":
            given = given_answers(cell.source)
            assert not given, f"{path.name}: an exercise cell gives its answer away ({given[0]}); leave `... = None  # your code`"


def test_markdown_states_no_run_time(notebook):
    """Run times live in one place (safelora_lite/course/run_times.json, shown by notebook 00's map and README)."""
    path, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = RUN_TIME.findall(cell.source)
            assert not found, f"{path.name}: a markdown cell states a run time {found}; point to the course map instead"
