"""Runs every case of every C unit-test binary (tests/unit) as one pytest
item; under DV_SANITIZED=1 the ASan+UBSan builds, leaks checked too."""
import glob
import os
import subprocess

import pytest

from harness import SANITIZED, TOOLS


def _cases():
    for binary in sorted(glob.glob(os.path.join(TOOLS, "tests", "unit", "test-*"))):
        if binary.endswith((".o", ".d")):
            continue
        names = subprocess.run([binary, "--list"], capture_output=True, text=True,
                               check=True).stdout.split()
        for name in names:
            yield pytest.param(binary, name, id=f"{os.path.basename(binary)}::{name}")


def test_every_unit_binary_is_built():
    sources = glob.glob(os.path.join(os.path.dirname(__file__), "..", "unit", "test-*.c"))
    missing = [os.path.basename(src)[:-2] for src in sources
               if not os.path.exists(os.path.join(TOOLS, "tests", "unit",
                                                  os.path.basename(src)[:-2]))]
    assert not missing, f"not built in {TOOLS}: {missing}"


@pytest.mark.parametrize("binary,name", list(_cases()))
def test_unit(binary, name):
    env = dict(os.environ)
    if SANITIZED:
        env["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=86"
    proc = subprocess.run([binary, name], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok: {name}" in proc.stdout
