"""From a :class:`~r1omni.schema.Sample` to what a policy reads: decoded media plus the question.

One place decides how a clip becomes model input for training, evaluation, explanation and
serving: which frames (the policy's frame count, official segment midpoints), which soundtrack
(the sample's audio file, else the video's own audio stream), which modalities are kept, and what
happens when a video has no audio stream (``missing_audio``): "omit" leaves the audio out of the
prompt (the model sees video only) and is counted by the caller; "error" raises. It never
substitutes silence unasked. With ``face_crop`` the frames are cropped to the face
(:func:`r1omni.media.faces.crop_faces`); what the detector found is each clip's ``notes``, so a
clip used whole because no face was seen says so in every output. With ``transcribe`` the clip's
speech is recognised (:func:`r1omni.media.transcribe.transcribe`) and fills the question's
subtitle slot when the sample has no subtitle of its own; the transcript (text, language, word
times) is a note too, also when the sample's own subtitle was used.

Decoded media can be cached in memory (:class:`MediaCache`): small benchmarks are decoded once, not
once per epoch, and one cache handed to several loaders (the demo's stages and variants) decodes
each file once for all of them.

:meth:`ClipLoader.load_many` is the one decode loop of the package: training, evaluation,
explanation, ``predict`` and the server all call it and get the clips, the samples kept and one
:class:`~r1omni.media.MediaError` per sample that failed. A sample fails when its file cannot be
decoded, and also when the model could not read the decoded clip (``Policy.check_clip``: audio too
short for one Qwen-Omni audio token); a loader made with :meth:`ClipLoader.for_policy` asks, so that
no clip reaches ``prepare`` to fail there and take its whole batch with it. What a failure means is
each caller's policy (skip and count in training, a row with the error in evaluation, a 422 in the
server).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from r1omni.media import MediaError, load_audio, sample_frames
from r1omni.media.faces import crop_faces
from r1omni.media.transcribe import transcribe
from r1omni.models.policy import ClipInput, ClipRejected, Policy
from r1omni.schema import Sample
from r1omni.template import get_prompt, with_subtitle

__all__ = ["ClipLoader", "LoadedClips", "MediaCache", "MODALITIES", "SAMPLE_QUESTION", "REMOVAL_METHODS",
           "ATTRIBUTION_METHODS", "remove_modalities"]

MODALITIES = ("video_audio", "video", "audio")
SAMPLE_QUESTION = "sample"
"""``ClipLoader.prompt`` value meaning: each sample's own question, ``meta["question"]`` (instruction data)."""
REMOVAL_METHODS = ("blank", "omit")
"""Ways to remove a stream that need nothing but the clip (training's masked-modality term, dropout, the server)."""
ATTRIBUTION_METHODS = REMOVAL_METHODS + ("reference",)
"""Every way :func:`remove_modalities` removes a stream: ``reference`` also needs a reference clip."""
_BLANK_GREY = 127


@dataclass
class LoadedClips:
    """The result of decoding many samples: ``clips[i]`` is ``kept[i]``; the others failed."""

    clips: list[ClipInput]
    kept: list[Sample]
    failures: dict[str, MediaError]
    """Sample id -> why it could not be decoded."""
    decode_seconds: dict[str, float]
    """Sample id -> time spent decoding it (failed ones too)."""
    notes: dict[str, dict] = field(default_factory=dict)
    """Sample id -> what decoding decided for it (``{"face_crop": ...}``), for the output records."""

    def error_of(self, sample: Sample) -> MediaError | None:
        return self.failures.get(sample.id)


class MediaCache:
    """Decoded clips kept in memory, for as many loaders as share it.

    An entry is keyed by the files and by every loader setting that changes the decoded arrays, so
    loaders that differ only in prompt or subtitle use share entries and others never read them.
    The arrays are handed out as they are: nothing downstream writes into them.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple[np.ndarray | None, np.ndarray | None, dict]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> tuple[np.ndarray | None, np.ndarray | None, dict] | None:
        return self._entries.get(key)

    def put(self, key: tuple, decoded: tuple[np.ndarray | None, np.ndarray | None, dict]) -> None:
        self._entries[key] = decoded

    @classmethod
    def of_run(cls, shared: MediaCache | None, enabled: bool) -> MediaCache | None:
        """The cache a run's loader uses: the caller's ``shared`` one, else a private one if ``enabled``."""
        return shared if shared is not None else cls() if enabled else None


@dataclass
class ClipLoader:
    """Decodes samples into :class:`ClipInput`.

    ``prompt`` is a named prompt of ``r1omni.template.PROMPTS``, literal text, or
    :data:`SAMPLE_QUESTION` for each sample's own question.
    """

    num_frames: int
    prompt: str = "inference"
    modalities: str = "video_audio"
    use_subtitle: bool = True
    missing_audio: str = "omit"
    face_crop: bool = False
    transcribe: bool = False
    """Recognise the speech and use it as the subtitle when the sample has none (the ``asr`` extra)."""
    cache: MediaCache | None = None
    """Where decoded media is kept (several loaders may share one); None decodes on every load."""
    model_check: Callable[[ClipInput], None] | None = None
    """The model's per-clip check (``Policy.check_clip``); a clip it rejects fails like an unreadable file."""

    @classmethod
    def for_policy(cls, policy: Policy, **options) -> ClipLoader:
        """The loader every caller with a model uses: the model's frame count and its per-clip check."""
        return cls(num_frames=policy.num_frames, model_check=policy.check_clip, **options)

    def __post_init__(self) -> None:
        if self.modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, got {self.modalities!r}")
        if self.missing_audio not in ("omit", "error"):
            raise ValueError(f"missing_audio must be 'omit' or 'error', got {self.missing_audio!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")

    def question(self, sample: Sample, transcript: str | None = None) -> str:
        """The prompt, with the sample's subtitle (or, lacking one, ``transcript``) when subtitles are used."""
        if self.prompt == SAMPLE_QUESTION:
            if not sample.meta.get("question"):
                raise MediaError(sample.media_path, "prompt='sample' but the sample has no meta['question']")
            text = sample.meta["question"]
        else:
            text = get_prompt(self.prompt)
        return with_subtitle(text, sample.subtitle or transcript) if self.use_subtitle else text

    def _decode(self, sample: Sample) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
        key = (sample.video, sample.audio, self.num_frames, self.modalities, self.missing_audio, self.face_crop,
               self.transcribe)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return cached
        frames = None
        if sample.video is not None and self.modalities != "audio":
            frames = sample_frames(sample.video, self.num_frames).frames
        waveform = None
        if self.modalities != "video" or self.transcribe:   # a video-only model still reads the words
            audio = load_audio(sample.audio if sample.audio is not None else sample.video)
            if audio.has_audio:
                waveform = audio.waveform
            elif self.missing_audio == "error" and self.modalities != "video":
                raise MediaError(sample.media_path, "no audio stream (missing_audio='error')")
        decoded = self._finish(sample.media_path, frames, waveform)
        if self.cache is not None:
            self.cache.put(key, decoded)
        return decoded

    def _finish(self, path: str, frames: np.ndarray | None, waveform: np.ndarray | None
                ) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
        """Decoded media -> what the model reads: the modalities kept, the face crop, the transcript (notes)."""
        notes: dict = {}
        if self.modalities == "audio":
            frames = None
        if frames is not None and self.face_crop:
            cropped = crop_faces(frames)
            frames, notes["face_crop"] = cropped.frames, cropped.summary()
        if waveform is not None and self.transcribe:
            notes["transcript"] = transcribe(waveform).to_dict()
        if self.modalities == "video":
            waveform = None
        if frames is None and waveform is None:
            raise MediaError(path, f"nothing to feed the model with modalities={self.modalities!r}")
        return frames, waveform, notes

    def load(self, sample: Sample) -> ClipInput:
        """Decode one sample; raises :class:`~r1omni.media.MediaError` naming the file on failure."""
        return self._load(sample)[0]

    def load_reference(self, sample: Sample | None) -> ClipInput | None:
        """A reference clip (attribution's stand-in for a removed stream), decoded as this loader decodes the
        clips it stands in for, so its frames have their size; one that cannot be read is a ValueError naming
        the file, as a bad option is (the caller cannot go on without it, unlike a skipped sample). None (no
        reference: the stream is blanked) gives None."""
        if sample is None:
            return None
        try:
            return self.load(sample)
        except MediaError as err:
            raise ValueError(f"attribution's reference {err}") from None

    def from_media(self, sample: Sample, frames: np.ndarray | None, waveform: np.ndarray | None
                   ) -> tuple[ClipInput, dict]:
        """The clip and notes for media decoded elsewhere (a window of a long recording), decided as
        :meth:`load_many` decides them for a file."""
        return self._clip(sample, *self._finish(sample.media_path, frames, waveform))

    def _load(self, sample: Sample) -> tuple[ClipInput, dict]:
        return self._clip(sample, *self._decode(sample))

    def _clip(self, sample: Sample, frames: np.ndarray | None, waveform: np.ndarray | None, notes: dict
              ) -> tuple[ClipInput, dict]:
        transcript = (notes.get("transcript") or {}).get("text") or None
        clip = ClipInput(question=self.question(sample, transcript), frames=frames, waveform=waveform)
        if self.model_check is not None:
            try:
                self.model_check(clip)
            except ClipRejected as err:
                raise MediaError(sample.media_path, str(err)) from None
        return clip, dict(notes)

    def load_many(self, samples: list[Sample]) -> LoadedClips:
        """Decode every sample; a sample that fails (unreadable, or rejected by ``model_check``) is recorded
        in ``failures``, never raised or dropped."""
        loaded = LoadedClips([], [], {}, {})
        for sample in samples:
            tick = time.perf_counter()
            try:
                clip, loaded.notes[sample.id] = self._load(sample)
                loaded.clips.append(clip)
                loaded.kept.append(sample)
            except MediaError as err:
                loaded.failures[sample.id] = err
            loaded.decode_seconds[sample.id] = time.perf_counter() - tick
        return loaded


def remove_modalities(clip: ClipInput, video: bool, audio: bool, method: str = "blank",
                      reference: ClipInput | None = None) -> ClipInput:
    """A copy of ``clip`` without its frames and/or its audio: ``blank`` keeps the prompt's shape (grey
    frames, silence: only the information goes), ``omit`` drops the modality's placeholder from the prompt,
    ``reference`` puts ``reference``'s stream in its place (e.g. a neutral clip: an uninformative input of the
    kind the model was trained on, where grey frames and silence are inputs it never saw and may read as
    cues). Counterfactual attribution, the modality-balance diagnosis and GRPO's masked-modality term all
    remove a modality this way, so that they measure the same thing."""
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"method must be one of {ATTRIBUTION_METHODS}, got {method!r}")
    if method == "reference":
        return _with_reference_streams(clip, reference, video, audio)
    frames, waveform = clip.frames, clip.waveform
    if video and frames is not None:
        frames = None if method == "omit" else np.full_like(frames, _BLANK_GREY)
    if audio and waveform is not None:
        waveform = None if method == "omit" else np.zeros_like(waveform)
    return replace(clip, frames=frames, waveform=waveform)


def _with_reference_streams(clip: ClipInput, reference: ClipInput | None, video: bool, audio: bool) -> ClipInput:
    """``clip`` with its frames and/or waveform taken from ``reference``, fitted to the clip's: frames picked
    evenly over the reference's, the waveform repeated or cut to the clip's length."""
    if reference is None:
        raise ValueError("method 'reference' needs a reference clip (its streams replace the removed ones)")
    frames, waveform = clip.frames, clip.waveform
    if video and frames is not None:
        if reference.frames is None or reference.frames.shape[1:] != frames.shape[1:]:
            got = None if reference.frames is None else reference.frames.shape[1:]
            raise ValueError(f"the reference clip's frames are {got}, the clip's {frames.shape[1:]}: load both "
                             "with the same loader")
        picks = np.linspace(0, len(reference.frames) - 1, len(frames)).round().astype(int)
        frames = reference.frames[picks].copy()
    if audio and waveform is not None:
        if reference.waveform is None or not len(reference.waveform):
            raise ValueError("the reference clip has no audio to put in place of the clip's")
        waveform = np.resize(reference.waveform, waveform.shape).astype(waveform.dtype)
    return replace(clip, frames=frames, waveform=waveform)
