"""Keep committed notebooks clean: `python -m safelora_lite.course.notebook_tools strip notebooks/*.ipynb`.

Removes outputs, execution counts and editor metadata in place (these are the repo's own notebooks;
run it before committing).
"""

import sys

import nbformat

KEEP_METADATA = {"kernelspec", "language_info"}


def strip_notebook(path: str) -> bool:
    """Strip one notebook; return True if it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_METADATA}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    after = nbformat.writes(nb)
    if after != before:
        with open(path, "w") as f:
            f.write(after)
    return after != before


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "strip":
        print("usage: python -m safelora_lite.course.notebook_tools strip NOTEBOOK ...", file=sys.stderr)
        return 2
    changed = [p for p in argv[1:] if strip_notebook(p)]
    print(f"stripped {len(changed)} of {len(argv) - 1} notebooks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
