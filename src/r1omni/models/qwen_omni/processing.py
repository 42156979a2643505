"""Torch-only pre-processing for the Qwen-Omni thinkers: frames -> patch rows, waveform -> log-mel, prompt -> ids.

transformers' ``Qwen2VLVideoProcessor`` needs torchvision, which cannot be installed beside the
torch 2.13 CPU wheel, so this module does what the HF processor does for r1omni's inputs (one
video and/or one audio track per clip) with PIL, numpy and torch:

* **frames** (T, H, W, 3) uint8: each frame resized with PIL (bicubic) to the configured size,
  rescaled to [0, 1], normalised with the family's mean / std, the frame count padded to a
  multiple of ``temporal_patch_size`` by repeating the last frame (as HF does), then cut into the
  vision tower's patch-row layout (R, K) with its ``grid_thw`` (t, h, w) in patches. The layout
  matches HF's Qwen2-VL processors to float rounding (tested against the PIL image processor).
* **audio** (S,) float32 at 16 kHz: 128-bin log-mel features from ``WhisperFeatureExtractor``,
  computed **per clip** on the clip plus a short silent tail, so a clip's features never depend on
  the other clips in the batch; the valid frames equal HF's 30-s-padded features. Audio longer
  than ``max_audio_seconds`` is cut there (HF's extractor truncates at 30 s too).
* **prompt**: the tokenizer's chat template renders one placeholder per present modality (video
  part, audio part, then the question); each placeholder id is then repeated as many times as the
  encoder emits features for that clip. Prompts are left-padded.

``PreparedBatch.media`` holds, for the clips that have each modality (keys absent when none has
it): ``pixel_values_videos`` (R, K), ``video_grid_thw`` (num_videos, 3), ``video_second_per_grid``
(num_videos,), ``video_clip_index`` (num_videos,), ``input_features`` (A, M, F),
``feature_attention_mask`` (A, F), ``audio_clip_index`` (A,); videos and audios in clip order.

Not supported (refused with an error): audio interleaved into the video stream
(``use_audio_in_video``), images, frame sizes that are not multiples of ``patch_size *
merge_size``, audio too short to yield one token, and media placeholder strings inside a question.

Letters in shape comments: B clips, T frames, H x W pixels, R patch rows of all videos in a batch,
K = 3 * temporal_patch_size * patch_size**2, A clips with audio, M mel bins, F mel frames,
P prompt length.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jinja2 import TemplateError
from PIL import Image
from transformers import WhisperFeatureExtractor

from r1omni.atomic import atomic_write_text
from r1omni.models.policy import ClipInput, ClipRejected, PreparedBatch

__all__ = ["FamilyTokens", "QWEN2_5_OMNI_TOKENS", "QWEN3_OMNI_TOKENS", "FAMILY_TOKENS", "OmniPreprocessing",
           "OmniPreprocessor", "chat_template", "patchify", "resize_and_normalize", "num_audio_tokens",
           "PREPROCESSING_FILE", "default_settings", "save_hf_processor_configs", "HF_PROCESSOR_FILES"]

PREPROCESSING_FILE = "r1omni_preprocessing.json"

# Qwen2-VL / Qwen2.5-Omni processors normalise with the OpenAI CLIP statistics; the Qwen3 family
# (Qwen3-VL / Qwen3-Omni processors) uses 0.5 / 0.5.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class FamilyTokens:
    """The media placeholder and boundary tokens of a model family, as they appear in prompt text."""

    audio: str
    image: str
    video: str
    audio_bos: str
    audio_eos: str
    vision_bos: str
    vision_eos: str

    def extra_special_tokens(self) -> dict[str, str]:
        """Attribute name -> token, the names transformers' omni processors read from a tokenizer."""
        return {"audio_token": self.audio, "image_token": self.image, "video_token": self.video,
                "audio_bos_token": self.audio_bos, "audio_eos_token": self.audio_eos,
                "vision_bos_token": self.vision_bos, "vision_eos_token": self.vision_eos}

    def all(self) -> tuple[str, ...]:
        return (self.audio, self.image, self.video, self.audio_bos, self.audio_eos, self.vision_bos,
                self.vision_eos)


QWEN2_5_OMNI_TOKENS = FamilyTokens("<|AUDIO|>", "<|IMAGE|>", "<|VIDEO|>", "<|audio_bos|>", "<|audio_eos|>",
                                   "<|vision_bos|>", "<|vision_eos|>")
# The names Qwen3-Omni's tokenizer uses (Qwen3-VL / Qwen3-ASR style).
QWEN3_OMNI_TOKENS = FamilyTokens("<|audio_pad|>", "<|image_pad|>", "<|video_pad|>", "<|audio_start|>",
                                 "<|audio_end|>", "<|vision_start|>", "<|vision_end|>")
FAMILY_TOKENS = {"qwen2_5_omni": QWEN2_5_OMNI_TOKENS, "qwen3_omni": QWEN3_OMNI_TOKENS}


def chat_template(tokens: FamilyTokens, system_prompt: str | None = "You are a helpful assistant.") -> str:
    """A ChatML template (Jinja) that renders video / audio / image parts as one placeholder each.

    With ``system_prompt`` set, a conversation without a system message gets that one first, as
    Qwen2.5's templates do; None renders no default system turn (Qwen3 style).
    """
    default_system = ""
    if system_prompt:
        if "{" in system_prompt or "<|" in system_prompt:
            raise ValueError(f"system_prompt may not contain '{{' or '<|': {system_prompt!r}")
        default_system = ("{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
                          + system_prompt + "<|im_end|>\n{% endif %}")
    return (
        "{% for message in messages %}" + default_system + "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        f"{{% if part['type'] == 'video' %}}{tokens.vision_bos}{tokens.video}{tokens.vision_eos}"
        f"{{% elif part['type'] == 'audio' %}}{tokens.audio_bos}{tokens.audio}{tokens.audio_eos}"
        f"{{% elif part['type'] == 'image' %}}{tokens.vision_bos}{tokens.image}{tokens.vision_eos}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


@dataclass
class OmniPreprocessing:
    """r1omni's pre-processing settings for one Qwen-Omni policy (saved beside the weights)."""

    family: str
    """``"qwen2_5_omni"`` or ``"qwen3_omni"``: picks the placeholder tokens and audio token rule."""
    frame_height: int = 56
    """Frames are resized to this height; a multiple of ``patch_size * merge_size``."""
    frame_width: int = 56
    """Frames are resized to this width; a multiple of ``patch_size * merge_size``."""
    num_frames: int = 4
    """Frames the data pipeline should sample per clip (informative: the policy encodes what it gets)."""
    video_fps: float = 2.0
    """Assumed sampling rate of the frames; sets ``video_second_per_grid = temporal_patch_size / video_fps``
    (HF's processors assume 2.0 for Qwen2.5-Omni and 1.0 for Qwen3-Omni)."""
    image_mean: tuple[float, float, float] = CLIP_MEAN
    """Per-channel mean subtracted after rescaling to [0, 1]."""
    image_std: tuple[float, float, float] = CLIP_STD
    """Per-channel std divided by after subtracting the mean."""
    patch_size: int = 14
    """Vision patch side in pixels (must equal the vision config's)."""
    temporal_patch_size: int = 2
    """Frames per temporal patch (must equal the vision config's)."""
    merge_size: int = 2
    """Spatial merge of patches into one LLM token (the vision config's ``spatial_merge_size``)."""
    audio_n_window: int = 50
    """Qwen3-Omni audio encoder window (its token-count rule depends on it); unused by Qwen2.5."""
    max_audio_seconds: float = 30.0
    """Audio beyond this is cut, as HF's Whisper feature extractor does at 30 s."""
    sample_rate_hz: int = 16000
    """Audio sample rate the feature extractor expects."""
    num_mel_bins: int = 128
    """Log-mel bins (the audio config's ``num_mel_bins``)."""

    def __post_init__(self) -> None:
        if self.family not in FAMILY_TOKENS:
            raise ValueError(f"family must be one of {sorted(FAMILY_TOKENS)}, got {self.family!r}")
        unit = self.patch_size * self.merge_size
        for name in ("frame_height", "frame_width"):
            value = getattr(self, name)
            if value < unit or value % unit:
                raise ValueError(f"{name}={value} must be a positive multiple of patch_size*merge_size={unit}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.video_fps <= 0:
            raise ValueError(f"video_fps must be > 0, got {self.video_fps}")
        if self.max_audio_seconds <= 0:
            raise ValueError(f"max_audio_seconds must be > 0, got {self.max_audio_seconds}")
        self.image_mean = tuple(float(v) for v in self.image_mean)
        self.image_std = tuple(float(v) for v in self.image_std)
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError(f"image_mean / image_std need 3 values (std > 0), "
                             f"got {self.image_mean} / {self.image_std}")

    @property
    def tokens(self) -> FamilyTokens:
        return FAMILY_TOKENS[self.family]

    @property
    def video_second_per_grid(self) -> float:
        return self.temporal_patch_size / self.video_fps

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / PREPROCESSING_FILE
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "OmniPreprocessing":
        path = Path(directory) / PREPROCESSING_FILE
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**data)


# What transformers' processors read from a model folder, and the processor class of each family.
HF_PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
_HF_PROCESSOR_CLASS = {"qwen2_5_omni": "Qwen2_5OmniProcessor", "qwen3_omni": "Qwen3OmniMoeProcessor"}


def save_hf_processor_configs(settings: OmniPreprocessing, directory: str | os.PathLike) -> None:
    """The processor configs plain transformers reads (``AutoProcessor`` / the family's processor), from
    r1omni's settings: ``preprocessor_config.json`` with the image processor's and the Whisper feature
    extractor's keys in one file (as the released Qwen2.5-Omni folders hold them) and
    ``video_preprocessor_config.json``. Patch, merge, normalisation and audio settings are r1omni's; the
    pixel budget is the frame size r1omni resizes to, although HF's processors keep the aspect ratio where
    r1omni stretches, so their inputs match r1omni's only for frames of that shape."""
    from transformers import Qwen2VLImageProcessorPil   # the torchvision-free image processor

    pixels = settings.frame_height * settings.frame_width
    unit = settings.patch_size * settings.merge_size
    image = Qwen2VLImageProcessorPil(patch_size=settings.patch_size, temporal_patch_size=settings.temporal_patch_size,
                                     merge_size=settings.merge_size, image_mean=list(settings.image_mean),
                                     image_std=list(settings.image_std),
                                     size={"shortest_edge": min(unit * unit, pixels), "longest_edge": pixels})
    audio = WhisperFeatureExtractor(feature_size=settings.num_mel_bins, sampling_rate=settings.sample_rate_hz,
                                    chunk_length=int(math.ceil(settings.max_audio_seconds)))
    image_keys = json.loads(image.to_json_string())
    merged = {**image_keys, **json.loads(audio.to_json_string()),
              "processor_class": _HF_PROCESSOR_CLASS[settings.family]}
    video = {key: value for key, value in image_keys.items() if key != "image_processor_type"}
    video.update(video_processor_type="Qwen2VLVideoProcessor", fps=settings.video_fps,
                 processor_class=_HF_PROCESSOR_CLASS[settings.family])
    for name, values in zip(HF_PROCESSOR_FILES, (merged, video)):
        atomic_write_text(Path(directory) / name, json.dumps(values, indent=2, sort_keys=True) + "\n")


def resize_and_normalize(frames: np.ndarray, height: int, width: int, mean: tuple[float, ...],
                         std: tuple[float, ...]) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, height, width) float32: PIL bicubic resize, rescale, normalise."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty (T = 0); pass None for a clip without video")
    if frames.shape[1:3] != (height, width):
        frames = np.stack([np.asarray(Image.fromarray(frame).resize((width, height), Image.BICUBIC))
                           for frame in frames])
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t  # (T, 3, H, W)


def patchify(pixels: torch.Tensor, patch_size: int, temporal_patch_size: int,
             merge_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised frames (T, 3, H, W) -> patch rows (R, K) and grid_thw (3,) in Qwen2-VL's layout.

    T is padded to a multiple of ``temporal_patch_size`` by repeating the last frame. Rows are
    ordered (t, h-block, w-block, h-in-block, w-in-block) so that each ``merge_size**2`` run of rows
    is one LLM token; each row holds (channel, time, y, x).
    """
    num_frames, channels, height, width = pixels.shape
    if height % (patch_size * merge_size) or width % (patch_size * merge_size):
        raise ValueError(f"frame size {height}x{width} is not a multiple of patch_size*merge_size="
                         f"{patch_size * merge_size}")
    remainder = num_frames % temporal_patch_size
    if remainder:
        pixels = torch.cat([pixels, pixels[-1:].expand(temporal_patch_size - remainder, -1, -1, -1)])
    grid_t = pixels.shape[0] // temporal_patch_size
    grid_h, grid_w = height // patch_size, width // patch_size
    x = pixels.reshape(grid_t, temporal_patch_size, channels, grid_h // merge_size, merge_size, patch_size,
                       grid_w // merge_size, merge_size, patch_size)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (t, hb, wb, hm, wm, C, tps, p, p)
    rows = x.reshape(grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size)  # (R, K)
    return rows, torch.tensor([grid_t, grid_h, grid_w], dtype=torch.long)


def num_audio_tokens(family: str, num_mel_frames: int, n_window: int = 50) -> int:
    """Audio tokens the thinker's audio tower emits for ``num_mel_frames`` valid mel frames."""
    if family == "qwen2_5_omni":
        after_conv = (num_mel_frames - 1) // 2 + 1
        return (after_conv - 2) // 2 + 1
    if family == "qwen3_omni":
        chunk = 2 * n_window
        leftover = num_mel_frames % chunk
        after_conv = (leftover - 1) // 2 + 1
        return ((after_conv - 1) // 2 + 1 - 1) // 2 + 1 + (num_mel_frames // chunk) * 13
    raise ValueError(f"unknown family {family!r}")


class OmniPreprocessor:
    """Turns :class:`ClipInput` lists into a :class:`PreparedBatch` for one tokenizer and settings."""

    def __init__(self, tokenizer: Any, settings: OmniPreprocessing) -> None:
        self.tokenizer = tokenizer
        self.settings = settings
        self.feature_extractor = WhisperFeatureExtractor(
            feature_size=settings.num_mel_bins, sampling_rate=settings.sample_rate_hz, hop_length=160,
            chunk_length=30, n_fft=400)
        tokens = settings.tokens
        ids = {}
        for name, token in zip(("audio", "video", "audio_bos", "audio_eos", "vision_bos", "vision_eos", "image"),
                               (tokens.audio, tokens.video, tokens.audio_bos, tokens.audio_eos, tokens.vision_bos,
                                tokens.vision_eos, tokens.image)):
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or tokenizer.convert_ids_to_tokens(token_id) != token:
                raise ValueError(f"the tokenizer has no {token!r} token, which {settings.family} prompts need")
            ids[name] = token_id
        self.token_ids = ids
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; prompts are left-padded with it")
        if not tokenizer.chat_template:
            raise ValueError("the tokenizer has no chat_template; set tokenizer.chat_template = "
                             "r1omni.models.qwen_omni.chat_template(FAMILY_TOKENS[family])")

    # -- media ---------------------------------------------------------------------------------
    def video_inputs(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (T, H, W, 3) uint8 -> patch rows (R_clip, K) and grid_thw (3,)."""
        s = self.settings
        pixels = resize_and_normalize(frames, s.frame_height, s.frame_width, s.image_mean, s.image_std)
        return patchify(pixels, s.patch_size, s.temporal_patch_size, s.merge_size)

    def check(self, clip: ClipInput) -> None:
        """Raise :class:`ClipRejected` for a clip :meth:`__call__` cannot read (see ``Policy.check_clip``)."""
        self._check_question(clip.question)
        if clip.waveform is not None:
            self._check_audio_length(min(len(clip.waveform), self._max_audio_samples))

    @property
    def _max_audio_samples(self) -> int:
        return int(self.settings.max_audio_seconds * self.settings.sample_rate_hz)

    def _check_audio_length(self, num_samples: int) -> None:
        """The audio tower's convolutions and pooling leave nothing of a few mel frames (about 20 ms)."""
        hop = self.feature_extractor.hop_length
        if self.audio_tokens(math.ceil(num_samples / hop)) >= 1:
            return
        needed = next(frames for frames in range(1, 10_000) if self.audio_tokens(frames) >= 1)
        shortest = (needed - 1) * hop + 1
        rate = self.settings.sample_rate_hz
        raise ClipRejected(f"audio of {num_samples} samples ({1000 * num_samples / rate:.1f} ms) is too short for "
                           f"one {self.settings.family} audio token (it needs at least {shortest} samples, "
                           f"{1000 * shortest / rate:.1f} ms); pass waveform=None for a clip without audio")

    def _check_question(self, question: str) -> None:
        for token in self.settings.tokens.all():
            if token in question:
                raise ClipRejected(f"question contains the media token {token!r}; media go in ClipInput.frames / "
                                   "ClipInput.waveform, not in the text")

    def audio_inputs(self, waveform: np.ndarray) -> np.ndarray:
        """Waveform (S,) -> log-mel features (M, F_clip) of the clip's valid frames only."""
        hop = self.feature_extractor.hop_length
        wav = np.asarray(waveform, dtype=np.float32)[:self._max_audio_samples]
        num_frames = math.ceil(len(wav) / hop)
        self._check_audio_length(len(wav))
        # Three hops of silence after the clip cover every STFT window that overlaps it (n_fft/2 = 200
        # samples), so the valid frames equal those of HF's 30-s zero padding, whatever else is in the batch.
        padded = self.feature_extractor(wav, sampling_rate=self.settings.sample_rate_hz, padding="max_length",
                                        max_length=(num_frames + 3) * hop, truncation=True,
                                        return_attention_mask=False, return_tensors="np")
        return padded["input_features"][0, :, :num_frames]  # (M, F_clip)

    def video_tokens(self, grid_thw: torch.Tensor) -> int:
        return int(grid_thw.prod()) // self.settings.merge_size ** 2

    def audio_tokens(self, num_mel_frames: int) -> int:
        return num_audio_tokens(self.settings.family, num_mel_frames, self.settings.audio_n_window)

    # -- prompt --------------------------------------------------------------------------------
    def render(self, clip: ClipInput) -> str:
        """The prompt text with one placeholder per present modality (video part, audio part, question)."""
        self._check_question(clip.question)
        parts: list[dict[str, str]] = []
        if clip.frames is not None:
            parts.append({"type": "video"})
        if clip.waveform is not None:
            parts.append({"type": "audio"})
        parts.append({"type": "text", "text": clip.question})
        try:
            return self.tokenizer.apply_chat_template([{"role": "user", "content": parts}], tokenize=False,
                                                      add_generation_prompt=True)
        except (TemplateError, TypeError) as err:
            raise ValueError(f"the tokenizer's chat template cannot render media parts ({err}); set "
                             "tokenizer.chat_template = r1omni.models.qwen_omni.chat_template(FAMILY_TOKENS[family]) "
                             "or pass chat_template= to load_policy") from err

    def _expand(self, ids: list[int], placeholder: int, count: int, what: str) -> list[int]:
        positions = [i for i, token in enumerate(ids) if token == placeholder]
        if len(positions) != 1:
            raise ValueError(f"the chat template rendered {len(positions)} {what} placeholders for a clip with "
                             f"one {what}; it must render each media part once (see qwen_omni.chat_template)")
        at = positions[0]
        return ids[:at] + [placeholder] * count + ids[at + 1:]

    def __call__(self, clips: list[ClipInput]) -> PreparedBatch:
        if not clips:
            raise ValueError("prepare() needs at least one clip")
        s = self.settings
        prompts, rows = [], []
        video_rows, video_grids, video_clips = [], [], []
        audio_feats, audio_clips = [], []
        for index, clip in enumerate(clips):
            if not isinstance(clip, ClipInput):
                raise TypeError(f"clips[{index}] is {type(clip).__name__}, expected ClipInput")
            try:
                self.check(clip)
            except ClipRejected as err:   # say which clip, for a caller that did not check each one
                raise ClipRejected(f"clips[{index}]: {err}") from None
            text = self.render(clip)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            for name, absent in (("video", clip.frames is None), ("audio", clip.waveform is None)):
                if absent and self.token_ids[name] in ids:
                    raise ValueError(f"the chat template rendered a {name} placeholder for a clip without {name}")
            if clip.frames is not None:
                patch_rows, grid = self.video_inputs(clip.frames)
                ids = self._expand(ids, self.token_ids["video"], self.video_tokens(grid), "video")
                video_rows.append(patch_rows)
                video_grids.append(grid)
                video_clips.append(index)
            if clip.waveform is not None:
                feats = self.audio_inputs(clip.waveform)
                ids = self._expand(ids, self.token_ids["audio"], self.audio_tokens(feats.shape[1]), "audio")
                audio_feats.append(feats)
                audio_clips.append(index)
            prompts.append(text)
            rows.append(ids)

        length = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (length - len(r)) + r for r in rows], dtype=torch.long)  # (B, P)
        attention_mask = torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows])  # (B, P)

        media: dict[str, torch.Tensor] = {}
        if video_rows:
            media["pixel_values_videos"] = torch.cat(video_rows)  # (R, K)
            media["video_grid_thw"] = torch.stack(video_grids)  # (num_videos, 3)
            media["video_second_per_grid"] = torch.full((len(video_rows),), s.video_second_per_grid)  # (num_videos,)
            media["video_clip_index"] = torch.tensor(video_clips, dtype=torch.long)  # (num_videos,)
        if audio_feats:
            max_frames = max(f.shape[1] for f in audio_feats)
            features = np.zeros((len(audio_feats), s.num_mel_bins, max_frames), dtype=np.float32)
            mask = np.zeros((len(audio_feats), max_frames), dtype=np.int64)
            for i, feats in enumerate(audio_feats):
                features[i, :, :feats.shape[1]] = feats
                mask[i, :feats.shape[1]] = 1
            media["input_features"] = torch.from_numpy(features)  # (A, M, F)
            media["feature_attention_mask"] = torch.from_numpy(mask)  # (A, F)
            media["audio_clip_index"] = torch.tensor(audio_clips, dtype=torch.long)  # (A,)
        return PreparedBatch(input_ids=input_ids, attention_mask=attention_mask, media=media, prompts=prompts)


def default_settings(family: str, **overrides: Any) -> OmniPreprocessing:
    """Family defaults (Qwen2.5: 14-px patches, CLIP stats, 2 fps; Qwen3: 16-px patches, 0.5 stats, 1 fps)."""
    if family == "qwen2_5_omni":
        base: dict[str, Any] = dict(patch_size=14, image_mean=CLIP_MEAN, image_std=CLIP_STD, video_fps=2.0,
                                    frame_height=56, frame_width=56)
    elif family == "qwen3_omni":
        base = dict(patch_size=16, image_mean=HALF, image_std=HALF, video_fps=1.0, frame_height=64, frame_width=64)
    else:
        raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILY_TOKENS)}")
    base.update(overrides)
    return OmniPreprocessing(family=family, **base)

