"""HumanOmni pre-processing: frames -> pixel values, waveform -> Whisper log-mel, prompt -> ids with sentinels.

Reproduces what the official inference (HumanMLLM/R1-Omni, ``inference.py`` and ``humanomni/mm_utils.py``)
feeds the model:

* Frames (already sampled, ``r1omni.media.sample_frames``) are resized to the SigLIP size with PIL
  bicubic on uint8, rescaled by 1/255 and normalised with mean = std = 0.5. Two modes:
  ``"stretch"`` (the official inference, ``aspect_ratio=None``: plain resize) and ``"pad"`` (SFT / GRPO
  training: pad to a square with grey (127, 127, 127), image centred, then resize). The default is
  ``"stretch"`` so that released checkpoints give the official outputs; the training recipes set ``"pad"``.
* Audio (16 kHz mono) goes through transformers' ``WhisperFeatureExtractor`` with the tower's
  preprocessor config: 128 mel bins, padded / truncated to 30 s = 3000 frames.
* The prompt is the user turn ``"<video>\\n<audio>\\n" + question`` (tags of absent modalities left out)
  rendered with the checkpoint's own chat template and generation prompt; with ``mm_use_x_start_end``
  the tags become ``<vi_start><video><vi_end>`` / ``<au_start><audio><au_end>`` (plain text, not added
  tokens). The text between tags is tokenised chunk by chunk without special tokens and each tag
  becomes its sentinel id (-201 video, -202 audio), as the official ``tokenizer_multimodal_token``.
* The BERT gate reads the question (the official inference passes the raw instruction).

What it refuses: decoding files (that is ``r1omni.media``), images (``<image>``), and substituting zeros
for a missing soundtrack (a clip without audio simply has no ``<audio>`` tag).

Letters in shape comments: B clips, V clips with video, A clips with audio, T frames, S image side,
K mel bins, F mel frames, P prompt length, Lb BERT text length.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer, BertTokenizer, PreTrainedConfig, WhisperFeatureExtractor

from r1omni.atomic import atomic_write_text
from r1omni.models.humanomni.modeling import AUDIO_TOKEN_INDEX, VIDEO_TOKEN_INDEX
from r1omni.models.policy import ClipInput, ClipRejected, PreparedBatch

__all__ = ["FRAME_MODES", "PAD_FILL", "FrameSettings", "HumanOmniProcessor", "expand_to_square",
           "frames_to_pixel_values", "user_content", "wrap_modality_tags", "tokenize_with_sentinels",
           "VIDEO_TAG", "AUDIO_TAG", "SAMPLE_RATE_HZ"]

logger = logging.getLogger(__name__)

FRAME_MODES = ("stretch", "pad")
# Background of the pad-to-square: int(0.5 * 255) per channel, i.e. the SigLIP mean (official expand2square).
PAD_FILL = (127, 127, 127)
SAMPLE_RATE_HZ = 16000
VIDEO_TAG, AUDIO_TAG = "<video>", "<audio>"
_WRAPPED = {VIDEO_TAG: "<vi_start><video><vi_end>", AUDIO_TAG: "<au_start><audio><au_end>"}
_TAG_RE = re.compile(r"(<video>|<audio>)")
_SENTINEL = {VIDEO_TAG: VIDEO_TOKEN_INDEX, AUDIO_TAG: AUDIO_TOKEN_INDEX}


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------

@dataclass
class FrameSettings:
    """The SigLIP image-processor settings that matter: target size, resampling, rescale, normalisation."""

    height: int
    width: int
    resample: int = int(Image.Resampling.BICUBIC)
    rescale_factor: float = 1 / 255
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def from_preprocessor_config(cls, path: Path) -> "FrameSettings":
        data = json.loads(path.read_text())
        size = data.get("size") or {}
        if "height" in size and "width" in size:
            height, width = int(size["height"]), int(size["width"])
        elif "shortest_edge" in size:
            height = width = int(size["shortest_edge"])
        else:
            raise ValueError(f"{path}: cannot read the image size from {size!r}")
        return cls(height, width, int(data.get("resample", cls.resample)),
                   float(data.get("rescale_factor", 1 / 255)),
                   tuple(data.get("image_mean", (0.5,) * 3)), tuple(data.get("image_std", (0.5,) * 3)))

    def to_preprocessor_config(self) -> dict[str, Any]:
        """A ``SiglipImageProcessor`` preprocessor_config.json (what the official loader reads)."""
        return {"do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
                "image_mean": list(self.image_mean), "image_processor_type": "SiglipImageProcessor",
                "image_std": list(self.image_std), "resample": self.resample,
                "rescale_factor": self.rescale_factor, "size": {"height": self.height, "width": self.width}}


def expand_to_square(frame: np.ndarray, fill: tuple[int, int, int] = PAD_FILL) -> np.ndarray:
    """Pad an (H, W, 3) frame to a square of side max(H, W), centred (official ``expand2square``)."""
    height, width = frame.shape[:2]
    if height == width:
        return frame
    side = max(height, width)
    square = np.empty((side, side, 3), dtype=frame.dtype)
    square[:] = np.asarray(fill, dtype=frame.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = frame
    return square


def frames_to_pixel_values(frames: np.ndarray, settings: FrameSettings, mode: str = "stretch") -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> normalised float32 pixel values (T, 3, S, S)."""
    if mode not in FRAME_MODES:
        raise ValueError(f"frame mode must be one of {FRAME_MODES}, got {mode!r}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    mean = np.asarray(settings.image_mean, dtype=np.float32)
    std = np.asarray(settings.image_std, dtype=np.float32)
    out = []
    for frame in frames:
        if mode == "pad":
            frame = expand_to_square(frame)
        image = Image.fromarray(frame).resize((settings.width, settings.height), resample=settings.resample)
        # Same arithmetic as the SiglipImageProcessor: rescale in float64, normalise in float32.
        pixels = (np.asarray(image).astype(np.float64) * settings.rescale_factor).astype(np.float32)  # (S, S, 3)
        out.append(((pixels - mean) / std).transpose(2, 0, 1))                                      # (3, S, S)
    return torch.from_numpy(np.stack(out))                                                          # (T, 3, S, S)


# --------------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------------

def user_content(question: str, has_video: bool, has_audio: bool) -> str:
    """The official ``mm_infer`` user turn: modality tags first, one per line, then the question."""
    return (VIDEO_TAG + "\n" if has_video else "") + (AUDIO_TAG + "\n" if has_audio else "") + question


def wrap_modality_tags(prompt: str) -> str:
    """With ``mm_use_x_start_end``: ``<video>`` -> ``<vi_start><video><vi_end>``, same for ``<audio>``."""
    return _TAG_RE.sub(lambda m: _WRAPPED[m.group(0)], prompt)


def tokenize_with_sentinels(tokenizer, prompt: str) -> list[int]:
    """Split on the modality tags, tokenise each chunk without special tokens, one sentinel per tag."""
    ids: list[int] = []
    for chunk in _TAG_RE.split(prompt):
        if chunk in _SENTINEL:
            ids.append(_SENTINEL[chunk])
        elif chunk:
            ids.extend(tokenizer(chunk, add_special_tokens=False)["input_ids"])
    return ids


# --------------------------------------------------------------------------------------------------
# The processor
# --------------------------------------------------------------------------------------------------

class HumanOmniProcessor:
    """Turns :class:`ClipInput` s into a :class:`PreparedBatch` for :class:`HumanOmniForCausalLM`.

    ``media`` of the batch: ``pixel_values`` (V, T, 3, S, S) for the clips with frames, in clip order;
    ``input_features`` (A, K, F) for the clips with a waveform; ``bert_input_ids`` /
    ``bert_attention_mask`` / ``bert_token_type_ids`` (B, Lb) for every clip. Prompts are left-padded.
    """

    def __init__(self, tokenizer, bert_tokenizer, feature_extractor: WhisperFeatureExtractor,
                 frame_settings: FrameSettings, frame_mode: str = "stretch", use_x_start_end: bool = True,
                 bert_max_length: int = 512) -> None:
        if frame_mode not in FRAME_MODES:
            raise ValueError(f"frame_mode must be one of {FRAME_MODES}, got {frame_mode!r}")
        if not tokenizer.chat_template:
            raise ValueError("the tokenizer has no chat template; HumanOmni prompts are rendered with the "
                             "checkpoint's own template (tokenizer_config.json or chat_template.json)")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set pad_token (<|endoftext|> for Qwen)")
        self.tokenizer = tokenizer
        self.bert_tokenizer = bert_tokenizer
        self.feature_extractor = feature_extractor
        self.frame_settings = frame_settings
        self.frame_mode = frame_mode
        self.use_x_start_end = use_x_start_end
        self.bert_max_length = bert_max_length

    # -- pieces ---------------------------------------------------------------------------------------

    def render_prompt(self, question: str, has_video: bool, has_audio: bool) -> str:
        messages = [{"role": "user", "content": user_content(question, has_video, has_audio)}]
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return wrap_modality_tags(prompt) if self.use_x_start_end else prompt

    def prompt_ids(self, prompt: str) -> list[int]:
        return tokenize_with_sentinels(self.tokenizer, prompt)

    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (T, 3, S, S)."""
        return frames_to_pixel_values(frames, self.frame_settings, self.frame_mode)

    def audio_features(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        """16 kHz mono waveforms -> log-mel features (A, K, F)."""
        features = self.feature_extractor([np.asarray(w, dtype=np.float32) for w in waveforms],
                                          sampling_rate=SAMPLE_RATE_HZ, return_tensors="np")["input_features"]
        return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))         # (A, K, F)

    def gate_inputs(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.bert_tokenizer(texts, padding=True, truncation=True, max_length=self.bert_max_length,
                                      return_tensors="pt")
        out = {"bert_input_ids": encoded["input_ids"], "bert_attention_mask": encoded["attention_mask"]}  # (B, Lb)
        if "token_type_ids" in encoded:
            out["bert_token_type_ids"] = encoded["token_type_ids"]                                      # (B, Lb)
        return out

    # -- batch ----------------------------------------------------------------------------------------

    @staticmethod
    def check(clip: ClipInput) -> None:
        """Raise :class:`ClipRejected` for a clip :meth:`__call__` cannot read (see ``Policy.check_clip``);
        Whisper pads any non-empty soundtrack, so only an empty one is refused."""
        if clip.waveform is not None and len(clip.waveform) == 0:
            raise ClipRejected("empty waveform; pass waveform=None for a clip without audio")

    def __call__(self, clips: list[ClipInput]) -> PreparedBatch:
        if not clips:
            raise ValueError("prepare needs at least one clip")
        prompts, rows, videos, waveforms = [], [], [], []
        for i, clip in enumerate(clips):
            try:
                self.check(clip)
            except ClipRejected as err:   # say which clip, for a caller that did not check each one
                raise ClipRejected(f"clips[{i}]: {err}") from None
            has_video, has_audio = clip.frames is not None, clip.waveform is not None
            prompt = self.render_prompt(clip.question, has_video, has_audio)
            prompts.append(prompt)
            rows.append(self.prompt_ids(prompt))
            if has_video:
                videos.append(self.pixel_values(clip.frames))                                # (T, 3, S, S)
            if has_audio:
                waveforms.append(clip.waveform)
        if len({v.shape[0] for v in videos}) > 1:
            raise ValueError(f"all clips of a batch need the same frame count, got {[v.shape[0] for v in videos]}")
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])              # (B, P)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])  # (B, P)
        media: dict[str, torch.Tensor] = self.gate_inputs([clip.question for clip in clips])
        if videos:
            media["pixel_values"] = torch.stack(videos)                                      # (V, T, 3, S, S)
        if waveforms:
            media["input_features"] = self.audio_features(waveforms)                         # (A, K, F)
        return PreparedBatch(input_ids, attention_mask, media, prompts)

    # -- files ----------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, vision_dir: Path, audio_dir: Path, bert_dir: Path,
                        frame_mode: str = "stretch", use_x_start_end: bool = True,
                        bert_max_positions: int = 512, vision_image_size: int | None = None,
                        num_mel_bins: int | None = None) -> "HumanOmniProcessor":
        """Tokenizer + chat template from ``directory``, image / audio settings from the tower folders."""
        directory = Path(directory)
        # config= skips AutoConfig on the HumanOmni config.json, which transformers does not know.
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, config=PreTrainedConfig())
        if not tokenizer.chat_template and (directory / "chat_template.json").is_file():
            tokenizer.chat_template = json.loads((directory / "chat_template.json").read_text())["chat_template"]
        bert_tokenizer = BertTokenizer.from_pretrained(bert_dir, local_files_only=True)
        vision_pre = vision_dir / "preprocessor_config.json"
        if vision_pre.is_file():
            frames = FrameSettings.from_preprocessor_config(vision_pre)
        elif vision_image_size is not None:
            logger.info("%s missing: SigLIP defaults at %d px", vision_pre, vision_image_size)
            frames = FrameSettings(vision_image_size, vision_image_size)
        else:
            raise FileNotFoundError(f"{vision_pre}: missing (the SigLIP image-processor settings)")
        audio_pre = audio_dir / "preprocessor_config.json"
        if audio_pre.is_file():
            extractor = WhisperFeatureExtractor.from_pretrained(audio_dir, local_files_only=True)
        elif num_mel_bins is not None:
            logger.info("%s missing: Whisper defaults with %d mel bins", audio_pre, num_mel_bins)
            extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
        else:
            raise FileNotFoundError(f"{audio_pre}: missing (the Whisper feature-extractor settings)")
        # A vocab.txt-only folder leaves model_max_length unbounded; BERT's position table is the real limit.
        max_length = min(int(bert_tokenizer.model_max_length), bert_max_positions)
        return cls(tokenizer, bert_tokenizer, extractor, frames, frame_mode, use_x_start_end, max_length)

    def save_pretrained(self, directory: str | os.PathLike, vision_subdir: str = "siglip",
                        audio_subdir: str = "whisper", bert_subdir: str = "bert") -> None:
        """Tokenizer files (+ vocab.json / merges.txt and chat_template.json as the released folders have),
        the tower preprocessor configs and the BERT tokenizer (with vocab.txt)."""
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory)
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and type(backend.model).__name__ == "BPE":
            backend.model.save(str(directory))        # vocab.json + merges.txt for slow Qwen2Tokenizer readers
        atomic_write_text(directory / "chat_template.json",
                          json.dumps({"chat_template": self.tokenizer.chat_template}, indent=2) + "\n")
        atomic_write_text(directory / vision_subdir / "preprocessor_config.json",
                          json.dumps(self.frame_settings.to_preprocessor_config(), indent=2) + "\n")
        self.feature_extractor.save_pretrained(directory / audio_subdir)
        bert_dir = directory / bert_subdir
        self.bert_tokenizer.save_pretrained(bert_dir)
        vocab = sorted(self.bert_tokenizer.get_vocab().items(), key=lambda item: item[1])
        atomic_write_text(bert_dir / "vocab.txt", "".join(token + "\n" for token, _ in vocab))
