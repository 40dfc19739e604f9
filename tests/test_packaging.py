"""What the set-up files promise stays consistent (conda cannot be solved on these machines)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.fullmatch(r"\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)\s*", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_every_dependency_is_pinned_exactly():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = meta["dependencies"] + [d for ds in meta["optional-dependencies"].values() for d in ds]
    assert deps and all("==" in d for d in deps), [d for d in deps if "==" not in d]


def test_environment_yml_pins_what_pyproject_pins():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = meta["dependencies"] + [d for ds in meta["optional-dependencies"].values() for d in ds]
    env = (ROOT / "environment.yml").read_text().splitlines()
    pip_section = env[env.index("  - pip:") + 1:]
    assert _pins(pip_section) == _pins(deps)


def test_constraints_agree_with_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = _pins(meta["dependencies"] + meta["optional-dependencies"]["dev"])
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in deps.items():
        assert constraints.get(name) == version, f"{name}: run `make constraints`"


def test_ns3_comes_from_the_pinned_wheel():
    assert _pins((ROOT / "ns3-requirements.txt").read_text().splitlines()) == {
        "ns3": "3.44.post0"}
