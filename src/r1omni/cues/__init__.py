"""Cues measured on any clip, in the vocabulary of :mod:`r1omni.claims`, so that the reasoning's cue claims
can be checked (and the grounding reward paid) on clips with no annotation.

* :mod:`r1omni.cues.voice`: pitch level, range and contour, loudness, speaking rate and pauses from the
  decoded waveform, against a stated speaker reference.

Not measured yet: the facial cues (claims about them stay "not checkable" on unannotated clips).
"""

from r1omni.cues.voice import VoiceMeasures, VoiceReference, measure_voice, track_pitch, voice_cues

__all__ = ["VoiceReference", "VoiceMeasures", "track_pitch", "measure_voice", "voice_cues"]
