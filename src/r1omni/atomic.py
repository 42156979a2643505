"""Atomic writes: a reader (or a crash) never sees half a file or half a checkpoint folder.

Files are written beside their destination and moved into place with ``os.replace``; folders
are built under a temporary name and renamed, with a ``COMPLETE`` marker written last so that a
folder without it is recognisably unfinished.

Both are created with the permissions the process's umask allows (as ``open`` and ``mkdir`` would),
not the private 0600 / 0700 of :mod:`tempfile`: a model saved by the trainer must be readable by a
server running under another account when the umask says so. A write the system refuses (disk full,
I/O error, read-only disk) is raised as :class:`OSError` naming the destination, also when the
library doing the writing reports it otherwise (safetensors: ``SafetensorError ... (os error 28)``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_dir", "COMPLETE_MARKER", "is_complete",
           "remove_stale_temporaries", "system_write_error"]

COMPLETE_MARKER = "COMPLETE"
# Write failures that are the system's, not the caller's: reported against the destination.
_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})
_OS_ERROR_IN_TEXT = re.compile(r"\(os error (\d+)\)")
_NEARLY_FULL_BYTES = 1 << 20


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (setting it, even for an
    instant, races with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def system_write_error(err: BaseException, path: str | os.PathLike) -> OSError | None:
    """``err`` as an :class:`OSError` naming ``path`` when it is the system refusing a write (disk full,
    quota, I/O error, read-only disk), else None. Rust-backed writers (safetensors) put the errno in
    their message as "(os error N)" instead of raising an OSError; torch's writer loses it altogether
    ("PytorchStreamWriter failed writing file ..."), so a RuntimeError while the disk holding ``path``
    has under 1 MiB free is taken for a full disk."""
    if isinstance(err, OSError):
        code = err.errno
    else:
        found = _OS_ERROR_IN_TEXT.search(str(err))
        code = int(found.group(1)) if found else None
        if code is None and isinstance(err, RuntimeError) and _nearly_full(Path(path)):
            code = errno.ENOSPC
    if code not in _SYSTEM_ERRNOS:
        return None
    return OSError(code, os.strerror(code), os.fspath(path))


def _nearly_full(path: Path) -> bool:
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    try:
        return existing is not None and shutil.disk_usage(existing).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _refuse_folder(path: Path) -> None:
    if path.is_dir():
        raise OSError(errno.EISDIR, "is a folder; a file name was expected", os.fspath(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    _refuse_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if (named := system_write_error(err, path)) is not None:
            raise named from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (with a COMPLETE marker inside).

    On an exception the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OSError(errno.ENOTDIR, "exists and is not a folder", os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
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
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if (named := system_write_error(err, path)) is not None:
            raise named from err
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
