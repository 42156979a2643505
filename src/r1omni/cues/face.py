"""Facial cues measured on sampled frames with OpenCV's Haar cascades (their weights ship inside
``opencv-python-headless``, so nothing is downloaded).

What a Haar cascade can tell honestly, and so all this measures (the face detector is
:func:`r1omni.media.faces.find_faces`, the one ``--face-crop`` uses):

* whether a face is visible (the frontal-face cascade on each frame; the largest detection counts);
* whether it smiles (the smile cascade inside the lower half of the face box, strict enough that a
  closed neutral mouth rarely fires): a smile in at least half of the face frames is measured as
  mouth corners up. No smile does *not* tell "down" from "flat", so then the mouth stays unmeasured.

Brow position, eye opening, mouth opening and nose wrinkles need landmarks, which no detector
that ships its weights offline can give us here: MediaPipe 0.10.21 is the last release that bundles
its face-mesh model, and it pins numpy<2 and pulls opencv-contrib-python, which installs over the
same ``cv2`` package (it ran under our numpy 2 in a scratch venv, but ``pip check`` rejects it);
later MediaPipe releases download the model at run time. OpenCV's eye cascade finds open eyes but
cannot grade them narrowed / normal / wide. So claims about these cues stay "not checkable" on
clips without annotation. The benchmark's drawn 64-pixel faces are not photographs and the cascades
(trained on photos) find few of them; ``benchmarks/cues.py`` reports how many.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from r1omni.media.faces import cascade, find_faces, gray

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


def _smiles(image: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    mouth = image[y + h // 2:y + h, x:x + w]
    found = cascade("haarcascade_smile.xml").detectMultiScale(mouth, scaleFactor=1.1, minNeighbors=20,
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
        smile_frames += _smiles(gray(frame, equalize=True), boxes[0])
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
