"""constraints.txt, the versions the image and the dev virtualenv install, agrees with pyproject.toml."""

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import PROJECT


def pins() -> dict[str, str]:
    lines = (PROJECT / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line and not line.startswith("#"))
    return {canonicalize_name(name): version for name, version in pairs}


def test_every_dependency_is_pinned_inside_the_range_pyproject_allows() -> None:
    dependencies = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = pins()
    for requirement in map(Requirement, dependencies):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in constraints.txt: run make lock"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} is outside {requirement}"
