"""Corpus adapters: one module per corpus, each turning a folder (or file) into samples plus a report.

Every adapter has the same entry point, ``load(root, fold=None, split=None, **options) ->
ImportResult``, and its module docstring describes the on-disk layout it expects, its options and
which problems it skips (reported with a reason) or refuses (:class:`CorpusError`, naming the file
and line). :func:`import_corpus` dispatches by name; ``CORPORA`` lists the names: the corpora of
the R1-Omni paper (``dfew``, ``mafw``, ``ravdess``, ``emer``), two extras (``cremad``, ``meld``) and two
generic formats (``manifest``, a JSONL / CSV list of clips; ``llava``, the conversation JSON of the
official training code, which :func:`r1omni.data.llava.export` also writes).

Only this package knows corpus file layouts. It decodes no media (MAFW's ``check_audio`` option only
opens containers to see whether they have a soundtrack) and never prints.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from r1omni.data import cremad, dfew, emer, llava, mafw, manifest, meld, ravdess
from r1omni.data.common import CorpusError, ImportResult, Skip

__all__ = ["CORPORA", "import_corpus", "options_of", "ImportResult", "Skip", "CorpusError"]

CORPORA: dict[str, Callable[..., ImportResult]] = {
    "dfew": dfew.load,
    "mafw": mafw.load,
    "ravdess": ravdess.load,
    "emer": emer.load,
    "manifest": manifest.load,
    "llava": llava.load,
    "cremad": cremad.load,
    "meld": meld.load,
}


def options_of(name: str) -> dict[str, object]:
    """The options an adapter accepts beyond root / fold / split, with their defaults."""
    loader = _loader(name)
    return {p.name: p.default for p in inspect.signature(loader).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _loader(name: str) -> Callable[..., ImportResult]:
    try:
        return CORPORA[name.lower()]
    except KeyError:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}") from None


def import_corpus(name: str, root: str | os.PathLike, fold: int | None = None, split: str | None = None,
                  **options: object) -> ImportResult:
    """Import corpus ``name`` from ``root`` (a folder, or the file for ``manifest`` and ``llava``).

    Unknown option names are refused with the list of the adapter's options.
    """
    loader = _loader(name)
    known = options_of(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(f"{key}={value!r}" for key, value in known.items()) or "none"
        raise ValueError(f"{name}: unknown option(s) {unknown}; options (with defaults): {listed}")
    return loader(root, fold=fold, split=split, **options)
