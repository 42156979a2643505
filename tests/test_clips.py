"""ClipLoader, the one decode loop: modalities, failures kept per sample, and the transcript as the text
channel (real speech from espeak-ng, recognised offline)."""

from __future__ import annotations

import numpy as np
import pytest
from real_media import astronaut_frames, needs_asr, needs_espeak, speak

from r1omni.clips import ClipLoader, MediaCache
from r1omni.media import load_audio, write_clip
from r1omni.schema import Sample

SPOKEN = "please call me back tomorrow morning"
KEY_WORDS = ("please", "call", "back", "tomorrow", "morning")


@pytest.fixture(scope="module")
def speaking_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    speech = load_audio(speak(folder / "speech.wav", SPOKEN)).waveform
    return write_clip(folder / "astronaut.mp4", astronaut_frames(8, 128), 8 / (len(speech) / 16000), speech)


def test_failures_are_kept_per_sample_and_the_others_go_on(av_clip, tmp_path):
    missing = tmp_path / "missing.mp4"
    samples = [Sample(id="a", corpus="t", video=str(av_clip)), Sample(id="b", corpus="t", video=str(missing))]
    loaded = ClipLoader(num_frames=4).load_many(samples)
    assert [s.id for s in loaded.kept] == ["a"] and list(loaded.failures) == ["b"]
    assert str(missing) in str(loaded.failures["b"]) and set(loaded.decode_seconds) == {"a", "b"}
    clip = loaded.clips[0]
    assert clip.frames.shape[0] == 4 and clip.waveform is not None


def test_a_clip_the_model_cannot_read_fails_alone_naming_its_file(av_clip, tmp_path):
    from r1omni.media import write_audio
    from r1omni.models import ClipRejected, init_preset

    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    short = write_audio(tmp_path / "short.wav", (0.3 * np.sin(np.arange(160) / 5)).astype(np.float32))  # 10 ms
    samples = [Sample(id="a", corpus="t", video=str(av_clip)), Sample(id="b", corpus="t", audio=str(short)),
               Sample(id="c", corpus="t", video=str(av_clip))]
    loaded = ClipLoader.for_policy(policy).load_many(samples)
    assert [s.id for s in loaded.kept] == ["a", "c"] and list(loaded.failures) == ["b"]
    assert str(loaded.failures["b"]).startswith(f"{short}: audio of 160 samples (10.0 ms) is too short")
    assert policy.prepare(loaded.clips).num_clips == 2
    # prepare itself still refuses the clip, saying which one, for a caller that did not check.
    with pytest.raises(ClipRejected, match=r"clips\[1\]: audio of 160 samples"):
        policy.prepare([ClipLoader(num_frames=policy.num_frames).load(s) for s in samples])


def test_a_reference_clip_is_decoded_as_the_clips_or_is_an_error_naming_its_file(av_clip, tmp_path):
    """Attribution cannot go on without its reference, so an unreadable one is an error, not a skipped sample."""
    loader = ClipLoader(num_frames=3)
    reference = loader.load_reference(Sample(id="r", corpus="t", video=str(av_clip)))
    assert reference.frames.shape[0] == 3 and reference.waveform is not None
    missing = tmp_path / "gone.mp4"
    with pytest.raises(ValueError, match=f"attribution's reference {missing}: "):
        loader.load_reference(Sample(id="r", corpus="t", video=str(missing)))
    assert loader.load_reference(None) is None  # no reference: the removed stream is blanked


def test_modalities_leave_the_other_stream_out(av_clip):
    sample = Sample(id="a", corpus="t", video=str(av_clip))
    video = ClipLoader(num_frames=2, modalities="video").load(sample)
    audio = ClipLoader(num_frames=2, modalities="audio").load(sample)
    assert video.waveform is None and video.frames is not None
    assert audio.frames is None and audio.waveform is not None


@needs_espeak
@needs_asr
@pytest.mark.parametrize("modalities", ["video_audio", "video"])
def test_the_transcript_fills_the_subtitle_slot(speaking_clip, modalities):
    sample = Sample(id="talk", corpus="t", video=str(speaking_clip))
    loaded = ClipLoader(num_frames=4, modalities=modalities, transcribe=True).load_many([sample])
    transcript = loaded.notes["talk"]["transcript"]
    heard = [word for word in KEY_WORDS if word in transcript["text"].lower()]
    assert len(heard) >= 3, transcript["text"]
    assert transcript["language"] == "en" and transcript["words"]
    question = loaded.clips[0].question
    assert transcript["text"] in question and all(word in question.lower() for word in heard)
    assert (loaded.clips[0].waveform is None) == (modalities == "video")   # a video-only model still reads the words


@needs_espeak
@needs_asr
def test_a_samples_own_subtitle_wins_and_the_transcript_is_still_recorded(speaking_clip):
    sample = Sample(id="talk", corpus="t", video=str(speaking_clip), subtitle="Where were you last night?")
    loaded = ClipLoader(num_frames=4, transcribe=True).load_many([sample])
    assert "Where were you last night?" in loaded.clips[0].question
    assert loaded.notes["talk"]["transcript"]["text"] not in loaded.clips[0].question


def test_without_transcribe_nothing_is_recognised(av_clip):
    loaded = ClipLoader(num_frames=2).load_many([Sample(id="a", corpus="t", video=str(av_clip))])
    assert "transcript" not in loaded.notes["a"]
    assert np.isfinite(loaded.clips[0].waveform).all()


def test_a_shared_cache_decodes_a_file_once_for_loaders_with_the_same_media_settings(av_clip, monkeypatch):
    import r1omni.clips as clips
    decoded = []
    original = clips.sample_frames
    monkeypatch.setattr(clips, "sample_frames", lambda path, n: decoded.append(n) or original(path, n))
    sample = Sample(id="a", corpus="t", video=str(av_clip), subtitle="hello there")
    cache = MediaCache()
    first = ClipLoader(num_frames=4, cache=cache).load(sample)
    other_prompt = ClipLoader(num_frames=4, prompt="train", use_subtitle=False, cache=cache).load(sample)
    assert decoded == [4] and len(cache) == 1
    assert other_prompt.frames is first.frames and other_prompt.question != first.question
    ClipLoader(num_frames=2, cache=cache).load(sample)         # another frame count: its own entry
    ClipLoader(num_frames=4).load(sample)                       # no cache: decoded every time
    assert decoded == [4, 2, 4] and len(cache) == 2
