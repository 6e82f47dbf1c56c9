"""The source tree's own rules, as CI enforces them (docs/architecture.md,
"Layers and include rules"): every #include follows the layers
(scripts/check-layers.py), and every C file is formatted as .clang-format
says (`make format-check`).  The checker is also run on small trees made
here that break each rule, so a checker that stopped looking would fail."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECKER = os.path.join(ROOT, "scripts", "check-layers.py")


def check_layers(root):
    return subprocess.run([sys.executable, CHECKER, root], capture_output=True,
                          text=True, timeout=120)


def test_every_include_follows_the_layers():
    proc = check_layers(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 violations" in proc.stdout


def make_tree(tmp_path, files):
    for path, text in files.items():
        full = tmp_path / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    return str(tmp_path)


BASE = {
    "include/util/error.h": "",
    "include/hw/pci.h": '#include "util/error.h"\n',
    "include/migration/migration.h": '#include "hw/pci.h"\n',
    "hw/pci/pci-int.h": "",
    "hw/pci/pci.c": '#include "pci-int.h"\n#include "hw/pci.h"\n',
    "block/block.c": '#include "util/error.h"\n',
}


def test_a_clean_small_tree_passes(tmp_path):
    proc = check_layers(make_tree(tmp_path, BASE))
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("path,text,why", [
    ("hw/pci/msix.c", '#include "migration/migration.h"\n', "higher layer migration"),
    ("block/raw.c", '#include "chardev/chardev.h"\n', "same layer"),
    ("hw/virtio/virtio-pci.c", '#include "hw/pci/pci-int.h"\n', "private header"),
    ("hw/pci/msix.c", '#include "hw/pci/pci-int.h"\n', "use the bare name"),
    ("hw/pci/msix.c", '#include "nowhere.h"\n', "nowhere in the tree"),
    ("hw/virtio/virtio-internal.h", "", "-int.h"),
    ("block/pci.h", "", "same file name"),
])
def test_each_broken_rule_is_reported(tmp_path, path, text, why):
    files = dict(BASE)
    files[path] = text
    files["include/chardev/chardev.h"] = ""
    proc = check_layers(make_tree(tmp_path, files))
    assert proc.returncode == 1, proc.stdout
    assert why in proc.stdout and path in proc.stdout, proc.stdout


def test_every_c_file_is_formatted():
    if not shutil.which("clang-format"):
        pytest.fail("clang-format is missing: scripts/install-deps.sh installs it")
    proc = subprocess.run(["make", "-s", "format-check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
