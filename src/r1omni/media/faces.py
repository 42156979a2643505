"""Where the face is in a frame, and frames cropped to it (``--face-crop``).

OpenCV's frontal-face Haar cascade ships its weights inside ``opencv-python-headless``, so detection
works offline and on any clip. The same detector serves the measured facial cues
(:mod:`r1omni.cues.face`), so "a face was found" means one thing everywhere.

Why crop: a phone held at arm's length puts the face in a small part of the frame, and the model
sees every frame resized to its own input size, so the face shrinks to a few pixels. Cropping the
largest face with a margin and resizing the crop back to the frame's size gives the model the face
at the size it was trained on. A frame where the cascade misses takes the box of the nearest frame
that has one (the head moves little between sampled frames); a clip where no frame has a face is
used whole, and :class:`FaceCrop` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["Box", "FaceCrop", "find_faces", "crop_faces"]

Box = tuple[int, int, int, int]
"""(x, y, width, height) in pixels."""


@lru_cache(maxsize=None)
def cascade(name: str):
    """A Haar cascade of those bundled with OpenCV, loaded once."""
    import cv2

    loaded = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if loaded.empty():
        raise RuntimeError(f"OpenCV's {name} did not load from {cv2.data.haarcascades}; "
                           "reinstall opencv-python-headless")
    return loaded


def gray(frame: np.ndarray, equalize: bool = False) -> np.ndarray:
    """Grey image of one uint8 RGB frame (what the cascades read). Equalising the histogram helps the
    smile cascade inside a face box, but hurts face detection when a flat background fills most of
    the frame (measured: the astronaut photo shrunk into a flat grey frame was missed)."""
    import cv2

    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB (H, W, 3), got {frame.dtype} {frame.shape}")
    image = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.equalizeHist(image) if equalize else image


def find_faces(frame: np.ndarray) -> list[Box]:
    """Face boxes in one RGB frame, largest first; faces down to a twentieth of the frame's short side
    (20 px at least, below which the cascade's 24-px window has nothing to read)."""
    image = gray(frame)
    side = min(image.shape)
    boxes = cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        image, scaleFactor=1.1, minNeighbors=5, minSize=(max(20, side // 20),) * 2)
    return sorted((tuple(int(v) for v in box) for box in boxes), key=lambda b: -b[2] * b[3])


@dataclass(frozen=True)
class FaceCrop:
    """Frames cropped to the face, and what the detector found."""

    frames: np.ndarray
    """(T, H, W, 3) uint8, the input's shape: crops resized back to the frame size, or the input itself."""
    face_frames: int
    """Sampled frames in which a face was found."""
    boxes: tuple[Box | None, ...]
    """Per frame, the crop box used (None when the clip was used whole)."""

    @property
    def found(self) -> bool:
        return self.face_frames > 0

    def summary(self) -> dict:
        """What a prediction record says about the crop."""
        return {"face_found": self.found, "face_frames": self.face_frames, "frames": len(self.boxes),
                "used": "face crop" if self.found else "whole frame (no face found)"}


def _with_margin(box: Box, margin: float, height: int, width: int) -> Box:
    """A square around ``box`` grown by ``margin`` of its side on each side, kept inside the frame."""
    x, y, w, h = box
    side = min(int(round(max(w, h) * (1 + 2 * margin))), height, width)
    cx, cy = x + w / 2, y + h / 2
    left = int(np.clip(round(cx - side / 2), 0, width - side))
    top = int(np.clip(round(cy - side / 2), 0, height - side))
    return left, top, side, side


def crop_faces(frames: np.ndarray, margin: float = 0.3) -> FaceCrop:
    """Crop each frame to its largest face (plus ``margin`` of the face's side around it)."""
    import cv2

    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    found = [next(iter(find_faces(frame)), None) for frame in frames]
    hits = [i for i, box in enumerate(found) if box is not None]
    if not hits:
        return FaceCrop(frames, 0, (None,) * len(frames))
    height, width = frames.shape[1:3]
    boxes, crops = [], []
    for i, frame in enumerate(frames):
        nearest = found[min(hits, key=lambda j: abs(j - i))]
        x, y, w, h = _with_margin(nearest, margin, height, width)
        boxes.append((x, y, w, h))
        crops.append(cv2.resize(frame[y:y + h, x:x + w], (width, height), interpolation=cv2.INTER_AREA))
    return FaceCrop(np.stack(crops), len(hits), tuple(boxes))
