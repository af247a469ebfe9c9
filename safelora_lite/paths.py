"""Where things live: the repository, the shipped data and the model cache."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The checkout this package was installed from (editable install), or None."""
    candidate = PACKAGE_DIR.parent
    return candidate if (candidate / "pyproject.toml").exists() else None


def checkout_dir() -> Path:
    """The checkout (editable install), else the current folder: where data/, notebooks/, configs/ are."""
    root = repo_root()
    return root if root is not None else Path.cwd()


def data_dir() -> Path:
    """The shipped `data/` folder (override with $SAFELORA_LITE_DATA)."""
    if "SAFELORA_LITE_DATA" in os.environ:
        return Path(os.environ["SAFELORA_LITE_DATA"])
    return checkout_dir() / "data"


def cache_dir() -> Path:
    """Cache for built toy models and adapters (override with $SAFELORA_LITE_CACHE)."""
    if "SAFELORA_LITE_CACHE" in os.environ:
        path = Path(os.environ["SAFELORA_LITE_CACHE"])
    else:
        root = repo_root()
        path = root / "build" / "cache" if root is not None else Path.home() / ".cache" / "safelora_lite"
    path.mkdir(parents=True, exist_ok=True)
    return path
