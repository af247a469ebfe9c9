"""Each notebook's last cell records its headline figures as JSON; tests and the course report read them."""

import json
import math
import os
import tempfile
from pathlib import Path


def _clean(value):
    """Make a value JSON-friendly: tensors and numpy scalars to Python, NaN to None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(data, path: str | os.PathLike) -> Path:
    """Write JSON to `path` through a temporary file and a rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(data), f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def record_results(stem: str, results: dict, path: str | os.PathLike | None = None) -> Path:
    """Save a notebook's headline figures; default path `results/<stem>.json` beside the notebook."""
    target = Path(path) if path else Path("results") / f"{stem}.json"
    written = write_json_atomic({"notebook": stem, **results}, target)
    print(f"recorded {len(results)} result fields to {written}")
    return written
