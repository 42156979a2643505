"""tools/lock_hashes.py (hashes every pinned release's files, versions kept) and tools/lock_drift.py and
``pins_digest`` reading the hashed lock, on a made-up lock, index and find-links folder (no network)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from r1omni.environment import pins_digest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def sources(tmp_path, monkeypatch):
    """A lock of two pins; PyPI holds one file of each, a file:// index and a find-links folder more."""
    hashes = _tool("lock_hashes")
    links = tmp_path / "wheels"
    links.mkdir()
    (links / "Foo_Bar-1.0-py3-none-any.whl").write_bytes(b"local foo")
    (links / "foo_bar-1.1-py3-none-any.whl").write_bytes(b"another version")
    index = tmp_path / "simple" / "baz"
    index.mkdir(parents=True)
    (tmp_path / "baz-2.0.tar.gz").write_bytes(b"baz sdist")
    (index / "index.html").write_text(
        f'<a href="../../baz-2.0.tar.gz">baz-2.0.tar.gz</a>'
        f'<a href="../../baz-2.0-py3-none-any.whl#sha256={"ab" * 32}">wheel</a>'
        f'<a href="../../baz-2.1.tar.gz#sha256={"cd" * 32}">newer</a>')
    pypi = {("foo-bar", "1.0"): {"11" * 32}, ("baz", "2.0"): {"22" * 32}}
    monkeypatch.setattr(hashes, "pypi_hashes", lambda name, version: set(pypi.get((hashes.canonical(name), version),
                                                                                    set())))
    monkeypatch.setattr(hashes, "pip_sources", lambda python: ([(tmp_path / "simple").as_uri()], [str(links)]))
    lock = tmp_path / "requirements.lock"
    lock.write_text("# made by hand\nFoo_Bar==1.0\nbaz==2.0  # a note\n")
    return hashes, lock


def test_every_file_of_each_pinned_release_is_hashed_and_versions_stay(sources):
    hashes, lock = sources
    assert hashes.main(str(lock)) == 0
    lines = lock.read_text().splitlines()
    assert lines[0] == "# made by hand"
    foo = sorted({"11" * 32, _sha(b"local foo")})
    baz = sorted({"22" * 32, _sha(b"baz sdist"), "ab" * 32})
    assert lines[1] == "Foo_Bar==1.0 " + " ".join(f"--hash=sha256:{h}" for h in foo)
    assert lines[2] == "baz==2.0 " + " ".join(f"--hash=sha256:{h}" for h in baz) + "  # a note"
    hashed = lock.read_text()
    hashes.main(str(lock))   # hashing again replaces the hashes: the same file
    assert lock.read_text() == hashed
    assert pins_digest(hashed.splitlines()) == pins_digest(["Foo_Bar==1.0", "baz==2.0"])
    assert _tool("lock_drift").read_lock(lock) == {"foo-bar": "1.0", "baz": "2.0"}


def test_a_release_with_no_file_anywhere_is_named(sources):
    hashes, lock = sources
    lock.write_text("baz==9.9\n")
    with pytest.raises(SystemExit, match=r"baz==9\.9: no file of this release"):
        hashes.main(str(lock))
    assert lock.read_text() == "baz==9.9\n"


def test_a_line_that_is_not_a_pin_is_refused_with_its_line_number(sources):
    hashes, lock = sources
    lock.write_text("# x\nbaz>=2\n")
    with pytest.raises(SystemExit, match=r"requirements.lock:2: expected name==version, got 'baz>=2'"):
        hashes.main(str(lock))


def test_the_committed_lock_hashes_every_pin():
    """What `make venv` installs with --require-hashes: pip refuses the whole lock if one pin lacks them."""
    pins = [line.split() for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert pins and all(len(words) > 1 and all(w.startswith("--hash=sha256:") and len(w) == 14 + 64
                                               for w in words[1:]) for words in pins)
