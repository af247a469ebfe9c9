"""Shared fixtures: offline hub, a cache shared by the whole run, and a notebook runner."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


@pytest.fixture(scope="session")
def run_notebook(tmp_path_factory):
    """Execute notebooks/<stem>.ipynb with papermill and small parameters; return what it recorded."""
    import papermill

    out_dir = tmp_path_factory.mktemp("notebooks")

    def run(stem: str, **parameters) -> dict:
        results_path = out_dir / f"{stem}.json"
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{stem}.ipynb"), str(out_dir / f"{stem}.ipynb"),
            parameters={**parameters, "results_path": str(results_path)},
            cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False,
        )
        return json.loads(results_path.read_text())

    return run
