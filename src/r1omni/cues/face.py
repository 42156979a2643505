"""Facial cues measured on sampled frames with OpenCV's Haar cascades (their weights ship inside
``opencv-python-headless``, so nothing is downloaded).

What a Haar cascade can tell honestly, and so all this measures:

* whether a face is visible (the frontal-face cascade on each frame; the largest detection counts);
* whether it smiles (the smile cascade inside the lower half of the face box, strict enough that a
  closed neutral mouth rarely fires): a smile in at least half of the face frames is measured as
  mouth corners up. No smile does *not* tell "down" from "flat", so then the mouth stays unmeasured.

Brow position, eye opening, mouth opening and nose wrinkles need landmarks, which no detector
shipping its weights offline here provides; claims about them stay "not checkable" on clips
without annotation. The benchmark's drawn 64-pixel faces are not photographs and the cascades
(trained on photos) find few of them; ``benchmarks/cues.py`` reports how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

__all__ = ["FaceMeasures", "find_faces", "measure_face", "face_cues"]

_SMILING_MOUTH_CURVE = 0.9   # a value inside the "up" level of r1omni.claims' mouth_curve


@dataclass(frozen=True)
class FaceMeasures:
    """Per-clip face detections over the sampled frames."""

    frames: int
    face_frames: int                                 # frames with a face
    smile_frames: int                                # of those, frames whose face smiles
    largest_box: tuple[int, int, int, int] | None    # (x, y, w, h) of the largest face seen

    @property
    def face_found(self) -> bool:
        return self.face_frames > 0


@lru_cache(maxsize=None)
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {name} did not load from {cv2.data.haarcascades}; reinstall opencv-python-headless")
    return cascade


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB (H, W, 3), got {frame.dtype} {frame.shape}")
    return cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))


def find_faces(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in one RGB frame, largest first."""
    gray = _gray(frame)
    side = min(gray.shape)
    boxes = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 10),) * 2)
    return sorted((tuple(int(v) for v in box) for box in boxes), key=lambda b: -b[2] * b[3])


def _smiles(gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    mouth = gray[y + h // 2:y + h, x:x + w]
    found = _cascade("haarcascade_smile.xml").detectMultiScale(mouth, scaleFactor=1.1, minNeighbors=20,
                                                                minSize=(max(8, w // 4), max(6, h // 10)))
    return len(found) > 0


def measure_face(frames: np.ndarray) -> FaceMeasures:
    """Detections over the sampled frames (T, H, W, 3) uint8."""
    face_frames = smile_frames = 0
    largest = None
    for frame in frames:
        boxes = find_faces(frame)
        if not boxes:
            continue
        face_frames += 1
        smile_frames += _smiles(_gray(frame), boxes[0])
        if largest is None or boxes[0][2] * boxes[0][3] > largest[2] * largest[3]:
            largest = boxes[0]
    return FaceMeasures(len(frames), face_frames, smile_frames, largest)


def face_cues(frames: np.ndarray) -> dict[str, float]:
    """Measured facial cue values (:mod:`r1omni.claims` ranges); empty when no face is seen or nothing
    about it is measurable."""
    measures = measure_face(frames)
    if measures.face_found and measures.smile_frames >= max(1, measures.face_frames / 2):
        return {"mouth_curve": _SMILING_MOUTH_CURVE}
    return {}
