"""Atomic writes: permissions follow the umask, a system's refusal names the destination, and a folder
is never taken for a file (the reliability battery's D18 and D24)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from r1omni.atomic import atomic_dir, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_and_folders_get_the_permissions_the_umask_allows(tmp_path, umask_022):
    """D24: mkstemp / mkdtemp made every output 0600 / 0700, so a server under another account could not
    read a model the trainer saved."""
    atomic_write_text(tmp_path / "summary.json", "{}")
    with atomic_dir(tmp_path / "model") as folder:
        (folder / "config.json").write_text("{}")
    assert _mode(tmp_path / "summary.json") == 0o644
    assert _mode(tmp_path / "model") == 0o755 and _mode(tmp_path / "model" / "config.json") == 0o644
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.json", "{}")
    assert _mode(tmp_path / "private.json") == 0o600


def test_a_full_disk_is_an_os_error_naming_the_destination(tmp_path):
    """D18: safetensors reports ENOSPC as 'SafetensorError: ... (os error 28)', a traceback naming no file."""

    class SafetensorError(Exception):
        pass

    with pytest.raises(OSError) as caught:
        with atomic_dir(tmp_path / "final"):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "final")
    assert not list(tmp_path.iterdir())   # the half-written folder is gone
    from r1omni.atomic import system_write_error

    assert system_write_error(ValueError("bad value"), tmp_path) is None
    assert system_write_error(FileNotFoundError(errno.ENOENT, "gone"), tmp_path) is None


def test_a_folder_is_not_taken_for_a_file_nor_a_file_for_a_folder(tmp_path):
    """D18: `data import -o FOLDER` ended in a traceback (IsADirectoryError from the final rename)."""
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder; a file name was expected"):
        atomic_write_text(tmp_path / "out", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        with atomic_dir(tmp_path / "file"):
            pass
    assert (tmp_path / "file").read_text() == "x"


def test_torchs_unnamed_write_failure_on_a_full_disk_is_a_full_disk(tmp_path, monkeypatch):
    """D18: torch.save reports ENOSPC as 'PytorchStreamWriter failed writing file ...' (a RuntimeError, no
    errno): on a disk with under 1 MiB free it is taken for what it is; elsewhere it stays what it was."""
    import shutil
    from collections import namedtuple

    from r1omni.atomic import system_write_error

    usage = namedtuple("usage", "total used free")
    torch_error = RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing "
                               "file data/0: file write failed")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 20, 10 << 20, 12 << 10))
    named = system_write_error(torch_error, tmp_path / "checkpoints" / ".step-0000002.tmp")
    assert named.errno == errno.ENOSPC and named.filename.endswith(".step-0000002.tmp")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 1 << 30, 9 << 30))
    assert system_write_error(torch_error, tmp_path) is None
