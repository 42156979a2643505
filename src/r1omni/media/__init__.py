"""Media decoding and encoding: frames and soundtracks from files, with one clear error type.

Built on PyAV. ``sample_frames`` decodes the official segment-midpoint frames (seeking when the
file allows), ``load_audio`` a mono soundtrack, ``probe`` reads headers only; ``write_clip`` /
``write_audio`` make real files for tests and benchmarks.

Decoding never substitutes data for what is missing: a file without an audio stream is reported as
such (``Audio.has_audio`` is False), and a missing, unreadable, empty, corrupt or truncated file
raises :class:`MediaError`, whose message names the file and the cause. Not here: resizing,
normalisation, mel features (model-specific, see ``r1omni.models``).
"""

from r1omni.media.audio import Audio, has_audio_stream, load_audio
from r1omni.media.encode import write_audio, write_clip
from r1omni.media.errors import MediaError
from r1omni.media.probe import MediaInfo, probe
from r1omni.media.video import Frames, sample_frames, segment_midpoints

__all__ = ["Audio", "Frames", "MediaError", "MediaInfo", "has_audio_stream", "load_audio", "probe",
           "sample_frames", "segment_midpoints", "write_audio", "write_clip"]
