"""Add sha256 hashes to every pin of a lock file, so that `pip install --require-hashes` refuses any file
that is not one of the release's own: what `make lock` runs after `pip freeze`.

Usage: python tools/lock_hashes.py requirements.lock
Keeps every `name==version` pin (versions never change here) and rewrites its line as
`name==version --hash=sha256:... --hash=sha256:...`, one hash per file of that release: every file PyPI
holds for it (its JSON API), and every file of that version on the indexes and find-links pip is
configured with on this machine (`pip config list`, the `PIP_*` variables included), since pip may take
a local copy there, and a fresh machine takes PyPI's. One line per package, so that line-based readers
(tools/lock_drift.py, r1omni.environment.pins_digest) read `name==version` as the line's first word.
Comments stay; hashes already on a line are replaced. Stops, naming the package, when a release has no
file anywhere. Run with the interpreter whose pip will install the lock.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PYPI_JSON = "https://pypi.org/pypi"
PYPI_SIMPLE = "https://pypi.org/simple"
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz")
TIMEOUT_SECONDS = 120


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(a: str, b: str) -> bool:
    """Version equality as pip sees it (``1.0`` == ``1.0.0``); string equality without ``packaging``."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return a == b
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def file_release(filename: str) -> tuple[str, str] | None:
    """(canonical name, version) of a wheel or sdist file name; None for other files."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return (canonical(parts[0]), parts[1]) if len(parts) >= 5 else None
    for suffix in SDIST_SUFFIXES:
        if filename.endswith(suffix):
            name, sep, version = filename[: -len(suffix)].rpartition("-")
            return (canonical(name), version) if sep else None
    return None


def read(url: str) -> bytes:
    """The bytes at an http(s) or file URL; a file URL to a folder reads its index.html (as pip does)."""
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        return (path / "index.html" if path.is_dir() else path).read_bytes()
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return response.read()


class _Anchors(html.parser.HTMLParser):
    """The hrefs of a simple-index or find-links page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def page_hashes(page_url: str, name: str, version: str) -> set[str]:
    """sha256 of the files of name==version linked from a simple-index or find-links page: from the
    link's ``#sha256=`` when it has one, else from the file itself."""
    try:
        page = read(page_url)
    except (FileNotFoundError, urllib.error.HTTPError):
        return set()  # this index does not hold the project
    anchors = _Anchors()
    anchors.feed(page.decode("utf-8", "replace"))
    found = set()
    for href in anchors.hrefs:
        url = urllib.parse.urljoin(page_url, href)
        location, _, fragment = url.partition("#")
        release = file_release(urllib.parse.unquote(location.rsplit("/", 1)[-1]))
        if release is None or release[0] != canonical(name) or not same_version(release[1], version):
            continue
        algorithm, _, digest = fragment.partition("=")
        found.add(digest if algorithm == "sha256" and digest else hashlib.sha256(read(location)).hexdigest())
    return found


def folder_hashes(folder: Path, name: str, version: str) -> set[str]:
    """sha256 of the files of name==version in a find-links folder."""
    found = set()
    for path in folder.iterdir() if folder.is_dir() else ():
        release = file_release(path.name)
        if release and release[0] == canonical(name) and same_version(release[1], version):
            found.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def local_folder(link: str) -> Path | None:
    """The folder a find-links entry names (a path or a file URL), None for a page URL."""
    if "://" not in link:
        return Path(link)
    if link.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(link).path))
        return path if path.is_dir() else None
    return None


def pypi_hashes(name: str, version: str) -> set[str]:
    """sha256 of every file PyPI holds for name==version. Some mirrors of PyPI serve only the project's
    JSON, not the release's, so that is the fallback."""
    try:
        files = json.loads(read(f"{PYPI_JSON}/{name}/{version}/json"))["urls"]
    except urllib.error.HTTPError as err:
        if err.code != 404:
            raise
        releases = json.loads(read(f"{PYPI_JSON}/{name}/json"))["releases"]
        files = [f for key, entries in releases.items() if same_version(key, version) for f in entries]
    return {f["digests"]["sha256"] for f in files}


def pip_sources(python: str) -> tuple[list[str], list[str]]:
    """(index URLs other than PyPI, find-links locations) of the pip that ``python`` runs."""
    listing = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True)
    indexes, links = [], []
    for line in listing.stdout.splitlines():
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        values = value.strip().strip("'\"").split()
        if option in ("index-url", "extra-index-url"):
            indexes += [url.rstrip("/") for url in values if url.rstrip("/") != PYPI_SIMPLE]
        elif option == "find-links":
            links += values
    return list(dict.fromkeys(indexes)), list(dict.fromkeys(links))


def release_hashes(name: str, version: str, indexes: list[str], links: list[str]) -> list[str]:
    found = pypi_hashes(name, version)
    for index in indexes:
        found |= page_hashes(f"{index}/{canonical(name)}/", name, version)
    for link in links:
        folder = local_folder(link)
        found |= folder_hashes(folder, name, version) if folder else page_hashes(link, name, version)
    if not found:
        raise SystemExit(f"{name}=={version}: no file of this release on PyPI, {indexes} or {links}")
    return sorted(found)


def read_pins(path: Path) -> list[tuple[str, str, str] | str]:
    """The lock's lines: (name, version, the line's comment) per pin, other lines as they are. A pin's
    old hashes (and ``\\`` continuation lines, as pip-compile writes them) are dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines: list[tuple[str, str, str] | str] = []
    for number, line in enumerate(text.splitlines(), 1):
        requirement, hash_mark, comment = line.partition("#")
        if not requirement.strip():
            lines.append(line)
            continue
        pin = requirement.split()[0]
        name, sep, version = pin.partition("==")
        if not sep or not version:
            raise SystemExit(f"{path}:{number}: expected name==version, got {pin!r}")
        lines.append((name, version, f"  #{comment}" if hash_mark and comment.strip() else ""))
    return lines


def main(lock_path: str) -> int:
    path = Path(lock_path)
    lines = read_pins(path)
    indexes, links = pip_sources(sys.executable)
    pins = [line for line in lines if isinstance(line, tuple)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        hashes = dict(zip(pins, pool.map(lambda pin: release_hashes(pin[0], pin[1], indexes, links), pins)))
    out = []
    for line in lines:
        if isinstance(line, str):
            out.append(line)
        else:
            name, version, comment = line
            out.append(f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes[line]) + comment)
    tmp = path.with_name(path.name + ".hashing")
    tmp.write_text("\n".join(out) + "\n")
    os.replace(tmp, path)
    files = sum(len(h) for h in hashes.values())
    print(f"{path}: {len(pins)} pins, {files} file hashes (PyPI, {len(indexes)} other index(es), "
          f"{len(links)} find-links location(s))")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1]))
