"""Media decoding and encoding: frames and soundtracks from files, with one clear error type.

Built on PyAV. Decoding never substitutes data for what is missing: a file without an audio
stream is reported as such, a broken file raises :class:`MediaError` naming it.
"""

from r1omni.media.audio import Audio, has_audio_stream, load_audio
from r1omni.media.encode import write_audio, write_clip
from r1omni.media.errors import MediaError
from r1omni.media.video import Frames, sample_frames, segment_midpoints

__all__ = ["Audio", "Frames", "MediaError", "has_audio_stream", "load_audio", "sample_frames",
           "segment_midpoints", "write_audio", "write_clip"]
