"""Facial cue measurements on a real photograph (scikit-image's public-domain "astronaut", animated into a
clip with espeak-ng speech, as a user's clip would come) and on frames without a face."""

from __future__ import annotations

import numpy as np
import pytest
from real_media import astronaut_frames, needs_espeak, speak

from r1omni.claims import check_claims, cue_levels
from r1omni.cues import clip_cues, face_cues, find_faces, measure_face
from r1omni.media import load_audio, sample_frames, write_clip


def test_the_astronaut_has_a_smiling_face_in_every_frame():
    frames = astronaut_frames()
    measures = measure_face(frames)
    assert measures.face_frames == len(frames)
    x, y, w, h = measures.largest_box
    assert 0.15 * 256 < w < 0.6 * 256 and y < 128   # a face-sized box in the upper half of the frame
    assert measures.smile_frames >= len(frames) // 2
    assert cue_levels(face_cues(frames))["mouth_curve"] == "up"


def test_frames_without_a_face_measure_nothing():
    rng = np.random.default_rng(0)
    for frames in (np.full((4, 128, 128, 3), 127, np.uint8), rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)):
        assert not measure_face(frames).face_found
        assert face_cues(frames) == {} and find_faces(frames[0]) == []


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="uint8 RGB"):
        find_faces(np.zeros((64, 64), np.uint8))


@needs_espeak
def test_a_clip_no_one_here_made_gets_its_claims_checked(tmp_path):
    """Astronaut frames + espeak-ng speech in an mp4, decoded as predict decodes it: the smile and the
    measured voice support or contradict the claims; the brows stay not checkable."""
    speech = load_audio(speak(tmp_path / "speech.wav", "I cannot stop smiling today.", 85, 180)).waveform
    clip = write_clip(tmp_path / "astronaut.mp4", astronaut_frames(16), 16 / (len(speech) / 16000), speech)
    frames = sample_frames(clip, 8).frames
    cues = clip_cues(load_audio(clip).waveform, frames)
    assert set(cues) == {"face", "voice"} and cue_levels(cues)["mouth_curve"] == "up"
    think = "The mouth corners turn up. The mouth corners turn down. The brows are raised. The voice is loud."
    verdicts = [(c.cue, c.verdict) for c in check_claims(think, cue_levels(cues))]
    assert verdicts == [("mouth_curve", "supported"), ("mouth_curve", "contradicted"),
                        ("brow_raise", "not checkable"), ("loudness", "supported")]
