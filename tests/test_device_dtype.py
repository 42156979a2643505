"""``--device`` and ``--dtype`` on ``predict``, ``eval`` and ``explain``: the model runs where it is told
(CUDA by default when torch sees one) and every output records where it ran. In-process on tiny presets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from r1omni.cli import DTYPE_CHOICES, main
from r1omni.media import write_clip
from r1omni.models import init_preset
from r1omni.models.placement import DTYPES, default_device
from r1omni.schema import Sample, write_samples

BF16_CPU = {"device": "cpu", "dtype": "bfloat16"}


def test_the_cli_offers_the_dtypes_placement_knows():
    assert DTYPE_CHOICES == tuple(DTYPES)


@pytest.fixture(scope="module", params=["qwen2.5-omni-tiny", "humanomni-tiny"])
def model(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / request.param
    init_preset(request.param, seed=0).save(folder)
    return folder


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)
    samples = [Sample(id=f"c{i}", corpus="synth", label=label,
                      video=str(write_clip(folder / f"c{i}.mp4",
                                           rng.integers(0, 255, (16, 32, 48, 3), dtype=np.uint8), 8, tone)))
               for i, label in enumerate(("happy", "sad"))]
    write_samples(folder / "clips.jsonl", samples)
    return folder / "clips.jsonl"


def test_predict_eval_explain_run_in_bfloat16_on_the_cpu_and_record_it(model, manifest, tmp_path, capsys):
    common = ["--model", str(model), "--max-new-tokens", "3", "--device", "cpu", "--dtype", "bfloat16"]
    clip = json.loads(manifest.read_text().splitlines()[0])["video"]
    assert main(["predict", *common, clip, "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert row["runs_on"] == BF16_CPU and row["error"] is None
    data = ["--data", str(manifest), "--labels", "synth"]
    assert main(["eval", *common, *data, "-o", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["runs_on"] == BF16_CPU
    assert main(["explain", *common, *data, "-o", str(tmp_path / "explain")]) == 0
    assert json.loads((tmp_path / "explain" / "attribution_summary.json").read_text())["runs_on"] == BF16_CPU


def test_each_launched_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert default_device() == "cuda:1"


def test_cuda_is_the_default_when_torch_sees_one(monkeypatch):
    """Only the choice is checked: the loader is replaced, nothing goes to a GPU."""
    import r1omni.models
    from r1omni import cli

    asked = {}

    def fake_load(directory, **kwargs):
        asked.update(kwargs)
        raise StopIteration   # the choice is made; nothing is loaded

    monkeypatch.setattr(r1omni.models, "load_policy", fake_load)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    args = argparse.Namespace(model="m", device=None, dtype="bfloat16")
    for available, expected in ((False, "cpu"), (True, "cuda")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        assert default_device() == expected
        with pytest.raises(StopIteration):
            cli._load_policy(args)
        assert asked == {"device": expected, "dtype": torch.bfloat16}
    with pytest.raises(StopIteration):
        cli._load_policy(argparse.Namespace(model="m", device="cpu", dtype="float16"))
    assert asked == {"device": "cpu", "dtype": torch.float16}
