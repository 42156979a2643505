"""Cues measured on any clip, in the vocabulary of :mod:`r1omni.claims`, so that the reasoning's cue claims
can be checked (and the grounding reward paid) on clips with no annotation.

* :mod:`r1omni.cues.voice`: pitch level, range and contour, loudness, speaking rate and pauses from the
  decoded waveform, against a stated speaker reference;
* :mod:`r1omni.cues.face`: whether a face is visible and whether it smiles (OpenCV's Haar cascades).

Not measured: brows, eye and mouth opening, nose, and voice quality (tremor, breathiness, harshness);
claims about them stay "not checkable" on clips without annotation.
"""

from __future__ import annotations

import numpy as np

from r1omni.cues.face import FaceMeasures, face_cues, find_faces, measure_face
from r1omni.cues.voice import VoiceMeasures, VoiceReference, measure_voice, track_pitch, voice_cues

__all__ = ["VoiceReference", "VoiceMeasures", "track_pitch", "measure_voice", "voice_cues", "FaceMeasures",
           "find_faces", "measure_face", "face_cues", "clip_cues"]


def clip_cues(waveform: np.ndarray | None, frames: np.ndarray | None = None,
              voice_reference: VoiceReference | None = None) -> dict[str, dict]:
    """The cues measurable on a decoded clip, nested by modality as the benchmark stores its true cues
    (``{"face": {...}, "voice": {...}}``; a modality without measurable cues is left out)."""
    cues: dict[str, dict] = {}
    if frames is not None and len(frames) and (face := face_cues(frames)):
        cues["face"] = face
    if waveform is not None and waveform.size:
        cues["voice"] = voice_cues(waveform, voice_reference)
    return cues
