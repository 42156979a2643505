"""The generated benchmark on disk: manifests, decoding, determinism, idempotence and resumption,
and that the media themselves (not only the stored cue values) carry the labels."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from r1omni.claims import claim_errors, extract_claims
from r1omni.labels import DFEW, SYNONYMS
from r1omni.media import load_audio, sample_frames
from r1omni.schema import read_jsonl, read_samples
from r1omni.synth import SPLITS, SynthConfig, generate_benchmark
from r1omni.synth.config import OOD_SPLITS, TEST_SPLITS, StyleConfig

EMOTION_WORDS = sorted(set(SYNONYMS) | set(DFEW.labels))
NUM_FRAMES = 4  # what the demo model samples
# Big enough for simple classifiers on decoded media to mean something (30 clips per class in
# train), small enough to build in ~15 s of CPU time.
BENCH_SIZES = {"pretrain": 21, "cold_start": 21, "train": 210, "val_id": 14, "val_ood": 14, "test_id": 105,
               "test_ood": 70, "test_mix": 70}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """(out_dir, {split: manifest}) of a seed-0 benchmark with BENCH_SIZES."""
    out_dir = tmp_path_factory.mktemp("synth_bench")
    return out_dir, generate_benchmark(out_dir, SynthConfig(split_sizes=dict(BENCH_SIZES)), seed=0,
                                       progress=False, workers=1)


@pytest.fixture(scope="module")
def decoded(bench):
    """{split: (samples, frames (N, 4, H, W, 3) uint8 (a list of (4, H, W, 3) for pretrain),
    waveforms list of (S,) float32)}."""
    _, manifests = bench
    result = {}
    for split, manifest in manifests.items():
        samples = read_samples(manifest)
        clips = [sample_frames(s.video, NUM_FRAMES).frames for s in samples]
        # pretrain mixes two styles (two frame sizes): a list there, one array elsewhere.
        frames = np.stack(clips) if len({c.shape for c in clips}) == 1 else clips
        audio = [load_audio(s.video) for s in samples]
        assert all(a.has_audio for a in audio)
        result[split] = (samples, frames, [a.waveform for a in audio])
    return result


def test_manifests_layout_and_counts(bench):
    out_dir, manifests = bench
    assert list(manifests) == list(SPLITS)
    for split, manifest in manifests.items():
        rows = read_jsonl(manifest)
        assert len(rows) == BENCH_SIZES[split]
        assert all(not Path(r["video"]).is_absolute() and r["video"].startswith(f"clips/{split}/") for r in rows)
        assert (out_dir / "clips" / split / "COMPLETE").is_file()
        counts = Counter(r["label"] for r in rows)
        assert set(counts) == set(DFEW.labels) and max(counts.values()) - min(counts.values()) <= 1
        ood = [split in OOD_SPLITS or (split == "pretrain" and SynthConfig().is_ood_pretrain_clip(i))
               for i in range(len(rows))]
        assert [r["meta"]["style"] for r in rows] == ["ood" if o else "id" for o in ood]
        assert [Path(r["video"]).suffix for r in rows] == [".webm" if o else ".mp4" for o in ood]
        if split == "pretrain":
            assert 0 < sum(ood) < len(rows)  # the default mixes both styles into pre-training
        assert all((r["reasoning"] is not None) == (split == "cold_start") for r in rows)
    assert json.loads((out_dir / "synth_config.json").read_text())["seed"] == 0
    assert read_jsonl(manifests["test_ood"])[0]["video"].endswith(".webm")


def test_every_clip_decodes_with_the_expected_format(decoded):
    for samples, frames, waves in decoded.values():
        assert len(frames) == len(samples)
        for sample, clip in zip(samples, frames):
            size = 80 if sample.meta["style"] == "ood" else 64
            assert clip.shape == (NUM_FRAMES, size, size, 3)
        assert all(abs(len(w) / 16000 - 1.0) < 0.05 for w in waves)  # 1 s, resampled to 16 kHz
        assert all(np.abs(w).max() > 0.01 for w in waves)


def test_meta_holds_the_ground_truth(decoded):
    samples = decoded["train"][0]
    meta = samples[0].meta
    assert set(meta) >= {"carrier", "label_modality", "distractor", "style", "cues", "intensity",
                         "subtitle_carries_label", "description", "identity", "speaker"}
    assert set(meta["cues"]) == {"face", "voice"} and all(isinstance(v, float) for v in meta["cues"]["face"].values())
    assert {s.meta["carrier"] for s in samples} == {"both", "face", "voice", "conflict"}
    hints = [s for s in samples if s.meta["subtitle_carries_label"]]
    assert hints and all(s.subtitle for s in hints)


def test_identities_of_training_validation_and_test_never_meet(bench):
    _, manifests = bench
    faces = {split: {s.meta["identity"] for s in read_samples(path)} for split, path in manifests.items()}
    training = faces["pretrain"] | faces["cold_start"] | faces["train"]
    for held_out in ("val_id", "val_ood", *TEST_SPLITS):
        assert not faces[held_out] & training, held_out
    assert not (faces["val_id"] | faces["val_ood"]) & (faces["test_id"] | faces["test_ood"] | faces["test_mix"])


def test_the_mix_split_is_voice_led(bench):
    _, manifests = bench
    samples = read_samples(manifests["test_mix"])
    carriers = Counter(s.meta["carrier"] for s in samples)
    assert carriers["face"] == 0 and carriers["voice"] > carriers["both"] / 2 and carriers["conflict"] > 0
    assert all(s.meta["label_modality"] == "voice" for s in samples if s.meta["carrier"] == "conflict")
    assert {s.meta["style"] for s in samples} == {"ood"}


def test_pretraining_instructions_never_tie_a_face_or_voice_to_an_emotion(bench):
    _, manifests = bench
    samples = read_samples(manifests["pretrain"])
    assert {s.meta["task"] for s in samples} >= {"describe", "cue", "text_emotion"}
    for sample in samples:
        question, answer, task = sample.meta["question"], sample.meta["answer"], sample.meta["task"]
        assert question and answer
        if task == "text_emotion":
            # The answer is the emotion the subtitle's words hint at, drawn apart from what the clip shows.
            assert answer.endswith(f"<answer>{sample.meta['subtitle_emotion'] or 'neutral'}</answer>")
            assert f'the subtitle reads: "{sample.subtitle}"' in answer
        else:
            assert not [w for w in EMOTION_WORDS if re.search(rf"\b{re.escape(w)}\b", answer.lower())], sample.id
            assert claim_errors(answer, sample.meta["cues"]) == []
    hinted = [s for s in samples if s.meta["subtitle_emotion"]]
    assert hinted and any(s.meta["subtitle_emotion"] != s.label for s in hinted)


def test_descriptions_name_no_emotion_and_are_true(decoded):
    for samples, _, _ in decoded.values():
        for sample in samples:
            text = sample.meta["description"].lower()
            found = [w for w in EMOTION_WORDS if re.search(rf"\b{re.escape(w)}\b", text)]
            assert not found, (sample.id, found)
            assert claim_errors(text, sample.meta["cues"]) == []


def test_cold_start_reasoning_matches_the_clip(decoded):
    for sample in decoded["cold_start"][0]:
        assert sample.reasoning.startswith(("In the video", "Looking at the video"))
        assert extract_claims(sample.reasoning)
        assert claim_errors(sample.reasoning, sample.meta["cues"]) == []
        assert sample.reasoning.rstrip(".").split()[-1] == sample.label
        assert f'the subtitle reads: "{sample.subtitle}"' in sample.reasoning


def _same_seed_subset(tmp_path: Path, seed: int, workers: int) -> dict[str, Path]:
    return generate_benchmark(tmp_path, SynthConfig(split_sizes={s: 7 for s in SPLITS}), seed=seed,
                              progress=False, workers=workers)


def test_same_seed_gives_the_same_clips_whatever_the_split_size_and_workers(bench, tmp_path):
    _, full = bench
    small = _same_seed_subset(tmp_path, seed=0, workers=2)
    for split in ("cold_start", "test_ood"):
        assert read_jsonl(small[split]) == read_jsonl(full[split])[:7]
        for a, b in zip(read_samples(small[split]), read_samples(full[split])[:7]):
            assert Path(a.video).read_bytes() == Path(b.video).read_bytes(), a.video
            assert np.array_equal(sample_frames(a.video, 8).frames, sample_frames(b.video, 8).frames)
            assert np.array_equal(load_audio(a.video).waveform, load_audio(b.video).waveform)


def test_rendering_processes_are_not_forked_from_the_caller(tmp_path, monkeypatch):
    """A process forked from a threaded caller can inherit a lock held by a thread that does not exist
    in the child, and wait for it forever (``make test-latest`` hung so in the test above)."""
    from r1omni.synth import generate

    methods = []

    class Recording(generate.ProcessPoolExecutor):
        def __init__(self, *args, mp_context=None, **kwargs):
            methods.append(mp_context.get_start_method() if mp_context else None)
            super().__init__(*args, mp_context=mp_context, **kwargs)

    monkeypatch.setattr(generate, "ProcessPoolExecutor", Recording)
    generate_benchmark(tmp_path, SynthConfig(split_sizes={"train": 3}), progress=False, workers=2)
    assert methods and all(m in ("forkserver", "spawn") for m in methods), methods


def test_a_script_without_the_main_guard_is_told_what_to_do(tmp_path):
    script = tmp_path / "make_bench.py"
    script.write_text("from r1omni.synth import SynthConfig, generate_benchmark\n"
                      f"generate_benchmark({str(tmp_path / 'bench')!r}, SynthConfig(split_sizes={{'train': 4}}),"
                      " progress=False, workers=2)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'train: a clip-rendering process died' in done.stderr and '__name__ == "__main__"' in done.stderr


def test_another_seed_gives_other_clips(bench, tmp_path):
    _, full = bench
    other = _same_seed_subset(tmp_path, seed=1, workers=1)
    a, b = read_samples(other["train"]), read_samples(full["train"])[:7]
    assert [s.meta["cues"] for s in a] != [s.meta["cues"] for s in b]
    assert not np.array_equal(sample_frames(a[0].video, 4).frames, sample_frames(b[0].video, 4).frames)


def test_second_call_rebuilds_nothing(bench):
    out_dir, manifests = bench
    clips = sorted((out_dir / "clips").rglob("*-0000[0-3].*"))
    before = {p: p.stat().st_mtime_ns for p in list(manifests.values()) + clips}
    start = time.perf_counter()
    again = generate_benchmark(out_dir, SynthConfig(split_sizes=dict(BENCH_SIZES)), seed=0, progress=False)
    assert time.perf_counter() - start < 3.0
    assert again == manifests
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_unfinished_split_is_resumed_and_a_changed_one_rebuilt(tmp_path):
    config = SynthConfig(split_sizes={"train": 7})
    manifest = generate_benchmark(tmp_path, config, progress=False)["train"]
    text = manifest.read_text()
    clip_dir = tmp_path / "clips" / "train"
    kept, lost = clip_dir / "train-00000.mp4", clip_dir / "train-00003.mp4"
    kept_mtime = kept.stat().st_mtime_ns
    # A crash before the end: no marker, no manifest, a clip missing, a temporary file left behind.
    (clip_dir / "COMPLETE").unlink()
    manifest.unlink()
    lost.unlink()
    (clip_dir / ".train-00004.tmp.mp4").write_bytes(b"half")
    generate_benchmark(tmp_path, config, progress=False)
    assert manifest.read_text() == text and lost.is_file() and kept.stat().st_mtime_ns == kept_mtime
    assert not list(clip_dir.glob(".*.tmp.*"))
    # Other settings: every clip is rebuilt, the manifest follows.
    changed = SynthConfig(split_sizes={"train": 7}, cue_noise=0.02)
    generate_benchmark(tmp_path, changed, progress=False)
    assert kept.stat().st_mtime_ns != kept_mtime and manifest.read_text() != text
    assert len(list(clip_dir.glob("train-*.mp4"))) == 7


def test_style_of_a_split_can_be_changed(tmp_path):
    style = StyleConfig(name="ood", container=".avi", frame_size_px=48, num_frames=6, fps=6.0,
                        face_style="flat", voice_style="reed")
    manifest = generate_benchmark(tmp_path, SynthConfig(split_sizes={"test_ood": 2}, ood_style=style),
                                  progress=False)["test_ood"]
    sample = read_samples(manifest)[0]
    assert sample.video.endswith(".avi")
    assert sample_frames(sample.video, 6).frames.shape == (6, 48, 48, 3)


# --- the media carry the labels -------------------------------------------------------------------

def _carried_by(samples, modality: str) -> np.ndarray:
    return np.array([s.meta["label_modality"] in (modality, "both") for s in samples])


def _face_features(frames: np.ndarray) -> np.ndarray:
    """Last sampled frame (near the apex), grey, 16x16: (N, 256)."""
    return np.stack([np.asarray(Image.fromarray(clip[-1]).convert("L").resize((16, 16), Image.BILINEAR),
                                dtype=np.float64).ravel() / 255 for clip in frames])


def _voice_features(wave: np.ndarray, sample_rate_hz: int = 16000) -> list[float]:
    """Pitch level, spread and trend (autocorrelation), level, share and count of voiced stretches,
    zero-crossing rate."""
    low = np.convolve(wave, np.ones(16) / 16, mode="same")
    frames = np.lib.stride_tricks.sliding_window_view(wave, 640)[::160]  # (F, 640) 40 ms, 10 ms hop
    low_frames = np.lib.stride_tricks.sliding_window_view(low, 640)[::160]
    rms = np.sqrt((frames**2).mean(axis=1))  # (F,)
    active = rms > 0.25 * rms.max()
    semitones = []
    for frame in low_frames[active]:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[639:]
        lag = sample_rate_hz // 450 + np.argmax(ac[sample_rate_hz // 450:sample_rate_hz // 70])
        semitones.append(12 * np.log2(sample_rate_hz / lag / 150))
    semitones = np.array(semitones)
    half = max(len(semitones) // 2, 1)
    return [np.median(semitones), semitones.std(), semitones[half:].mean() - semitones[:half].mean(),
            20 * np.log10(rms[active].mean()), active.mean(), float(np.sum(np.diff(active.astype(int)) == 1)),
            np.mean(np.diff(np.sign(wave)) != 0)]


def test_decoded_frames_carry_the_facial_label(decoded):
    (train, train_frames, _), (test, test_frames, _) = decoded["train"], decoded["test_id"]
    fit, check = _carried_by(train, "face"), _carried_by(test, "face")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    model.fit(_face_features(train_frames[fit]), [s.label for s, f in zip(train, fit) if f])
    accuracy = model.score(_face_features(test_frames[check]), [s.label for s, c in zip(test, check) if c])
    assert accuracy > 0.35, accuracy  # chance 1/7; ~0.55 measured, on held-out identities


def test_decoded_audio_carries_the_vocal_label(decoded):
    (train, _, train_waves), (test, _, test_waves) = decoded["train"], decoded["test_id"]
    fit, check = _carried_by(train, "voice"), _carried_by(test, "voice")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    model.fit([_voice_features(w) for w, f in zip(train_waves, fit) if f], [s.label for s, f in zip(train, fit) if f])
    accuracy = model.score([_voice_features(w) for w, c in zip(test_waves, check) if c],
                           [s.label for s, c in zip(test, check) if c])
    assert accuracy > 0.6, accuracy  # chance 1/7; ~0.9 measured, on held-out speakers


def _colour_histogram(frames: np.ndarray) -> np.ndarray:
    bins = (frames.reshape(-1, 3) // 64).astype(np.int64) @ np.array([16, 4, 1])  # 4 levels per channel
    counts = np.bincount(bins, minlength=64).astype(np.float64)
    return counts / counts.sum()


def _noise_floor_centroid_hz(wave: np.ndarray, sample_rate_hz: int = 16000) -> float:
    """Spectral centroid of the quietest fifth of 32 ms frames: the background noise's colour."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, 512)[::256]  # (F, 512)
    energy = (frames**2).mean(axis=1)
    quiet = frames[energy <= np.quantile(energy, 0.2)]
    power = (np.abs(np.fft.rfft(quiet * np.hanning(512), axis=1)) ** 2).mean(axis=0)  # (257,)
    freqs_hz = np.fft.rfftfreq(512, 1 / sample_rate_hz)
    return float((power * freqs_hz).sum() / power.sum())


def test_ood_differs_in_style_but_not_in_cue_mapping(decoded):
    ident, ood = decoded["test_id"], decoded["test_ood"]
    halves = [ident[1][::2], ident[1][1::2]]
    within = np.abs(_colour_histogram(halves[0]) - _colour_histogram(halves[1])).sum()
    across = np.abs(_colour_histogram(ident[1]) - _colour_histogram(ood[1])).sum()
    assert across > 3 * within, (across, within)
    # ID: faint white noise; OOD: mains hum and brown noise.
    id_centroids = [_noise_floor_centroid_hz(w) for w in ident[2]]
    ood_centroids = [_noise_floor_centroid_hz(w) for w in ood[2]]
    assert np.percentile(ood_centroids, 95) < np.percentile(id_centroids, 5)
    # The same cue values mean the same labels: a classifier fitted on ID cues reads OOD cues.
    train = decoded["train"][0]
    for modality in ("face", "voice"):
        fit, check = _carried_by(train, modality), _carried_by(ood[0], modality)
        model = LogisticRegression(max_iter=2000).fit(
            [list(s.meta["cues"][modality].values()) for s, f in zip(train, fit) if f],
            [s.label for s, f in zip(train, fit) if f])
        accuracy = model.score([list(s.meta["cues"][modality].values()) for s, c in zip(ood[0], check) if c],
                               [s.label for s, c in zip(ood[0], check) if c])
        assert accuracy > 0.9, (modality, accuracy)


def test_generate_rejects_unknown_splits_and_presets(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        generate_benchmark(tmp_path, "tiny", splits=["validation"], progress=False)
    with pytest.raises(KeyError, match="unknown synth preset"):
        generate_benchmark(tmp_path, "enormous", progress=False)
    assert not list(tmp_path.iterdir())  # nothing written before validation


def test_pretrain_split_can_mix_both_styles(tmp_path):
    config = SynthConfig(split_sizes={"pretrain": 4}, pretrain_ood_share=0.5)
    samples = read_samples(generate_benchmark(tmp_path, config, progress=False, workers=1)["pretrain"])
    by_style = Counter((s.meta["style"], Path(s.video).suffix) for s in samples)
    assert by_style == {("id", ".mp4"): 2, ("ood", ".webm"): 2}
    for s in samples:
        size = (config.ood_style if s.meta["style"] == "ood" else config.id_style).frame_size_px
        assert sample_frames(s.video, 2).frames.shape[1:3] == (size, size)
    # The share is part of the split's identity: changing it rebuilds the split.
    generate_benchmark(tmp_path, SynthConfig(split_sizes={"pretrain": 4}, pretrain_ood_share=0), progress=False,
                       workers=1)
    assert not list((tmp_path / "clips" / "pretrain").glob("*.webm"))
