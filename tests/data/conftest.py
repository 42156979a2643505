"""Session-scoped fake corpus trees (built by ``corpus_fakes``), so that the data tests run in seconds."""

from __future__ import annotations

from pathlib import Path

import corpus_fakes as fakes
import pytest


@pytest.fixture(scope="session")
def dfew_root(tmp_path_factory) -> Path:
    return fakes.build_dfew(tmp_path_factory.mktemp("DFEW"))


@pytest.fixture(scope="session")
def mafw_root(tmp_path_factory) -> Path:
    return fakes.build_mafw(tmp_path_factory.mktemp("MAFW"))


@pytest.fixture(scope="session")
def ravdess_root(tmp_path_factory) -> Path:
    return fakes.build_ravdess(tmp_path_factory.mktemp("RAVDESS"))


@pytest.fixture(scope="session")
def emer_v1_root(tmp_path_factory) -> Path:
    return fakes.build_emer_v1(tmp_path_factory.mktemp("EMER-v1"))


@pytest.fixture(scope="session")
def emer_v2_root(tmp_path_factory) -> Path:
    return fakes.build_emer_v2(tmp_path_factory.mktemp("EMER-v2"))


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return fakes.build_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def cremad_root(tmp_path_factory) -> Path:
    return fakes.build_cremad(tmp_path_factory.mktemp("CREMA-D"))


@pytest.fixture(scope="session")
def meld_root(tmp_path_factory) -> Path:
    return fakes.build_meld(tmp_path_factory.mktemp("MELD"))
