"""Write clips: frames and a waveform into a real container (mp4, mov, mkv, webm, avi) or an audio file.

Used by the benchmark generator, the synthetic benchmark and tests, so that everything downstream
exercises the same decoding path as real data. Codec choices per container are ones PyAV's bundled
FFmpeg can write (H.264 / VP9 / MPEG-4 video; AAC / FLAC / Opus / PCM / MP3 audio). Not a general
transcoder: no resizing, no colour management beyond yuv420p, no variable frame rate. Bad
arguments raise ``ValueError`` naming the path; nothing is written for zero frames.

The same frames and waveform give the same file, byte for byte, in any process and on any machine
(the generated benchmark is one benchmark). What stands in the way, and how it is handled here:
- x264 picks assembly by CPU, and on AVX-512 machines one of its paths makes the bitstream depend on
  process state (measured: the same frames gave 2-5 different files over 15 encodes in three
  processes). x264 runs without assembly (``asm=0``), whose output is the same everywhere.
- FFmpeg's RGB -> YUV conversion (libswscale) takes other SIMD paths on other CPUs, and its plain-C
  path gives other pixels than its x86 one. The conversion is done here instead, in integers.
- Matroska / WebM write random ids and every muxer a version string: ``+bitexact`` removes both. The
  audio encoders write theirs too (the AAC encoder in the first packet: one byte of every clip differed
  between FFmpeg 8.1.2 and 8.1.3), so every audio stream runs bit-exact as well (x264 and libvpx write no
  FFmpeg version; MPEG-4 has its own flags below; a test checks every container); in that mode the AAC
  encoder also takes its C float routines (generator version 7's clips decode to slightly other samples
  than version 6's).
- FFmpeg's MPEG-4 encoder picks SIMD DCTs that differ from its C ones: it runs bit-exact, integer DCTs.
- FFmpeg's AAC encoder rounds differently with and without AVX2 / FMA (measured: 11 of the quick
  benchmark's 569 files differed with FFmpeg capped at SSE4.2). Every file is encoded with FFmpeg's
  kernels capped at SSE2, which every x86-64 CPU has (:data:`X86_64_BASELINE`).
libvpx (VP9) gives the same bytes at every SIMD level it offers (``VPX_SIMD_CAPS_MASK``, measured).
libopus chooses its level (C / SSE4.1 / AVX2) by CPU with no override: AVX2 and AVX-512 machines
take the same path; a CPU without AVX2 may write other Opus bytes (the .webm styles).
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from r1omni.environment import ffmpeg_cpu_flags_within, isa_level

__all__ = ["write_clip", "write_audio", "CONTAINER_CODECS", "X86_64_BASELINE"]

# container suffix -> (video codec, pixel format, audio codec, audio sample format)
CONTAINER_CODECS: dict[str, tuple[str, str, str, str]] = {
    ".mp4": ("libx264", "yuv420p", "aac", "fltp"),
    ".mkv": ("libx264", "yuv420p", "flac", "s16"),
    ".webm": ("libvpx-vp9", "yuv420p", "libopus", "flt"),
    ".avi": ("mpeg4", "yuv420p", "pcm_s16le", "s16"),
    ".mov": ("libx264", "yuv420p", "pcm_s16le", "s16"),
}
# No random stream ids (Matroska / WebM write a random SegmentUID otherwise) and no version strings:
# the same frames give the same file, byte for byte.
_BITEXACT = {"fflags": "+bitexact"}
# The same for the audio encoders (see the module docstring): FFmpeg's AAC encoder wrote "Lavc62.28.102" into
# each clip's first packet, so PyAV 18.1.0 -> 18.1.1 changed one byte of every clip.
_BITEXACT_CODEC = {"flags": "+bitexact"}
X86_64_BASELINE = 0x1 | 0x2 | 0x8 | 0x10 | 0x1000
"""FFmpeg's flags for MMX, MMXEXT, SSE, SSE2 and CMOV (``AV_CPU_FLAG_*``): what every x86-64 CPU has."""
# x264 without its CPU-dependent assembly (see the module docstring).
_X264_PARAMS = "asm=0"
# BT.601 limited range ("tv"), the matrix decoders assume for an untagged stream, in 8-bit integers:
# rows give Y, U, V from R, G, B; rounding offset 128 before the shift by 8.
_RGB_TO_YUV = np.array([[66, 129, 25], [-38, -74, 112], [112, -94, -18]], dtype=np.int32)
_AUDIO_CODECS = {".wav": ("pcm_s16le", "s16"), ".flac": ("flac", "s16"), ".mp3": ("libmp3lame", "fltp"),
                 ".m4a": ("aac", "fltp"), ".ogg": ("libopus", "flt")}


def _as_channels(waveform: np.ndarray) -> np.ndarray:
    wav = np.asarray(waveform, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2 or wav.shape[0] not in (1, 2):
        raise ValueError(f"waveform must be (samples,) or (channels, samples) with 1 or 2 channels, "
                         f"got shape {wav.shape}")
    return np.clip(wav, -1.0, 1.0)


def _x86_64_baseline() -> contextlib.AbstractContextManager:
    """FFmpeg's kernels capped at :data:`X86_64_BASELINE` while a file is written, on x86-64 machines."""
    return ffmpeg_cpu_flags_within(X86_64_BASELINE) if isa_level() is not None else contextlib.nullcontext()


def _yuv420p(rgb: np.ndarray) -> np.ndarray:
    """One (H, W, 3) uint8 RGB frame as yuv420p planes stacked (H * 3 / 2, W), as PyAV takes them.

    Integer arithmetic only, so every CPU gives the same bytes; chroma is computed from the sum of
    each 2 x 2 block (the average, rounded once)."""
    height, width, _ = rgb.shape
    pixels = rgb.astype(np.int32)                                               # (H, W, 3)
    luma = ((pixels @ _RGB_TO_YUV[0] + 128) >> 8) + 16                          # (H, W)
    blocks = pixels.reshape(height // 2, 2, width // 2, 2, 3).sum(axis=(1, 3))   # (H/2, W/2, 3), x4
    chroma = ((blocks @ _RGB_TO_YUV[1:].T + 512) >> 10) + 128                    # (H/2, W/2, 2)
    planes = np.concatenate([luma.ravel(), chroma[..., 0].ravel(), chroma[..., 1].ravel()])
    return np.clip(planes, 0, 255).astype(np.uint8).reshape(-1, width)           # (H*3/2, W)


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream, wav: np.ndarray,
                  sample_format: str, sample_rate_hz: int) -> None:
    layout = "mono" if wav.shape[0] == 1 else "stereo"
    chunk = stream.codec_context.frame_size or 1024
    pts = 0
    for start in range(0, wav.shape[1], chunk):
        piece = wav[:, start:start + chunk]
        if sample_format == "s16":  # the decoder divides by 32768: round, do not truncate
            data = np.clip(np.round(piece * 32768), -32768, 32767).astype(np.int16)
        else:
            data = piece
        if sample_format in ("s16", "flt"):  # packed: (1, samples*channels) interleaved
            data = np.ascontiguousarray(data.T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_format, layout=layout)
        frame.sample_rate = sample_rate_hz
        frame.pts = pts
        pts += piece.shape[1]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_clip(path: str | os.PathLike, frames: np.ndarray, fps: float, waveform: np.ndarray | None = None,
               sample_rate_hz: int = 16000, crf: int = 23, keyframe_interval: int | None = None,
               faststart: bool = False) -> Path:
    """Write ``frames`` (T, H, W, 3) uint8 and an optional waveform (float in [-1, 1]) to ``path``.

    The container follows the suffix (see ``CONTAINER_CODECS``). H and W must be even (yuv420p).
    ``waveform`` is (S,) mono or (C, S) with C = 2 for stereo. ``keyframe_interval`` fixes the GOP
    length in frames (x264 scene-cut keyframes are then disabled too); None keeps the encoder's
    default. ``faststart`` (mp4 / mov only) puts the sample index before the media data, as
    streaming sites do, so that a file cut short still opens.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONTAINER_CODECS:
        raise ValueError(f"{path}: unsupported container {suffix!r}; use one of {sorted(CONTAINER_CODECS)}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    num_frames, height, width, _ = frames.shape
    if num_frames == 0:
        raise ValueError(f"{path}: need at least one frame (a container without packets is never written)")
    if height % 2 or width % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {width}x{height}")
    video_codec, pix_fmt, audio_codec, sample_format = CONTAINER_CODECS[suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    if faststart and suffix not in (".mp4", ".mov"):
        raise ValueError(f"{path}: faststart applies to mp4 / mov only, not {suffix!r}")
    rate = Fraction(fps).limit_denominator(1001)
    options = {**_BITEXACT, "movflags": "faststart"} if faststart else dict(_BITEXACT)
    with _x86_64_baseline(), av.open(str(path), mode="w", options=options) as container:
        vstream = container.add_stream(video_codec, rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, pix_fmt
        # One encoder thread: with frame threads x264 limits motion search by the other threads' progress,
        # so the bitstream (and the decoded pixels, by a few levels) depends on the thread count and on
        # FFmpeg's threading defaults; the same seed must give the same file on every machine.
        vstream.codec_context.thread_count = 1
        if keyframe_interval is not None:
            vstream.codec_context.gop_size = keyframe_interval
        if video_codec == "libx264":
            params = _X264_PARAMS
            if keyframe_interval is not None:
                params += f":keyint={keyframe_interval}:scenecut=0"
            vstream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": params}
        elif video_codec == "mpeg4":  # its SIMD DCTs differ from the C ones: integer DCTs, bit-exact mode
            vstream.options = {"flags": "+bitexact", "dct": "int", "idct": "int"}
        elif video_codec == "libvpx-vp9":
            vstream.options = {"crf": str(crf + 10), "b:v": "0", "deadline": "realtime", "cpu-used": "8"}
        astream = None
        wav = None
        if waveform is not None:
            wav = _as_channels(waveform)
            astream = container.add_stream(audio_codec, rate=sample_rate_hz, options=dict(_BITEXACT_CODEC))
            astream.layout = "mono" if wav.shape[0] == 1 else "stereo"
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(_yuv420p(frames[index]), format="yuv420p")
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None and wav is not None:
            _encode_audio(container, astream, wav, sample_format, sample_rate_hz)
    return path


def write_audio(path: str | os.PathLike, waveform: np.ndarray, sample_rate_hz: int = 16000) -> Path:
    """Write a waveform (float in [-1, 1]) to wav / flac / mp3 / m4a / ogg by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _AUDIO_CODECS:
        raise ValueError(f"{path}: unsupported audio format {suffix!r}; use one of {sorted(_AUDIO_CODECS)}")
    codec, sample_format = _AUDIO_CODECS[suffix]
    wav = _as_channels(waveform)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "ogg" if suffix == ".ogg" else None
    with _x86_64_baseline(), av.open(str(path), mode="w", format=fmt, options=dict(_BITEXACT)) as container:
        stream = container.add_stream(codec, rate=sample_rate_hz, options=dict(_BITEXACT_CODEC))
        stream.layout = "mono" if wav.shape[0] == 1 else "stereo"
        _encode_audio(container, stream, wav, sample_format, sample_rate_hz)
    return path
