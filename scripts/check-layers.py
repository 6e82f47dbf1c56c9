#!/usr/bin/env python3
"""Hold every #include of the VMM to the layers of docs/architecture.md.

Layers, lowest first; a file may include headers of its own subsystem and
of any lower layer, never of a higher one or of another subsystem on the
same layer:

    0 util         util/, include/util/
    1 config       include/system/config.h: the parsed command line, plain data
    2 chardev      chardev/, include/chardev/
    2 block        block/, include/block/
    2 net          net/, include/net/ (the tap backend, vhost-net)
    3 accel        accel/kvm/, include/accel/
    4 hw           hw/*/, include/hw/ (hw's folders share one layer)
    5 migration    migration/, include/migration/
    6 monitor      monitor/, include/monitor/, the generated qapi-commands.h
    7 system       system/ (main(), the options, the board put together)

Beyond the layers:
  - a private header (one beside its .c files, not under include/) is
    included only by its bare name from its own folder: nobody reaches into
    another folder's internals;
  - private headers end in -int.h or are the folder's own name, never
    -internal.h; no two headers share a file name;
  - tests/ and bench/ may include anything (they test the internals).

Usage: scripts/check-layers.py [ROOT].  Prints one line per violation and
exits 1 when there is any.
"""

import os
import re
import subprocess
import sys

RANK = {"util": 0, "config": 1, "chardev": 2, "block": 2, "net": 2, "accel": 3,
        "hw": 4, "migration": 5, "monitor": 6, "system": 7}

# Generated headers (found through -Ibuild and -Ibuild/qapi) and their layer.
GENERATED = {"qapi-commands.h": "monitor", "config-host.h": "util"}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    """The layer of a tracked file, or None for files outside the layers."""
    if path == "include/system/config.h":
        return "config"
    parts = path.split("/")
    if parts[0] == "include":
        parts = parts[1:]
    if not parts or parts[0] not in RANK:
        return None
    return parts[0]


def check_include(root, src, inc):
    """The violation text for src including inc, or None when it may."""
    here = os.path.dirname(src)
    mine = layer_of(src)
    if "/" not in inc:
        if os.path.exists(os.path.join(root, here, inc)):
            return None                    # a private header of its own folder
        if inc in GENERATED:
            target = GENERATED[inc]
        elif os.path.exists(os.path.join(root, "include", inc)):
            return "includes %s by a bare name; use its include/ path" % inc
        else:
            return "includes %s, which is nowhere in the tree" % inc
    elif os.path.exists(os.path.join(root, "include", inc)):
        target = layer_of("include/" + inc)
    elif os.path.exists(os.path.join(root, inc)):
        if os.path.dirname(inc) == here:
            return "includes its own folder's %s by path; use the bare name" % inc
        return "reaches into another folder's private header %s" % inc
    else:
        return "includes %s, which is nowhere in the tree" % inc
    if target is None or mine is None:
        return None
    if RANK[target] > RANK[mine]:
        return "%s (layer %d) includes %s of the higher layer %s (%d)" % (
            mine, RANK[mine], inc, target, RANK[target])
    if RANK[target] == RANK[mine] and target != mine:
        return "%s includes %s of %s, a subsystem on the same layer" % (
            mine, inc, target)
    return None


def tracked(root):
    out = subprocess.run(["git", "ls-files", "*.c", "*.h"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    return [p for p in out.split() if not p.startswith(("tests/", "bench/"))
            and os.path.exists(os.path.join(root, p))]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    files = tracked(root)
    problems = []
    seen = {}
    for path in files:
        if path.endswith(".h"):
            name = os.path.basename(path)
            if name.endswith("-internal.h"):
                problems.append("%s: private headers end in -int.h" % path)
            if name in seen:
                problems.append("%s: same file name as %s" % (path, seen[name]))
            seen[name] = path
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        for m in INCLUDE_RE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            why = check_include(root, path, m.group(1))
            if why:
                problems.append("%s:%d: %s" % (path, line, why))
    for p in problems:
        print(p)
    print("check-layers: %d files, %d violations" % (len(files), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
