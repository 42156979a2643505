"""Counterfactual modality attribution.

A stub policy whose answer is a known function of the media (a loud soundtrack means "angry", bright
frames mean "happy", both mean "surprise", neither "neutral") makes the expected attribution exact:
on clips whose frames are blank (grey) and whose voice carries the label, removing the audio flips
the answer and removing the video does not, so the decisive modality is "audio"; likewise "video"
for clips with a silent soundtrack, and "both" when each carries part of the answer. A real tiny
preset then runs the same code path as a smoke test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from r1omni.clips import ClipLoader
from r1omni.explain.attribution import CONDITIONS, ClipAttribution, attribute, remove_modalities, summarize
from r1omni.media import write_clip
from r1omni.models import ClipInput, Completions, PreparedBatch
from r1omni.schema import Sample

GREY = 127          # what blank removal writes, so a grey clip is already "video removed"
BRIGHT = 240
LOUD_RMS = 0.05     # a 0.5-amplitude tone has RMS ~0.35, AAC-coded silence ~0


def stub_answer(frames: np.ndarray | None, waveform: np.ndarray | None) -> str:
    loud = waveform is not None and float(np.sqrt(np.mean(waveform ** 2))) > LOUD_RMS
    bright = frames is not None and float(frames.mean()) > 200
    label = {(True, True): "surprise", (True, False): "angry", (False, True): "happy"}.get((loud, bright), "neutral")
    return f"<think>I look and listen.</think>\n<answer>{label}</answer>"


class CharTokenizer:
    """One token per character (code point): enough for ``_answer_span``."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [ord(c) for c in text]}


class MediaRulePolicy:
    """A deterministic stand-in for a model that implements the parts of the Policy protocol that
    attribution uses. Its completion is :func:`stub_answer` of the clip; a completion token's
    log-probability is -0.1 where it agrees with the text the stub would write for that input, else -3."""

    family = "stub"

    def __init__(self) -> None:
        self.module = torch.nn.Identity()
        self.tokenizer = CharTokenizer()

    @property
    def num_frames(self) -> int:
        return 2

    def prepare(self, clips: list[ClipInput]) -> PreparedBatch:
        texts = [stub_answer(c.frames, c.waveform) for c in clips]
        return PreparedBatch(torch.zeros(len(clips), 1, dtype=torch.long), torch.ones(len(clips), 1, dtype=torch.long),
                             media={"texts": texts})

    def generate(self, batch, num_return_sequences=1, sampling=None) -> Completions:
        texts = [t for t in batch.media["texts"] for _ in range(num_return_sequences)]
        length = max(len(t) for t in texts)
        ids = torch.zeros(len(texts), length, dtype=torch.long)                       # (N, C)
        mask = torch.zeros(len(texts), length, dtype=torch.long)                      # (N, C)
        for i, text in enumerate(texts):
            ids[i, :len(text)] = torch.tensor([ord(c) for c in text])
            mask[i, :len(text)] = 1
        clip_index = torch.arange(batch.num_clips).repeat_interleave(num_return_sequences)
        return Completions(ids=ids, mask=mask, texts=texts, clip_index=clip_index)

    def token_logprobs(self, batch, completion_ids, clip_index) -> torch.Tensor:
        logp = torch.full(completion_ids.shape, -3.0)                                   # (N, C)
        for n, clip in enumerate(clip_index.tolist()):
            own = [ord(c) for c in batch.media["texts"][clip]]
            for c, token in enumerate(completion_ids[n].tolist()[:len(own)]):
                if token == own[c]:
                    logp[n, c] = -0.1
        return logp


@pytest.fixture(scope="module")
def carrier_clips(tmp_path_factory) -> list[Sample]:
    """Two clips per carrier: voice (grey frames, loud tone), face (bright frames, silence), both."""
    folder = tmp_path_factory.mktemp("carriers")
    loud = (0.5 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)
    silent = np.zeros(8000, np.float32)
    media = {"voice": (GREY, loud, "angry"), "face": (BRIGHT, silent, "happy"), "both": (BRIGHT, loud, "surprise")}
    samples = []
    for carrier, (level, waveform, label) in media.items():
        for k in range(2):
            path = write_clip(folder / f"{carrier}{k}.mp4", np.full((4, 32, 32, 3), level, np.uint8), 8, waveform)
            samples.append(Sample(id=f"{carrier}{k}", corpus="synth", video=str(path), label=label,
                                  subtitle="I put the keys on the table." if k else None,
                                  meta={"label_modality": carrier}))
    return samples


@pytest.mark.parametrize("method", ["blank", "omit"])
def test_stub_attribution_names_the_carrier(carrier_clips, method):
    results, skipped = attribute(MediaRulePolicy(), carrier_clips, ClipLoader(num_frames=2), None, method=method,
                                 batch_size=4)
    assert skipped == 0 and [r.id for r in results] == [s.id for s in carrier_clips]
    by_id = {r.id: r for r in results}
    for r in results:
        assert r.pred == r.label  # the stub is right on its own clips
        assert set(r.conditions) == set(CONDITIONS)
        assert r.conditions["no_subtitle"]["flipped"] is False
        assert r.conditions["no_subtitle"]["answer_contribution"] == 0.0
        assert r.conditions["no_media"]["flipped"] is True
    voice = by_id["voice0"]
    assert voice.decisive == "audio" and voice.expected == "audio"
    assert voice.conditions["no_audio"] == {**voice.conditions["no_audio"], "pred": "neutral", "flipped": True}
    assert voice.conditions["no_audio"]["answer_contribution"] > 0
    assert voice.conditions["no_video"]["flipped"] is False
    assert voice.conditions["no_video"]["answer_contribution"] == 0.0
    face = by_id["face0"]
    assert face.decisive == "video" and face.conditions["no_audio"]["flipped"] is False
    assert face.conditions["no_video"]["pred"] == "neutral"
    both = by_id["both0"]
    assert both.decisive == "both"
    assert (both.conditions["no_audio"]["pred"], both.conditions["no_video"]["pred"]) == ("happy", "angry")

    summary = summarize(results)
    assert summary["n"] == 6
    assert summary["attribution_accuracy"] == 1.0
    assert summary["decisive"] == pytest.approx({"audio": 1 / 3, "video": 1 / 3, "both": 1 / 3})
    assert summary["by_true_modality"]["audio"] == {"n": 2, "named_correctly": 1.0, "attributed": {"audio": 2},
                                                    "decisive": {"audio": 2}}
    assert summary["no_audio"]["flip_rate"] == pytest.approx(4 / 6)
    assert summary["no_media"]["flip_rate"] == 1.0
    assert summary["no_subtitle"]["mean_answer_contribution"] == 0.0


def test_unreadable_clips_are_skipped_and_counted(carrier_clips, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 50)
    samples = [carrier_clips[0], Sample(id="bad", corpus="synth", video=str(bad), label="sad")]
    results, skipped = attribute(MediaRulePolicy(), samples, ClipLoader(num_frames=2), None, batch_size=2)
    assert skipped == 1 and [r.id for r in results] == ["voice0"]
    results, skipped = attribute(MediaRulePolicy(), samples[1:], ClipLoader(num_frames=2), None)
    assert (results, skipped) == ([], 1)


DECODED: list[str] = []


class CountingLoader(ClipLoader):
    def _decode(self, sample):
        DECODED.append(sample.id)
        return super()._decode(sample)


def test_each_clip_is_decoded_once(carrier_clips):
    DECODED.clear()
    attribute(MediaRulePolicy(), carrier_clips[:3], CountingLoader(num_frames=2), None, batch_size=2)
    assert DECODED == [s.id for s in carrier_clips[:3]]


def test_remove_modalities():
    clip = ClipInput(question="q", frames=np.full((2, 4, 4, 3), 9, np.uint8), waveform=np.ones(16, np.float32))
    blank = remove_modalities(clip, video=True, audio=True)
    assert blank.frames.shape == clip.frames.shape and (blank.frames == GREY).all()
    assert blank.waveform.shape == (16,) and not blank.waveform.any()
    assert (clip.frames == 9).all() and clip.waveform.all()  # the original is untouched
    omitted = remove_modalities(clip, video=False, audio=True, method="omit")
    assert omitted.waveform is None and omitted.frames is clip.frames and omitted.question == "q"
    with pytest.raises(ValueError, match=r"one of \('blank', 'omit', 'reference'\)"):
        remove_modalities(clip, video=True, audio=False, method="mute")


def test_remove_modalities_by_reference_fits_the_reference_streams_to_the_clip():
    clip = ClipInput(question="q", frames=np.full((2, 4, 4, 3), 9, np.uint8), waveform=np.ones(6, np.float32))
    frames = np.stack([np.full((4, 4, 3), level, np.uint8) for level in (10, 20, 30, 40, 50)])
    reference = ClipInput(question="r", frames=frames, waveform=np.array([1, 2, 3, 4], np.float32))
    swapped = remove_modalities(clip, video=True, audio=True, method="reference", reference=reference)
    assert [int(f[0, 0, 0]) for f in swapped.frames] == [10, 50]          # picked evenly over the reference's
    assert swapped.waveform.tolist() == [1, 2, 3, 4, 1, 2] and swapped.question == "q"
    assert remove_modalities(clip, video=True, audio=False, method="reference", reference=reference).waveform is \
        clip.waveform
    with pytest.raises(ValueError, match="needs a reference clip"):
        remove_modalities(clip, video=True, audio=False, method="reference")
    small = ClipInput(question="r", frames=np.zeros((3, 2, 2, 3), np.uint8), waveform=None)
    with pytest.raises(ValueError, match="same loader"):
        remove_modalities(clip, video=True, audio=False, method="reference", reference=small)
    with pytest.raises(ValueError, match="no audio"):
        remove_modalities(clip, video=False, audio=True, method="reference", reference=small)


def test_attribution_by_reference_puts_the_reference_streams_in_place(carrier_clips):
    loader = ClipLoader(num_frames=2)
    reference = loader.load_many([carrier_clips[4]]).clips[0]       # both0: bright frames and a loud tone
    results, _ = attribute(MediaRulePolicy(), carrier_clips, loader, None, method="reference", reference=reference)
    by_id = {r.id: r for r in results}
    assert by_id["both0"].decisive == "neither"                        # its own streams back: nothing changes
    face = by_id["face0"]               # bright and silent: happy; with the reference's loud tone: surprise
    assert face.conditions["no_audio"]["pred"] == "surprise" and face.decisive == "audio"
    with pytest.raises(ValueError, match="needs the reference clip"):
        attribute(MediaRulePolicy(), carrier_clips, loader, None, method="reference")


def _result(decisive, video, audio, expected):
    conditions = {c: {"answer_contribution": 0.0, "completion_contribution": 0.0, "pred": None, "flipped": False}
                  for c in CONDITIONS}
    conditions["no_video"]["answer_contribution"] = video
    conditions["no_audio"]["answer_contribution"] = audio
    return ClipAttribution(id="x", label="sad", pred="sad", output="", conditions=conditions, decisive=decisive,
                           expected=expected)


def test_summarize_without_flips_uses_the_larger_contribution():
    results = [_result("neither", 2.0, 0.5, "video"), _result("neither", 0.1, 1.0, "video"),
               _result("audio", 0.0, 3.0, "audio"), _result("neither", 1.0, 1.0, None)]
    summary = summarize(results)
    assert summary["decisive"] == {"neither": 0.75, "audio": 0.25}
    assert summary["attribution_accuracy"] == pytest.approx(2 / 3)
    assert summary["by_true_modality"]["video"]["attributed"] == {"video": 1, "audio": 1}
    assert summary["by_true_modality"]["video"]["decisive"] == {"neither": 2}   # named by contribution only
    assert summary["no_video"]["mean_answer_contribution"] == pytest.approx(3.1 / 4)
    assert summarize([]) == {"n": 0}


def test_summarize_scores_the_clips_the_media_decide_apart():
    """A clip whose answer stays without any media (here a neutral clip against a neutral reference) is named
    by contribution only; the "media decided" share leaves it out and says how many clips remain."""
    decided = _result("video", 1.0, 0.0, "video")
    decided.conditions["no_media"]["flipped"] = True
    unmoved = _result("neither", 0.0, 1.0, "both")
    summary = summarize([decided, unmoved, _result("neither", 0.0, 0.0, None)])
    assert summary["attribution_accuracy"] == 0.5
    assert summary["media_decided"] == {"n": 1, "named_correctly": 1.0}
    assert summarize([unmoved])["media_decided"] == {"n": 0, "named_correctly": None}


# ------------------------------------------------------------------------ a real tiny model
@pytest.fixture(scope="module")
def tiny_policy():
    from r1omni.models import init_preset

    return init_preset("qwen2.5-omni-tiny", seed=0)


@pytest.mark.parametrize("method", ["blank", "omit"])
def test_attribute_runs_on_a_tiny_preset(tiny_policy, carrier_clips, method):
    samples = [carrier_clips[0], carrier_clips[3]]  # no subtitle; with a subtitle
    results, skipped = attribute(tiny_policy, samples, ClipLoader(num_frames=tiny_policy.num_frames), None,
                                 method=method, batch_size=2, max_new_tokens=4)
    assert skipped == 0 and len(results) == 2
    for r in results:
        assert isinstance(r.output, str) and set(r.conditions) == set(CONDITIONS)
        assert r.decisive in ("video", "audio", "both", "neither")
        for values in r.conditions.values():
            assert math.isfinite(values["answer_contribution"]) and math.isfinite(values["completion_contribution"])
    # Without a subtitle, "no subtitle" is the factual input itself: nothing may change.
    unchanged = results[0].conditions["no_subtitle"]
    assert unchanged["flipped"] is False
    assert unchanged["completion_contribution"] == pytest.approx(0.0, abs=1e-4)
    summary = summarize(results)
    assert summary["n"] == 2 and 0.0 <= summary["attribution_accuracy"] <= 1.0
