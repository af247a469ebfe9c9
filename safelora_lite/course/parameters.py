"""A notebook's papermill parameters: the names its `parameters` cell declares, their defaults, values from text."""

import ast
from pathlib import Path


def parse_value(text: str):
    """papermill-style parameter values: Python literals where they parse, strings otherwise."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def default_parameters(notebook: Path) -> dict:
    """The values of a notebook's `parameters` cell."""
    import papermill

    return {name: parse_value(p["default"]) for name, p in papermill.inspect_notebook(str(notebook)).items()}
