"""One model, one clip, one answer, whichever door: ``predict``, the HTTP API and ``eval`` all go through
``r1omni.inference.answer_clips`` under an explicit label set."""

from __future__ import annotations

import json

import pytest
from serve_fakes import TAUGHT_COMPLETION, TAUGHT_THINK

from r1omni.evaluate import EvalOptions, evaluate
from r1omni.inference import predict_files
from r1omni.labels import get_label_set
from r1omni.models import SamplingConfig
from r1omni.schema import Sample
from r1omni.serve import ServeConfig

pytestmark = pytest.mark.anyio


async def _through_http(serve, policy, path, **fields) -> dict:
    async with serve(policy, **fields) as (client, _):
        with open(path, "rb") as handle:
            response = await client.post("/v1/predict", files={"file": (path.name, handle, "video/mp4")})
    assert response.status_code == 200, response.text
    return response.json()


def _through_eval(policy, path, tmp_path, label_set: str) -> dict:
    sample = Sample(id="clip", corpus="files", video=str(path), label=get_label_set(label_set).labels[0])
    evaluate(policy, [sample], tmp_path / "eval", get_label_set(label_set),
             EvalOptions(batch_size=4, max_new_tokens=64, cache_media=False))
    return json.loads((tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()[0])


async def test_the_taught_model_gives_one_answer_through_every_door(serve, policy, media_dir, tmp_path):
    clip = media_dir / "clip.mp4"
    [record] = predict_files(policy, [clip], sampling=SamplingConfig(max_new_tokens=64), label_set="synth")
    predicted = record.reply
    served = await _through_http(serve, policy, clip, label_set="synth")
    evaluated = _through_eval(policy, clip, tmp_path, "synth")
    assert predicted.output == served["output"] == evaluated["output"] == TAUGHT_COMPLETION
    assert predicted.think == served["think"] == evaluated["think"] == TAUGHT_THINK
    assert predicted.label == served["label"] == evaluated["pred"] == "angry"


async def test_an_answer_outside_the_default_label_set_is_mapped_alike(serve, stub_factory, media_dir, tmp_path):
    """The reported divergence: ``<answer>calm</answer>`` was "calm" from predict (open set) and null from
    the server (its default set has no calm). Now both use the same default, and an explicit set that
    has calm gives calm through all three doors."""
    stub, clip = stub_factory(text="<think>Slow and soft.</think><answer>calm</answer>"), media_dir / "clip.mp4"
    by_default = next(predict_files(stub, [clip])).reply
    served_default = await _through_http(serve, stub, clip, label_set=ServeConfig().label_set)
    assert by_default.label is None and served_default["label"] is None and by_default.answer == "calm"
    predicted = next(predict_files(stub, [clip], label_set="ravdess")).reply
    served = await _through_http(serve, stub, clip, label_set="ravdess")
    evaluated = _through_eval(stub, clip, tmp_path, "ravdess")
    assert predicted.label == served["label"] == evaluated["pred"] == "calm"
