"""Shared pytest configuration: hypothesis profiles and tool availability."""

import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, max_examples=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def have_aarch64_tools() -> bool:
    return bool(shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-gcc"))


# In CI (CI=true) the tools are installed by scripts/setup.sh: a missing tool must fail, not skip.
requires_aarch64 = pytest.mark.skipif(
    not have_aarch64_tools() and not os.environ.get("CI"),
    reason="qemu-aarch64 and aarch64-linux-gnu-gcc are not installed",
)
