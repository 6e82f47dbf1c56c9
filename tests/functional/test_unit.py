"""Runs every case of every C unit-test binary (tests/unit) as one pytest item."""
import glob
import os
import subprocess

import pytest

from harness import BUILD


def _cases():
    for binary in sorted(glob.glob(os.path.join(BUILD, "tests", "unit", "test-*"))):
        if binary.endswith((".o", ".d")):
            continue
        names = subprocess.run([binary, "--list"], capture_output=True, text=True,
                               check=True).stdout.split()
        for name in names:
            yield pytest.param(binary, name, id=f"{os.path.basename(binary)}::{name}")


@pytest.mark.parametrize("binary,name", list(_cases()))
def test_unit(binary, name):
    proc = subprocess.run([binary, name], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok: {name}" in proc.stdout
