"""Procedural faces whose expression carries the facial cues of :mod:`r1omni.synth.cues`.

A face is drawn with PIL at twice the frame size and downsampled (anti-aliasing for free). The
expression is made of few, bold parts because a ~1M-parameter vision tower sees 56x56 frames: thick
brow strokes whose height and slant move, a thick mouth whose corners move a lot and which opens
into a dark region, eyes whose opening changes, and wrinkle strokes across the nose. Over a clip
the expression grows from near rest (first frame) to its apex (by ``apex_fraction`` of the clip).

Identity (head shape, skin and hair colour, eye spacing, mouth width) comes from a pool drawn per
style; the clip adds pose, position and per-frame +-1 px shake, lighting, background and pixel
noise. With a hue (``background_hue``, :data:`BACKGROUND_HUES`) the background is tinted before the
face is drawn over it, so the face's pixels are exactly those of the untinted clip. Two styles exist:
"soft" (ID: skin tones, elliptic heads, smooth gradient backgrounds) and "flat" (OOD: unnatural flat
colours, rounded-square outlined heads, solid eyes, thinner strokes, textured backgrounds). Shapes are
the same functions of the cues in both.

Face units: u to the right, v downwards, the head spans u in [-1, 1]; ``R`` pixels per unit.
Array letters: T frames, H/W frame height/width in pixels, S the supersampled canvas size.
This module draws frames; it does not choose cue values or write files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from r1omni.claims import FACE_CUES

__all__ = ["FaceStyle", "FACE_STYLES", "BACKGROUND_HUES", "tint", "sample_identity", "render_face",
           "expression_course"]

_SUPERSAMPLE = 2

# The background hues of SynthConfig.nuisance_strength, one per label in r1omni.labels.DFEW order (happy,
# sad, neutral, angry, surprise, disgust, fear): saturated and far apart, so a small CNN tells them apart
# at a glance in either style.
BACKGROUND_HUES: tuple[tuple[int, int, int], ...] = (
    (225, 45, 45), (45, 95, 225), (235, 150, 30), (60, 185, 70), (40, 200, 210), (200, 60, 205), (230, 225, 40))
_TINT_SHARE = 0.5
"""How much of a tinted background is the hue: the style's pattern and shading still show through."""


def tint(pixels: np.ndarray, hue: tuple[int, int, int] | None) -> np.ndarray:
    """``pixels`` (..., 3) float blended towards ``hue`` (None: returned as they are); draws nothing."""
    if hue is None:
        return pixels
    return pixels * (1 - _TINT_SHARE) + np.asarray(hue, dtype=pixels.dtype) * _TINT_SHARE


@dataclass(frozen=True)
class FaceStyle:
    """The drawing conventions of one style."""

    skin_palette: tuple[tuple[int, int, int], ...]
    hair_palette: tuple[tuple[int, int, int], ...]
    cloth_palette: tuple[tuple[int, int, int], ...]
    feature_rgb: tuple[int, int, int]
    """Colour of brows, eye outlines, pupils and wrinkle strokes."""
    head_exponent: float
    """Superellipse exponent of the head outline: 2 is an ellipse, 4 a rounded square."""
    stroke_scale: float
    """Multiplies every stroke width."""
    outline: bool
    """Draw a dark outline around head and features."""
    sclera: bool
    """Eyes as white sclera with a pupil (else solid dark ellipses)."""
    background: str
    """"gradient", "stripes" or "checker"."""
    background_palette: tuple[tuple[int, int, int], ...]


FACE_STYLES: dict[str, FaceStyle] = {
    "soft": FaceStyle(
        skin_palette=((241, 204, 177), (224, 172, 138), (198, 140, 104), (160, 108, 76), (118, 78, 54),
                      (250, 218, 196)),
        hair_palette=((40, 30, 25), (90, 60, 35), (150, 110, 60), (200, 170, 110), (60, 60, 60), (120, 40, 25)),
        cloth_palette=((60, 90, 150), (150, 60, 60), (70, 120, 80), (110, 110, 110), (180, 150, 90)),
        feature_rgb=(35, 25, 22),
        head_exponent=2.0,
        stroke_scale=1.0,
        outline=False,
        sclera=True,
        background="gradient",
        background_palette=((200, 205, 215), (170, 190, 200), (215, 205, 185), (150, 160, 150), (225, 225, 230),
                            (185, 175, 200)),
    ),
    "flat": FaceStyle(
        skin_palette=((140, 190, 235), (150, 220, 160), (200, 160, 230), (250, 190, 90), (240, 140, 150)),
        hair_palette=((20, 40, 120), (120, 20, 90), (10, 90, 70), (200, 60, 20)),
        cloth_palette=((240, 220, 60), (40, 40, 40), (230, 240, 250), (120, 200, 220)),
        feature_rgb=(20, 20, 70),
        head_exponent=4.0,
        stroke_scale=0.8,
        outline=True,
        sclera=False,
        background="stripes",
        background_palette=((250, 240, 200), (40, 60, 90), (230, 200, 220), (90, 130, 60), (255, 255, 255)),
    ),
}


def _pick(palette: tuple[tuple[int, int, int], ...], rng: np.random.Generator, jitter: float) -> list[int]:
    base = np.array(palette[int(rng.integers(len(palette)))], dtype=np.float64)
    return [int(v) for v in np.clip(base + rng.normal(0, jitter, 3), 0, 255)]


def sample_identity(rng: np.random.Generator, face_style: str) -> dict[str, Any]:
    """One face identity of a style: colours and proportions that stay fixed across its clips."""
    style = FACE_STYLES[face_style]
    return {
        "skin_rgb": _pick(style.skin_palette, rng, 8),
        "hair_rgb": _pick(style.hair_palette, rng, 10),
        "cloth_rgb": _pick(style.cloth_palette, rng, 15),
        "hairline": round(float(rng.uniform(0.45, 0.75)), 3),
        "aspect": round(float(rng.uniform(1.12, 1.32)), 3),
        "eye_spacing": round(float(rng.uniform(0.34, 0.44)), 3),
        "eye_size": round(float(rng.uniform(0.9, 1.12)), 3),
        "mouth_width": round(float(rng.uniform(0.88, 1.12)), 3),
    }


def expression_course(num_frames: int, apex_fraction: float, onset_level: float = 0.1) -> np.ndarray:
    """Share of the apex expression shown in each frame: ``onset_level`` at frame 0, rising smoothly
    to 1 at ``apex_fraction`` of the clip and held there."""
    s = np.linspace(0.0, 1.0, num_frames) / apex_fraction  # (T,)
    s = np.clip(s, 0.0, 1.0)
    return onset_level + (1.0 - onset_level) * s * s * (3.0 - 2.0 * s)  # (T,) smoothstep


def _background(size_px: int, style: FaceStyle, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) float background of one clip."""
    first = np.array(_pick(style.background_palette, rng, 12), dtype=np.float64)
    second = np.array(_pick(style.background_palette, rng, 12), dtype=np.float64)
    y, x = np.mgrid[0:size_px, 0:size_px] / size_px  # (S, S) each
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)) + 0.5  # (S, S)
    if style.background == "gradient":
        mix = np.clip(ramp, 0, 1)
    elif style.background == "stripes":
        period = rng.uniform(0.12, 0.25)
        mix = (np.sin(2 * np.pi * ramp / period) > 0).astype(np.float64)
    elif style.background == "checker":
        cell = rng.uniform(0.1, 0.2)
        mix = ((np.floor(x / cell) + np.floor(y / cell)) % 2).astype(np.float64)
    else:
        raise ValueError(f"unknown background kind {style.background!r}")
    return first * (1 - mix[..., None]) + second * mix[..., None]  # (S, S, 3)


class _Canvas:
    """Maps face units to supersampled pixels for one frame and draws bold shapes."""

    def __init__(self, image: Image.Image, center_px: tuple[float, float], unit_px: float, roll_rad: float,
                 stroke_scale: float) -> None:
        self.draw = ImageDraw.Draw(image)
        self.cx, self.cy = center_px
        self.unit_px = unit_px
        self.cos, self.sin = np.cos(roll_rad), np.sin(roll_rad)
        self.stroke_scale = stroke_scale

    def points(self, u: np.ndarray, v: np.ndarray) -> list[tuple[float, float]]:
        x = self.cx + self.unit_px * (u * self.cos - v * self.sin)
        y = self.cy + self.unit_px * (u * self.sin + v * self.cos)
        return list(zip(x.tolist(), y.tolist()))

    def width(self, units: float) -> int:
        return max(1, int(round(units * self.unit_px * self.stroke_scale)))

    def polygon(self, u: np.ndarray, v: np.ndarray, fill, outline=None, outline_units: float = 0.0) -> None:
        pts = self.points(u, v)
        self.draw.polygon(pts, fill=tuple(fill))
        if outline is not None:
            self.draw.line(pts + pts[:1], fill=tuple(outline), width=self.width(outline_units), joint="curve")

    def line(self, u: np.ndarray, v: np.ndarray, fill, units: float) -> None:
        self.draw.line(self.points(u, v), fill=tuple(fill), width=self.width(units), joint="curve")


def _superellipse(half_w: float, half_h: float, exponent: float, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    power = 2.0 / exponent
    return half_w * np.sign(c) * np.abs(c) ** power, half_h * np.sign(s) * np.abs(s) ** power


def _draw_face(canvas: _Canvas, cues: dict[str, float], identity: dict[str, Any], style: FaceStyle) -> None:
    aspect = identity["aspect"]
    skin = np.array(identity["skin_rgb"], dtype=np.float64)
    dark = style.feature_rgb
    outline = dark if style.outline else None

    # Neck and shoulders, then ears, head, hair.
    canvas.polygon(np.array([-0.38, 0.38, 0.42, -0.42]), np.array([aspect * 0.7, aspect * 0.7, 2.2, 2.2]),
                   (skin * 0.85).astype(int))
    canvas.polygon(np.array([-1.6, 1.6, 1.6, -1.6]), np.array([aspect + 0.35, aspect + 0.35, 3.0, 3.0]),
                   identity["cloth_rgb"])
    for side in (-1, 1):
        u, v = _superellipse(0.16, 0.26, 2.0, 20)
        canvas.polygon(u + side * 0.98, v - 0.05, (skin * 0.9).astype(int), outline, 0.05)
    head_u, head_v = _superellipse(1.0, aspect, style.head_exponent)
    canvas.polygon(head_u, head_v, skin.astype(int), outline, 0.07)
    hair_top = -aspect * identity["hairline"]
    on_top = head_v < hair_top
    if on_top.any():
        order = np.argsort(head_u[on_top])
        hu, hv = head_u[on_top][order], head_v[on_top][order]
        canvas.polygon(np.concatenate([hu, hu[::-1]]), np.concatenate([hv, np.full_like(hv, hair_top)]),
                       identity["hair_rgb"])

    # Eyes: height follows eye_open.
    eye_half_h = (0.035 + 0.2 * cues["eye_open"]) * identity["eye_size"]
    eye_half_w = 0.2 * identity["eye_size"]
    for side in (-1, 1):
        ex, ey = side * identity["eye_spacing"], -0.15
        u, v = _superellipse(eye_half_w, eye_half_h, 2.0, 28)
        if style.sclera:
            canvas.polygon(u + ex, v + ey, (245, 245, 245), dark, 0.05)
            pupil_r = min(0.1 * identity["eye_size"], eye_half_h)
            pu, pv = _superellipse(pupil_r, pupil_r, 2.0, 16)
            canvas.polygon(pu + ex, pv + ey, dark)
        else:
            canvas.polygon(u + ex, v + ey, dark)

    # Brows: thick strokes; brow_raise moves both ends, brow_tilt lifts the inner ends (or drops them).
    brow_v = -0.52 - 0.22 * cues["brow_raise"]
    tilt = cues["brow_tilt"]
    for side in (-1, 1):
        u = side * np.array([0.12, 0.4, 0.7])
        v = np.array([brow_v - 0.24 * tilt, brow_v - 0.04 - 0.06 * tilt, brow_v + 0.1 * tilt])
        canvas.line(u, v, dark, 0.16)

    # Nose, wrinkle strokes across its bridge for disgust.
    nose_rgb = (skin * 0.7).astype(int)
    canvas.line(np.array([0.02, 0.08, -0.08]), np.array([-0.05, 0.2, 0.24]), nose_rgb, 0.07)
    wrinkle = cues["nose_wrinkle"]
    if wrinkle > 0.15:
        shade = np.clip(1.0 - 0.75 * wrinkle, 0.2, 1.0)
        color = (skin * shade).astype(int)
        for k, v0 in enumerate((-0.08, 0.02, 0.12)):
            half = 0.13 + 0.03 * k
            u = np.array([-half, 0.0, half])
            canvas.line(u, np.array([v0 + 0.03, v0 - 0.02, v0 + 0.03]), color, 0.045 + 0.05 * wrinkle)

    # Mouth: a thick curve whose corners go up (smile) or down (frown) and which opens downwards.
    curve, opening = cues["mouth_curve"], cues["mouth_open"]
    mouth_v = 0.43 * aspect - 0.08 * wrinkle  # disgust raises the upper lip
    half_w = 0.42 * identity["mouth_width"] * (1 + 0.15 * max(curve, 0.0)) * (1 - 0.3 * opening)
    u = np.linspace(-half_w, half_w, 15)
    bulge = 1.0 - (u / half_w) ** 2  # 0 at the corners, 1 in the middle
    centre_line = mouth_v - 0.28 * curve * (1 - bulge) + 0.05 * curve
    # Dark lips on every skin tone: the mouth must stand out at 56x56.
    lip_rgb = (np.array([105, 28, 38]) * 0.85 + skin * 0.15).astype(int) if style.sclera else dark
    if opening > 0.12:
        upper = centre_line - 0.1 * opening * bulge
        lower = centre_line + 0.42 * opening * bulge
        canvas.polygon(np.concatenate([u, u[::-1]]), np.concatenate([upper, lower[::-1]]), (70, 18, 28),
                       lip_rgb, 0.1)
    else:
        canvas.line(u, centre_line, lip_rgb, 0.13)


def render_face(cues: dict[str, float], identity: dict[str, Any], rng: np.random.Generator, *,
                frame_size_px: int = 64, num_frames: int = 8, face_style: str = "soft",
                apex_fraction: float = 0.4, pose_variation: float = 1.0,
                background_hue: tuple[int, int, int] | None = None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one face showing ``cues`` (apex values, see cues.FACE_CUES).

    ``rng`` draws the clip's nuisances (pose, position, lighting, background, noise); the same
    generator state gives the same frames. ``background_hue`` tints the background only (no extra
    draws: the same state gives the same face, pose and noise with or without it).
    """
    missing = [c.name for c in FACE_CUES if c.name not in cues]
    if missing:
        raise KeyError(f"render_face: cue value(s) missing: {missing}")
    style = FACE_STYLES[face_style]
    size_px = frame_size_px * _SUPERSAMPLE
    background = tint(_background(size_px, style, rng), background_hue)  # (S, S, 3)
    base = Image.fromarray(background.astype(np.uint8))
    # Head size, position and roll, scaled by the style's pose variation (1 = the full ranges).
    v = pose_variation
    unit_px = size_px * (0.29 + v * rng.uniform(-0.02, 0.02))
    centre = (size_px * (0.5 + v * rng.uniform(-0.05, 0.05)), size_px * (0.515 + v * rng.uniform(-0.045, 0.045)))
    roll_rad = np.deg2rad(v * rng.uniform(-7, 7))
    light_angle = rng.uniform(0, 2 * np.pi)
    light_strength = rng.uniform(0.0, 0.35)
    brightness = rng.uniform(0.85, 1.1)
    noise_std = rng.uniform(1.5, 5.0)
    y, x = np.mgrid[0:frame_size_px, 0:frame_size_px] / frame_size_px - 0.5  # (H, W) each
    light = brightness * (1 + light_strength * (np.cos(light_angle) * x + np.sin(light_angle) * y))  # (H, W)
    light = light.astype(np.float32)

    course = expression_course(num_frames, apex_fraction)  # (T,)
    drawn: dict[float, np.ndarray] = {}  # expression share -> (H, W, 3) float frame; the apex is drawn once
    frames = np.empty((num_frames, frame_size_px, frame_size_px, 3), np.uint8)  # (T, H, W, 3)
    for t in range(num_frames):
        share = round(float(course[t]), 4)
        if share not in drawn:
            frame_cues = {c.name: c.rest + share * (cues[c.name] - c.rest) for c in FACE_CUES}
            image = base.copy()
            _draw_face(_Canvas(image, centre, unit_px, roll_rad, style.stroke_scale), frame_cues, identity, style)
            drawn[share] = np.asarray(image.resize((frame_size_px, frame_size_px), Image.BILINEAR), dtype=np.float32)
        dx, dy = rng.integers(-1, 2, size=2)  # +-1 px camera shake
        padded = np.pad(drawn[share], ((1, 1), (1, 1), (0, 0)), mode="edge")  # (H+2, W+2, 3)
        small = padded[1 + dy:1 + dy + frame_size_px, 1 + dx:1 + dx + frame_size_px]  # (H, W, 3)
        small = small * light[..., None] + noise_std * rng.standard_normal(small.shape, dtype=np.float32)
        frames[t] = np.clip(small, 0, 255).astype(np.uint8)
    return frames
