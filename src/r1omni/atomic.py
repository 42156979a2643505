"""Atomic writes: a reader (or a crash) never sees half a file or half a checkpoint folder.

Files are written beside their destination and moved into place with ``os.replace``; folders
are built under a temporary name and renamed, with a ``COMPLETE`` marker written last so that a
folder without it is recognisably unfinished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_dir", "COMPLETE_MARKER", "is_complete",
           "remove_stale_temporaries"]

COMPLETE_MARKER = "COMPLETE"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (with a COMPLETE marker inside).

    On an exception the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if path.exists():
            # Move the old folder aside first so that `path` is never missing a complete version
            # for longer than two renames.
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder finished by :func:`atomic_dir`."""
    return (Path(path) / COMPLETE_MARKER).is_file()


def remove_stale_temporaries(folder: str | os.PathLike, name_glob: str) -> list[Path]:
    """Remove what killed writes left in ``folder`` for destinations matching ``name_glob``, and return it.

    A kill skips the clean-up above, leaving ``.NAME.<random>.tmp`` (and ``..NAME.<random>.tmp.<random>.tmp``
    from an atomic write nested in one), up to a whole model copy each, under names nothing reuses. Call
    it only where no other process is writing to those destinations (a run's own folder as it starts).
    ``.NAME.old`` is kept: between :func:`atomic_dir`'s two renames it is the only complete copy.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted({*folder.glob(f".{name_glob}.*tmp"), *folder.glob(f"..{name_glob}.*tmp")})
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return stale
