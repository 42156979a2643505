"""Print how the running environment differs from the lock file: the drift `make test-latest` shows.

Usage: python tools/lock_drift.py requirements.lock
Compares every `name==version` pin of the lock (its `--hash` options, if any, are not read) with the
version installed here; prints one line
per package whose version differs, is missing here, or is installed here but not locked (the
project itself and torch, which is installed before the lock, are left out). Exit status 0.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

IGNORED = {"r1omni", "torch", "pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.split()[0].partition("==")  # the pin; --hash=... options follow
        if not sep:
            raise SystemExit(f"{path}:{number}: expected name==version, got {line!r}")
        pins[canonical(name)] = version.strip()
    return pins


def main(lock_path: str) -> int:
    locked = read_lock(Path(lock_path))
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    rows = []
    for name in sorted((set(locked) | set(installed)) - IGNORED):
        old, new = locked.get(name), installed.get(name)
        if old != new:
            rows.append(f"  {name}: {old or 'not locked'} -> {new or 'not installed'}")
    if rows:
        print(f"{len(rows)} package(s) differ from {lock_path} (locked -> installed here):")
        print("\n".join(rows))
    else:
        print(f"every package matches {lock_path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1]))
