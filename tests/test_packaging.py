"""The front door: pyproject, environment.yml, Makefile, CI entry and README agree with each other."""

import re
import tomllib
from pathlib import Path

import yaml

from safelora_lite.course.course_map import COURSE

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted


def test_package_uses_lower_bounds_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        assert "==" not in requirement, requirement


def test_makefile_pins_torch_cpu_wheel_first():
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_SPEC ?= torch==" in makefile
    assert makefile.index('"$(TORCH_SPEC)"') < makefile.index('-e ".[dev]"')


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_notebook_and_both_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    for _, stem, *_ in COURSE:
        if (ROOT / "notebooks" / f"{stem}.ipynb").exists():
            assert stem in readme, f"README's course map misses {stem}"


def test_make_run_names_a_course_profile_that_exists():
    import re

    from safelora_lite.course.profiles import load_profile

    run = (ROOT / "Makefile").read_text().split("\nrun:")[1].split("\n\n")[0]
    (name,) = re.findall(r"--profile (\S+)", run)
    assert load_profile(name)["notebooks"]
