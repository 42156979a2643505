"""Face detection and face-focused frames on a real photo made small in the frame, and on frames with no face."""

from __future__ import annotations

import numpy as np
import pytest
from real_media import astronaut_frames, small_face_frames

from r1omni.media.faces import crop_faces, find_faces


def test_a_small_face_is_found_and_cropped_to_fill_the_frame():
    frames = small_face_frames(4)
    whole_face = find_faces(frames[0])[0]
    crop = crop_faces(frames)
    assert crop.found and crop.face_frames == 4 and crop.frames.shape == frames.shape
    x, y, w, h = crop.boxes[0]
    fx, fy, fw, fh = whole_face
    assert x <= fx and y <= fy and x + w >= fx + fw and y + h >= fy + fh   # the crop holds the face
    assert w < frames.shape[2] / 2                                        # and is much smaller than the frame
    in_crop = find_faces(crop.frames[0])[0]
    assert in_crop[2] > 2.5 * whole_face[2]                               # so the model sees a bigger face
    assert crop.summary() == {"face_found": True, "face_frames": 4, "frames": 4, "used": "face crop"}


def test_a_frame_the_detector_misses_takes_its_neighbours_box():
    frames = small_face_frames(3)
    frames[1] = 96                                      # the face disappears in the middle frame
    crop = crop_faces(frames)
    assert crop.face_frames == 2 and crop.boxes[1] in (crop.boxes[0], crop.boxes[2])


def test_no_face_leaves_the_clip_whole_and_says_so():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    crop = crop_faces(frames)
    assert not crop.found and crop.frames is frames and crop.boxes == (None,) * 3
    assert crop.summary()["used"] == "whole frame (no face found)"


def test_the_crop_box_stays_inside_the_frame():
    frames = astronaut_frames(2, 128)                   # a face filling most of the frame: the margin is clipped
    crop = crop_faces(frames, margin=1.0)
    for x, y, w, h in crop.boxes:
        assert x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128 and w == h
    with pytest.raises(ValueError, match="margin"):
        crop_faces(frames, margin=-0.1)
