"""The code examples of docs/ are files that run, and the pages show them as they are."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"docs/python-api.md": "docs/examples/drive_the_scenario.py",
            "docs/guides/own-model-and-data.md": "docs/examples/own_model_and_data.py"}


EXPECTED = {"docs/examples/drive_the_scenario.py": "server_compute",  # what each prints
            "docs/examples/own_model_and_data.py": "-smoke-lyapunov-s1"}


@pytest.mark.parametrize("page, example", EXAMPLES.items())
def test_the_page_shows_the_example_file_verbatim(page, example):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)
    assert (ROOT / example).read_text() in blocks


@pytest.mark.ns3
@pytest.mark.parametrize("example", EXAMPLES.values())
def test_the_example_runs(ns3_binary, example):
    done = subprocess.run([sys.executable, str(ROOT / example)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert EXPECTED[example] in done.stdout
