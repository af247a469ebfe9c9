"""Course profiles: configs/course/<name>.json holds the parameters that differ from the notebooks' defaults, with why."""

import json
from pathlib import Path

from safelora_lite.errors import InputError
from safelora_lite.paths import checkout_dir


def profile_dir() -> Path:
    return checkout_dir() / "configs" / "course"


def load_profile(name: str) -> dict:
    """A course profile by name (configs/course/<name>.json) or path: {"note", "notebooks": {stem: {param: value}}}."""
    path = Path(name) if name.endswith(".json") else profile_dir() / f"{name}.json"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(profile_dir().glob("*.json"))) or "none found"
        raise InputError(f"no course profile {name!r}.", f"use one of: {known}.")
    profile = json.loads(path.read_text())
    profile["name"] = path.stem
    return profile
