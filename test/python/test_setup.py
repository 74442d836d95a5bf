"""The set-up on a stock Debian 12 machine: nothing installed into a Python that refuses it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"
DEBIAN_PYTHON = Path("/usr/bin/python3")


def _externally_managed(python: Path) -> bool:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True, text=True, check=True,
    )
    return (Path(out.stdout.strip()) / "EXTERNALLY-MANAGED").exists()


def test_every_pip_install_of_the_setup_goes_into_the_virtual_environment():
    script = SETUP.read_text()
    pip_lines = [line for line in script.splitlines() if re.search(r"\bpip\b", line)
                 and not line.lstrip().startswith("#")]
    assert pip_lines, "the set-up installs the package with pip"
    for line in pip_lines:
        assert "$venv/bin/python" in line or '"${pip[@]}"' in line, line
    assert '"$python" -m venv "$venv"' in script
    assert "python3-venv" in script


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no Debian system Python here")
def test_the_tests_run_in_a_venv_made_from_the_debian_python_that_refuses_global_installs():
    """What a newcomer meets: Debian's Python refuses `pip install` (PEP 668); the set-up made
    the environment these tests run in from that very interpreter."""
    if not os.environ.get("CI"):
        pytest.skip("checked in CI, where scripts/setup.sh made the environment")
    assert sys.prefix != sys.base_prefix, "the tests run inside a virtual environment"
    config = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    home = re.search(r"^home\s*=\s*(.+)$", config, re.M)
    assert home and Path(home.group(1).strip()) == DEBIAN_PYTHON.parent, config
    if _externally_managed(DEBIAN_PYTHON):
        refused = subprocess.run(
            [str(DEBIAN_PYTHON), "-m", "pip", "install", "--dry-run", "--no-index", "six"],
            capture_output=True, text=True,
        )
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        assert "externally-managed-environment" in said or "No module named pip" in said, said
