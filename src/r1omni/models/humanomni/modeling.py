"""HumanOmni / R1-Omni model: SigLIP + Whisper encoder + BERT-gated ``AllInOneSmall`` + Qwen2, checkpoint-compatible.

Module tree and parameter names are those of the released ``model.safetensors`` (HumanMLLM/R1-Omni-0.5B)::

    lm_head                                   tied to model.embed_tokens (not stored)
    model.embed_tokens / layers / norm        Qwen2 decoder
    model.vision_tower.vision_tower           SiglipVisionModel (features = hidden_states[-2], all patches)
    model.audio_tower.audio_tower.encoder     WhisperEncoder (the official code loads WhisperForAudioClassification
                                              and runs only .encoder; its projector/classifier keys are dropped
                                              on load, see UNUSED_CHECKPOINT_KEYS)
    model.mm_projector                        AllInOneSmall: video / body branches (timm RegStage naming) + face MLP
    model.audio_projector                     Linear -> GELU -> Linear
    model.bert_model                          BertModel (gate text encoder; CLS of last_hidden_state, pooler unused)
    model.bert_gate                           Linear(bert, 3584) -> GELU -> Linear(3584, 3); softmax = branch weights

Data flow per video: SigLIP features -> the video and body branches (RegStage, Conv3d sampler that halves
the grid, RegStage, readout MLP) and the face branch (MLP, bilinear pool to ceil(g/2)) -> weighted sum with
the gate's softmax weights (order video, body, face). Per audio: Whisper encoder -> avg_pool1d(3, 3) over
time -> MLP. Each ``<video>`` (-201) / ``<audio>`` (-202) sentinel in the prompt ids is replaced by the whole
feature block of its modality (``prepare_multimodal_inputs``).

Differences from the official code, on purpose: batches of several clips with different prompt lengths
and media (the merged rows are LEFT-padded and position ids follow the attention mask; the official code
handles batch size 1 only); a clip without a sentinel simply has no media block; ``clip_index`` lets many
rows (the completions of GRPO) share the media of one clip, encoded once; towers and BERT config are read
relative to the checkpoint folder, never downloaded.

What it is not: a processor (see ``processing.py``) or a policy (``policy.py``); it never reads media files.

Letters in shape comments: N rows (sequences), B clips, V videos, A audios, T frames per video,
S image side, G patch-grid side (P = G*G patches), g = G/2 pooled grid side, Cv vision width,
Ca audio width, Cb BERT width, D LLM width, L text length, M merged length, K mel bins,
F mel frames (3000), E encoder positions (F/2), Q pooled audio tokens (E/3), Lb BERT text length,
X vocabulary.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    BertModel,
    GenerationConfig,
    Qwen2ForCausalLM,
    Qwen2Model,
    SiglipVisionConfig,
    SiglipVisionModel,
    WhisperConfig,
)
from transformers.initialization import no_init_weights
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.qwen2.modeling_qwen2 import Qwen2PreTrainedModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from r1omni.models.humanomni.checkpoint import (
    AUDIO_PREFIX,
    TOWER_KEY_MAPS,
    VISION_PREFIX,
    CheckpointFolders,
    WeightsFile,
    load_weights_file,
    read_audio_config,
    read_bert_config,
    read_vision_config,
)
from r1omni.models.humanomni.configuration import GATE_HIDDEN_SIZE, NUM_GATE_BRANCHES, HumanOmniConfig
from r1omni.models.kv_cache import OUTPUT_CACHE_FIELD, cache_parameter, output_cache, pop_cache
from r1omni.models.logprobs import head_logprobs
from r1omni.models.prefix import shared_prefix_hidden

__all__ = ["HumanOmniForCausalLM", "HumanOmniModel", "HumanOmniCausalLMOutput", "MultimodalInputs", "AllInOneSmall",
           "RegStage", "VIDEO_TOKEN_INDEX", "AUDIO_TOKEN_INDEX", "IMAGE_TOKEN_INDEX", "IGNORE_INDEX",
           "UNUSED_CHECKPOINT_KEYS"]

logger = logging.getLogger(__name__)
# What AutoModelForCausalLM.from_pretrained passes on besides ``dtype``: meaningless for a local HumanOmni folder.
_AUTO_OPTIONS = frozenset({"config", "cache_dir", "force_download", "local_files_only", "proxies", "revision",
                           "subfolder", "token", "trust_remote_code", "adapter_kwargs", "code_revision",
                           "_from_auto", "_commit_hash"})

# Sentinel ids of the official code (humanomni/constants.py): never real vocabulary entries.
IMAGE_TOKEN_INDEX = -200
VIDEO_TOKEN_INDEX = -201
AUDIO_TOKEN_INDEX = -202
IGNORE_INDEX = -100

# Checkpoint keys that exist in the released model.safetensors but that nothing in the forward reads:
# the classification head of WhisperForAudioClassification (the official code runs only `.encoder`).
# They are dropped on load (counted in the log) and not written back by `save`.
UNUSED_CHECKPOINT_KEYS = (
    "model.audio_tower.audio_tower.projector.",
    "model.audio_tower.audio_tower.classifier.",
    "model.audio_tower.audio_tower.layer_weights",
)


# --------------------------------------------------------------------------------------------------
# AllInOneSmall and its timm-named RegStage (written here: timm is not a dependency)
# --------------------------------------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (n, c, h, w) map, optionally followed by SiLU (timm ``LayerNormAct2d``)."""

    def __init__(self, num_channels: int, apply_act: bool = True, eps: float = 1e-5) -> None:
        super().__init__(num_channels, eps=eps)
        self.act = nn.SiLU() if apply_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)                                                           # (n, h, w, c)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        # Contiguous NCHW again, so that the next conv's weight gradients have the layout DDP buckets expect.
        return self.act(x.permute(0, 3, 1, 2).contiguous())                                 # (n, c, h, w)


class ConvNormAct(nn.Module):
    """Bias-free conv -> LayerNorm2d (-> SiLU); children named ``conv`` and ``bn`` as in timm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int = 1,
                 apply_act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups,
                              bias=False)
        self.bn = LayerNorm2d(out_channels, apply_act=apply_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class SqueezeExcite(nn.Module):
    """Channel gate: global mean -> 1x1 conv -> SiLU -> 1x1 conv -> sigmoid, times the input."""

    def __init__(self, channels: int, reduced_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced_channels, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(reduced_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)                                            # (n, c, 1, 1)
        scale = self.fc2(self.act(self.fc1(scale)))                                         # (n, c, 1, 1)
        return x * scale.sigmoid()


class RegBottleneck(nn.Module):
    """timm regnet ``Bottleneck`` with bottle_ratio 1, group_size 1 (depthwise 3x3), SE ratio 0.25, SiLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 1)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, groups=out_channels)
        # timm sizes the SE bottleneck from the block's INPUT channels.
        self.se = SqueezeExcite(out_channels, int(round(in_channels * 0.25)))
        self.conv3 = ConvNormAct(out_channels, out_channels, 1, apply_act=False)
        self.downsample = (ConvNormAct(in_channels, out_channels, 1, apply_act=False)
                           if in_channels != out_channels else None)
        self.act3 = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)                     # (n, c_out, h, w)
        x = self.conv3(self.se(self.conv2(self.conv1(x))))                                  # (n, c_out, h, w)
        return self.act3(x + shortcut)


class RegStage(nn.Sequential):
    """timm ``RegStage`` at stride 1: blocks ``b1`` .. ``b{depth}``; only ``b1`` changes the width."""

    def __init__(self, depth: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", RegBottleneck(in_channels if i == 0 else out_channels, out_channels))


def _mlp2x_gelu(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, out_features), nn.GELU(), nn.Linear(out_features, out_features))


class AllInOneSmall(nn.Module):
    """The 0.5B vision projector: video and body branches (identical structure, own weights) and a face MLP.

    Both branches see the same SigLIP features. Per branch: RegStage per frame, Conv3d sampler over
    (time, grid) with time padding 1 whose last output step is dropped (T stays T, grid halves),
    RegStage per frame, readout MLP over all T*g*g tokens. The face MLP maps every patch; its
    pooling is ``FaceGridPool``, outside the projector (as in the official code).
    """

    def __init__(self, in_channels: int, hidden_size: int, depth: int = 2) -> None:
        super().__init__()
        for branch in ("video", "body"):
            self.add_module(f"s1_{branch}", RegStage(depth, in_channels, hidden_size))
            self.add_module(f"sampler_{branch}", nn.Sequential(
                nn.Conv3d(hidden_size, hidden_size, kernel_size=(2, 2, 2), stride=(1, 2, 2), padding=(1, 0, 0)),
                nn.SiLU()))
            self.add_module(f"s2_{branch}", RegStage(depth, hidden_size, hidden_size))
            self.add_module(f"readout_{branch}", _mlp2x_gelu(hidden_size, hidden_size))
        self.mlp_2xgelu_face = _mlp2x_gelu(in_channels, hidden_size)

    def _branch(self, branch: str, x: torch.Tensor, num_videos: int) -> torch.Tensor:
        frames, num_patches, channels = x.shape
        grid = _grid_side(num_patches)
        t = frames // num_videos
        x = x.transpose(1, 2).reshape(frames, channels, grid, grid).contiguous()             # (V*T, Cv, G, G)
        x = getattr(self, f"s1_{branch}")(x)                                                 # (V*T, D, G, G)
        x = x.reshape(num_videos, t, -1, grid, grid).transpose(1, 2)                         # (V, D, T, G, G)
        x = getattr(self, f"sampler_{branch}")(x)[:, :, :-1]                                 # (V, D, T, g, g)
        x = x.transpose(1, 2).flatten(0, 1)                                                  # (V*T, D, g, g)
        x = getattr(self, f"s2_{branch}")(x)                                                 # (V*T, D, g, g)
        x = x.reshape(num_videos, t, x.shape[1], -1).permute(0, 1, 3, 2).flatten(1, 2)       # (V, T*g*g, D)
        return getattr(self, f"readout_{branch}")(x)                                         # (V, T*g*g, D)

    def forward(self, features: torch.Tensor, num_videos: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SigLIP patch features (V*T, P, Cv) -> video (V, T*g*g, D), body (V, T*g*g, D), face (V*T, P, D)."""
        video = self._branch("video", features, num_videos)
        body = self._branch("body", features, num_videos)
        face = self.mlp_2xgelu_face(features)                                                # (V*T, P, D)
        return video, body, face


def _grid_side(num_patches: int) -> int:
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches or grid % 2:
        # With an odd grid the face pool (ceil) and the sampler (floor) give different token counts
        # and the weighted sum cannot be formed (the official code fails there too).
        raise ValueError(f"the vision tower gives {num_patches} patches per frame; HumanOmni needs an even square "
                         "grid (image_size / patch_size even)")
    return grid


class FaceGridPool(nn.Module):
    """Bilinear resize of each frame's patch grid to ceil(G/2) (official ``get_2dPool``, align_corners False)."""

    def forward(self, face: torch.Tensor, num_videos: int) -> torch.Tensor:
        frames, num_patches, channels = face.shape
        grid = _grid_side(num_patches)
        x = face.transpose(1, 2).reshape(frames, channels, grid, grid)                       # (V*T, D, G, G)
        pooled = math.ceil(grid / 2)
        x = F.interpolate(x, size=(pooled, pooled), mode="bilinear", align_corners=False)  # (V*T, D, g, g)
        return x.flatten(2).transpose(1, 2).reshape(num_videos, -1, channels)                # (V, T*g*g, D)


# --------------------------------------------------------------------------------------------------
# Towers (the extra `.vision_tower` / `.audio_tower` level is the released key layout)
# --------------------------------------------------------------------------------------------------

class _SiglipVisionModelOnly(nn.Module):
    """Keeps the ``vision_model.`` key level of transformers 4.x ``SiglipVisionModel`` (5.x dropped it)."""

    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        self.vision_model = SiglipVisionModel(config)


class SiglipVisionTower(nn.Module):
    """SigLIP vision model; returns ``hidden_states[select_layer]`` (all patches, no post-layernorm, no head)."""

    def __init__(self, config: SiglipVisionConfig, select_layer: int) -> None:
        super().__init__()
        self.vision_tower = _SiglipVisionModelOnly(config)
        self.select_layer = select_layer

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(V*T, 3, S, S) -> (V*T, P, Cv)."""
        model = self.vision_tower.vision_model
        out = model(pixel_values.to(model.embeddings.patch_embedding.weight.dtype), output_hidden_states=True)
        return out.hidden_states[self.select_layer]                                          # (V*T, P, Cv)

    def used_modules(self) -> list[nn.Module]:
        """The modules the forward actually uses (layers after the selected one are computed, then dropped)."""
        model = self.vision_tower.vision_model
        num_layers = len(model.encoder.layers)
        used = self.select_layer % (num_layers + 1)       # hidden_states[0] is the embedding output
        return [model.embeddings, *model.encoder.layers[:used]]


class _WhisperEncoderOnly(nn.Module):
    """The part of ``WhisperForAudioClassification`` that the official code runs: ``.encoder``."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.encoder = WhisperEncoder(config)


class WhisperAudioTower(nn.Module):
    """Whisper encoder; returns ``last_hidden_state`` for exactly 2*max_source_positions mel frames."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.audio_tower = _WhisperEncoderOnly(config)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        """(A, K, F) -> (A, E, Ca)."""
        dtype = self.audio_tower.encoder.conv1.weight.dtype
        return self.audio_tower.encoder(input_features.to(dtype)).last_hidden_state          # (A, E, Ca)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------

class HumanOmniModel(Qwen2Model):
    """Qwen2 decoder plus the multimodal modules, under the released names (``model.*``)."""

    config_class = HumanOmniConfig

    def __init__(self, config: HumanOmniConfig) -> None:
        if not config.has_towers:
            raise ValueError("HumanOmniConfig needs vision_config, audio_config and bert_config to build a model; "
                             "load a checkpoint with HumanOmniForCausalLM.from_pretrained or use a preset")
        super().__init__(config)
        self.vision_tower = SiglipVisionTower(config.vision_config, config.mm_vision_select_layer)
        self.audio_tower = WhisperAudioTower(config.audio_config)
        self.mm_projector = AllInOneSmall(config.mm_hidden_size, config.hidden_size)
        self.audio_projector = _mlp2x_gelu(config.audio_hidden_size, config.hidden_size)
        self.bert_model = BertModel(config.bert_config, add_pooling_layer=True)
        self.bert_gate = nn.Sequential(nn.Linear(config.bert_config.hidden_size, GATE_HIDDEN_SIZE), nn.GELU(),
                                       nn.Linear(GATE_HIDDEN_SIZE, NUM_GATE_BRANCHES))
        self.gate_softmax = nn.Softmax(dim=-1)
        self.face_pool = FaceGridPool()

    def encode_videos(self, pixel_values: torch.Tensor, bert_input_ids: torch.Tensor,
                      bert_attention_mask: torch.Tensor | None = None,
                      bert_token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (V, T, 3, S, S) and each video's gate text (V, Lb) -> fused visual tokens (V, T*g*g, D)."""
        num_videos = pixel_values.shape[0]
        features = self.vision_tower(pixel_values.flatten(0, 1))                             # (V*T, P, Cv)
        # video and body (V, T*g*g, D), face (V*T, P, D)
        video, body, face = self.mm_projector(features, num_videos)
        face = self.face_pool(face, num_videos)                                              # (V, T*g*g, D)
        text = self.bert_model(input_ids=bert_input_ids, attention_mask=bert_attention_mask,
                               token_type_ids=bert_token_type_ids).last_hidden_state          # (V, Lb, Cb)
        weights = self.gate_softmax(self.bert_gate(text[:, 0]))                               # (V, 3)
        weights = weights.to(video.dtype)[:, :, None, None]                                  # (V, 3, 1, 1)
        return (weights * torch.stack([video, body, face], dim=1)).sum(dim=1)                # (V, T*g*g, D)

    def encode_audios(self, input_features: torch.Tensor) -> torch.Tensor:
        """Log-mel features (A, K, F) -> audio tokens (A, Q, D)."""
        hidden = self.audio_tower(input_features)                                            # (A, E, Ca)
        pooled = F.avg_pool1d(hidden.transpose(1, 2), kernel_size=3, stride=3).transpose(1, 2)  # (A, Q, Ca)
        return self.audio_projector(pooled)                                                  # (A, Q, D)


@dataclass
class MultimodalInputs:
    """Merged decoder inputs: rows left-padded to one length M, media blocks spliced in."""

    inputs_embeds: torch.Tensor            # (N, M, D)
    attention_mask: torch.Tensor           # (N, M)
    position_ids: torch.Tensor             # (N, M)
    labels: torch.Tensor | None = None     # (N, M), IGNORE_INDEX on media blocks and padding


@dataclass
class HumanOmniCausalLMOutput(CausalLMOutputWithPast):
    """``CausalLMOutputWithPast`` plus the merged labels and attention mask (like the official ``outputs.labels``),
    and the completion tokens' log-probabilities when scoring asked for them instead of logits."""

    labels: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    logprobs: torch.Tensor | None = None


class HumanOmniForCausalLM(Qwen2ForCausalLM):
    """HumanOmniQwen2ForCausalLM: multimodal merge in ``forward`` / ``generate``, released-layout loading.

    ``forward`` accepts the prompt ids with sentinels plus the media of the clips:
    ``pixel_values`` (V, T, 3, S, S) one entry per ``<video>`` sentinel (or (T, 3, S, S) for one video),
    ``input_features`` (A, K, F) one per ``<audio>`` sentinel, ``bert_*`` (B, Lb) one row per clip (the gate
    text), and optionally ``clip_index`` (N,) saying which clip each row of ``input_ids`` belongs to (default:
    row n is clip n). Media are taken in clip order: the videos of clip 0's sentinels first, then clip 1's...
    Every row of a clip must hold the same sentinels. Media are encoded once per clip and shared by its rows.
    With ``completion_ids`` the prompts are also run once per clip (:meth:`completion_hidden`).
    """

    config_class = HumanOmniConfig

    def __init__(self, config: HumanOmniConfig) -> None:
        Qwen2PreTrainedModel.__init__(self, config)
        self.model = HumanOmniModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def unused_modules(self) -> list[nn.Module]:
        """Modules stored in the checkpoint that no forward reads (they never get gradients): SigLIP layers
        after the selected one, its post-layernorm and head, and BERT's pooler."""
        vision = self.model.vision_tower.vision_tower.vision_model
        used = len(self.model.vision_tower.used_modules()) - 1
        unused = [*vision.encoder.layers[used:], vision.post_layernorm]
        if getattr(vision, "head", None) is not None:
            unused.append(vision.head)
        if self.model.bert_model.pooler is not None:
            unused.append(self.model.bert_model.pooler)
        return unused

    # -- merging ------------------------------------------------------------------------------------

    def prepare_multimodal_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                                  labels: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                                  input_features: torch.Tensor | None = None,
                                  bert_input_ids: torch.Tensor | None = None,
                                  bert_attention_mask: torch.Tensor | None = None,
                                  bert_token_type_ids: torch.Tensor | None = None,
                                  clip_index: torch.Tensor | None = None) -> MultimodalInputs:
        """Encode each clip's media once and splice the blocks into every row at its sentinels."""
        num_rows = input_ids.shape[0]
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if clip_index is None:
            clip_index = torch.arange(num_rows, device=device)
        if clip_index.shape != (num_rows,):
            raise ValueError(f"clip_index must have one entry per row ({num_rows}), "
                             f"got shape {tuple(clip_index.shape)}")
        rows_clip = clip_index.tolist()
        num_clips = bert_input_ids.shape[0] if bert_input_ids is not None else max(rows_clip, default=-1) + 1
        if rows_clip and (min(rows_clip) < 0 or max(rows_clip) >= num_clips):
            raise ValueError(f"clip_index values must lie in [0, {num_clips}) (one bert_input_ids row per clip), "
                             f"got {sorted(set(rows_clip))}")
        unknown = (input_ids < 0) & (input_ids != VIDEO_TOKEN_INDEX) & (input_ids != AUDIO_TOKEN_INDEX)
        if unknown.any():
            raise ValueError(f"input_ids hold negative ids {sorted(set(input_ids[unknown].tolist()))}; only the "
                             f"sentinels {VIDEO_TOKEN_INDEX} (<video>) and {AUDIO_TOKEN_INDEX} (<audio>) are supported")

        # Sentinel positions per row, and each clip's sentinel counts (from its first row).
        sentinels: list[list[tuple[int, int]]] = [[] for _ in range(num_rows)]
        where = torch.nonzero(input_ids < 0)                                                 # (S, 2) row, position
        for (row, pos), kind in zip(where.tolist(), input_ids[where[:, 0], where[:, 1]].tolist()):
            sentinels[row].append((pos, kind))
        first_row: dict[int, int] = {}
        for row, clip in enumerate(rows_clip):
            first_row.setdefault(clip, row)
        missing = [clip for clip in range(num_clips) if clip not in first_row]
        if missing:
            raise ValueError(f"clips {missing} have media/gate inputs but no row in input_ids")
        kinds = {clip: [kind for _, kind in sentinels[row]] for clip, row in first_row.items()}
        for row, clip in enumerate(rows_clip):
            if [kind for _, kind in sentinels[row]] != kinds[clip]:
                raise ValueError(f"row {row} of clip {clip} has different <video>/<audio> sentinels than the "
                                 "clip's first row; all rows of a clip must share its prompt")
        video_clips = [clip for clip in range(num_clips) for kind in kinds[clip] if kind == VIDEO_TOKEN_INDEX]
        audio_clips = [clip for clip in range(num_clips) for kind in kinds[clip] if kind == AUDIO_TOKEN_INDEX]

        visual = self._encode_video_blocks(video_clips, pixel_values, bert_input_ids, bert_attention_mask,
                                           bert_token_type_ids)                               # (V, T*g*g, D)
        audio = self._encode_audio_blocks(audio_clips, input_features)                       # (A, Q, D)
        text = self.model.embed_tokens(input_ids.clamp(min=0))                               # (N, L, D)

        # Block k of a clip's video (audio) sentinels is video (audio) number offset[clip] + k.
        video_offset = {clip: video_clips.index(clip) for clip in set(video_clips)}
        audio_offset = {clip: audio_clips.index(clip) for clip in set(audio_clips)}
        rows_embeds, rows_mask, rows_labels = [], [], []
        for row, clip in enumerate(rows_clip):
            embeds, mask, row_labels = [], [], []
            start, next_video, next_audio = 0, video_offset.get(clip, 0), audio_offset.get(clip, 0)
            for pos, kind in sentinels[row]:
                if kind == VIDEO_TOKEN_INDEX:
                    block, next_video = visual[next_video], next_video + 1                  # (T*g*g, D)
                else:
                    block, next_audio = audio[next_audio], next_audio + 1                   # (Q, D)
                embeds += [text[row, start:pos], block]
                mask += [attention_mask[row, start:pos], attention_mask.new_ones(block.shape[0])]
                if labels is not None:
                    row_labels += [labels[row, start:pos], labels.new_full((block.shape[0],), IGNORE_INDEX)]
                start = pos + 1
            embeds.append(text[row, start:])
            mask.append(attention_mask[row, start:])
            if labels is not None:
                row_labels.append(labels[row, start:])
            rows_embeds.append(torch.cat(embeds))                                            # (M_n, D)
            rows_mask.append(torch.cat(mask))                                                # (M_n,)
            if labels is not None:
                rows_labels.append(torch.cat(row_labels))                                    # (M_n,)

        merged_len = max(len(m) for m in rows_mask)
        inputs_embeds = torch.stack([F.pad(e, (0, 0, merged_len - len(e), 0)) for e in rows_embeds])  # (N, M, D)
        merged_mask = torch.stack([F.pad(m, (merged_len - len(m), 0)) for m in rows_mask])            # (N, M)
        merged_labels = None
        if labels is not None:
            merged_labels = torch.stack([F.pad(lab, (merged_len - len(lab), 0), value=IGNORE_INDEX)
                                         for lab in rows_labels])                                     # (N, M)
        position_ids = (merged_mask.long().cumsum(-1) - 1).clamp(min=0)                              # (N, M)
        return MultimodalInputs(inputs_embeds, merged_mask, position_ids, merged_labels)

    def _encode_video_blocks(self, video_clips: list[int], pixel_values: torch.Tensor | None,
                             bert_input_ids: torch.Tensor | None, bert_attention_mask: torch.Tensor | None,
                             bert_token_type_ids: torch.Tensor | None) -> torch.Tensor | None:
        if not video_clips:
            if pixel_values is not None:
                raise ValueError("pixel_values were given but no row holds a <video> sentinel")
            return None
        if pixel_values is None:
            raise ValueError(f"{len(video_clips)} <video> sentinel(s) but no pixel_values")
        if pixel_values.ndim == 4:      # one video as (T, 3, S, S), the official layout
            pixel_values = pixel_values[None]
        if pixel_values.ndim != 5 or pixel_values.shape[0] != len(video_clips):
            raise ValueError(f"pixel_values must be (V, T, 3, S, S) with V = {len(video_clips)} (one per <video> "
                             f"sentinel, in clip order), got {tuple(pixel_values.shape)}")
        if bert_input_ids is None:
            raise ValueError("videos need the gate text: pass bert_input_ids (one row per clip)")
        index = torch.tensor(video_clips, device=bert_input_ids.device)

        def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor[index]

        return self.model.encode_videos(pixel_values, pick(bert_input_ids), pick(bert_attention_mask),
                                        pick(bert_token_type_ids))

    def _encode_audio_blocks(self, audio_clips: list[int], input_features: torch.Tensor | None) -> torch.Tensor | None:
        if not audio_clips:
            if input_features is not None:
                raise ValueError("input_features were given but no row holds an <audio> sentinel")
            return None
        if input_features is None:
            raise ValueError(f"{len(audio_clips)} <audio> sentinel(s) but no input_features")
        if input_features.ndim != 3 or input_features.shape[0] != len(audio_clips):
            raise ValueError(f"input_features must be (A, K, F) with A = {len(audio_clips)} (one per <audio> "
                             f"sentinel, in clip order), got {tuple(input_features.shape)}")
        return self.model.encode_audios(input_features)

    # -- forward / generate -------------------------------------------------------------------------

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int | torch.Tensor = 0,
                pixel_values: torch.Tensor | None = None, input_features: torch.Tensor | None = None,
                bert_input_ids: torch.Tensor | None = None, bert_attention_mask: torch.Tensor | None = None,
                bert_token_type_ids: torch.Tensor | None = None, clip_index: torch.Tensor | None = None,
                completion_ids: torch.Tensor | None = None, return_logprobs: bool = False,
                **kwargs) -> HumanOmniCausalLMOutput:
        """Merged-sequence logits (N, M or logits_to_keep, X); with ``labels`` (N, L) the shifted mean CE.

        With ``completion_ids`` (N, C), ``input_ids`` are the B clips' prompts and the logits (N, C, X) are
        those that predict each completion token, row n continuing prompt ``clip_index[n]``: each prompt runs
        once and its rows' completions run on its keys / values (:meth:`completion_hidden`). With
        ``return_logprobs`` as well, ``logprobs`` (N, C) holds each completion token's log-probability instead,
        computed a chunk of rows at a time (:func:`r1omni.models.logprobs.head_logprobs`), and no (N, C, X) logits
        are made.

        The KV cache comes in under either of transformers' names (``cache`` from 5.25 on,
        ``past_key_values`` before, see :mod:`r1omni.models.kv_cache`); an empty or absent cache
        means this call is the prefill, the only one that merges media.
        """
        if completion_ids is not None:
            if labels is not None or inputs_embeds is not None or pop_cache(kwargs) is not None:
                raise ValueError("completion_ids score completions after prompt input_ids; labels, inputs_embeds "
                                 "and a KV cache do not apply")
            hidden = self.completion_hidden(input_ids, attention_mask, completion_ids, clip_index, pixel_values,
                                            input_features, bert_input_ids, bert_attention_mask, bert_token_type_ids)
            if return_logprobs:
                return HumanOmniCausalLMOutput(logprobs=head_logprobs(hidden, self.lm_head, completion_ids))
            return HumanOmniCausalLMOutput(logits=self.lm_head(hidden))
        merged = None
        cache = pop_cache(kwargs)
        prefill = cache is None or cache.get_seq_length() == 0
        if inputs_embeds is None and input_ids is not None and prefill:
            merged = self.prepare_multimodal_inputs(input_ids, attention_mask, labels, pixel_values, input_features,
                                                    bert_input_ids, bert_attention_mask, bert_token_type_ids,
                                                    clip_index)
            input_ids, inputs_embeds = None, merged.inputs_embeds
            attention_mask, labels = merged.attention_mask, merged.labels
            if position_ids is None:
                position_ids = merged.position_ids
        elif any(x is not None for x in (pixel_values, input_features, bert_input_ids)):
            raise ValueError("media inputs are only read on the first (prefill) step from input_ids with sentinels")
        if cache is not None:
            kwargs[cache_parameter(Qwen2ForCausalLM.forward)] = cache
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache,
                              logits_to_keep=logits_to_keep, **kwargs)
        return HumanOmniCausalLMOutput(loss=out.loss, logits=out.logits, hidden_states=out.hidden_states,
                                       attentions=out.attentions, labels=labels if merged is not None else None,
                                       attention_mask=attention_mask if merged is not None else None,
                                       **{OUTPUT_CACHE_FIELD: output_cache(out)})

    def completion_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                          completion_ids: torch.Tensor, clip_index: torch.Tensor | None = None,
                          pixel_values: torch.Tensor | None = None, input_features: torch.Tensor | None = None,
                          bert_input_ids: torch.Tensor | None = None, bert_attention_mask: torch.Tensor | None = None,
                          bert_token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden states (N, C, D) that predict ``completion_ids`` (N, C) after the B prompts ``input_ids``:
        media merged once per clip, each merged prompt through the LLM once, the completions on
        its keys / values at the positions that follow its real tokens (:mod:`r1omni.models.prefix`). Equal to
        running each row's prompt + completion (tested), with the prompt's work done once instead of G times."""
        num_rows = completion_ids.shape[0]
        if clip_index is None:
            clip_index = torch.arange(num_rows, device=completion_ids.device)
        if completion_ids.ndim != 2 or clip_index.shape != (num_rows,):
            raise ValueError(f"completion_ids (N, C) and clip_index (N,) expected, got {tuple(completion_ids.shape)} "
                             f"and {tuple(clip_index.shape)}")
        if num_rows and (int(clip_index.min()) < 0 or int(clip_index.max()) >= input_ids.shape[0]):
            raise ValueError(f"clip_index must lie in [0, {input_ids.shape[0]}) (one prompt row per clip), "
                             f"got {sorted(set(clip_index.tolist()))}")
        merged = self.prepare_multimodal_inputs(input_ids, attention_mask, None, pixel_values, input_features,
                                                bert_input_ids, bert_attention_mask, bert_token_type_ids)  # B rows
        steps = torch.arange(completion_ids.shape[1], device=completion_ids.device)                          # (C,)
        positions = merged.attention_mask.long().sum(dim=1)[clip_index, None] + steps                        # (N, C)
        return shared_prefix_hidden(self.model, merged.inputs_embeds, merged.attention_mask, merged.position_ids,
                                    self.model.embed_tokens(completion_ids), positions, clip_index)         # (N, C, D)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                 pixel_values: torch.Tensor | None = None, input_features: torch.Tensor | None = None,
                 bert_input_ids: torch.Tensor | None = None, bert_attention_mask: torch.Tensor | None = None,
                 bert_token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                 **kwargs) -> torch.Tensor:
        """Merge once, then transformers' generate on ``inputs_embeds``: returns the NEW tokens only (like the
        official code); ``num_return_sequences`` rows per clip are contiguous."""
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("generate needs input_ids (with sentinels) or inputs_embeds")
            merged = self.prepare_multimodal_inputs(input_ids, attention_mask, None, pixel_values, input_features,
                                                    bert_input_ids, bert_attention_mask, bert_token_type_ids)
            inputs_embeds, attention_mask = merged.inputs_embeds, merged.attention_mask
        return super().generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)

    # -- loading ------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, torch_dtype: torch.dtype = torch.float32,
                        vision_tower: str | os.PathLike | None = None, audio_tower: str | os.PathLike | None = None,
                        bert_tokenizer: str | os.PathLike | None = None, *, dtype: torch.dtype | str | None = None,
                        **hub_options) -> "HumanOmniForCausalLM":
        """Load a released (or r1omni-saved) HumanOmni folder; never touches the network.

        Tower configs come from ``vision_tower`` / ``audio_tower`` when given, else from the config's
        ``mm_vision_tower`` / ``mm_audio_tower`` resolved relative to ``directory``. Tower weights come from
        the checkpoint's own ``model.vision_tower.*`` / ``model.audio_tower.*`` keys when stored there, else
        from the tower folders. The BERT config comes from ``bert_tokenizer`` or ``directory/bert``.

        ``AutoModelForCausalLM.from_pretrained`` calls this too (``r1omni.hf_auto``), passing ``dtype`` (a
        torch dtype, or "auto" / None for float32) and the options of :data:`_AUTO_OPTIONS` (its parsed
        ``config``, hub and cache settings): the folder is local, and its config is re-read with the towers',
        so those mean nothing here. Any other keyword is refused by name.
        """
        unknown = sorted(set(hub_options) - _AUTO_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected arguments {unknown}; HumanOmni loading takes torch_dtype (or dtype), "
                            "vision_tower, audio_tower, bert_tokenizer")
        if isinstance(dtype, torch.dtype):
            torch_dtype = dtype
        elif dtype not in (None, "auto"):
            raise TypeError(f"dtype must be a torch.dtype or 'auto', got {dtype!r}")
        folders = CheckpointFolders.resolve(directory, vision_tower, audio_tower, bert_tokenizer)
        directory = folders.checkpoint
        weights = load_weights_file(directory)
        # The tower folders are authoritative; nested tower configs in config.json (not in the released
        # layout) are ignored.
        config_dict = {k: v for k, v in folders.config_dict.items()
                       if k not in ("vision_config", "audio_config", "bert_config")}
        config = HumanOmniConfig(**config_dict, vision_config=read_vision_config(folders.vision),
                                 audio_config=read_audio_config(folders.audio),
                                 bert_config=read_bert_config(folders.bert, weights))
        with no_init_weights():
            model = cls(config)
        model.to(torch_dtype)
        model.load_released_state(weights, folders.vision, folders.audio)
        generation_path = directory / "generation_config.json"
        if generation_path.is_file():
            model.generation_config = GenerationConfig.from_pretrained(directory, local_files_only=True)
        model.name_or_path = str(directory)
        return model.eval()

    def save_pretrained(self, *args, **kwargs) -> None:
        """Refused: a HumanOmni folder also needs the tokenizers, the tower folders and the released config
        layout, which :meth:`r1omni.models.humanomni.HumanOmniPolicy.save` writes."""
        raise NotImplementedError("save HumanOmni checkpoints with HumanOmniPolicy.save(directory): it writes the "
                                  "released layout (config.json, model.safetensors, tokenizers, tower folders)")

    def load_released_state(self, weights: "WeightsFile", vision_dir: Path | None = None,
                            audio_dir: Path | None = None) -> None:
        """Copy checkpoint tensors into the parameters, strictly: every expected key loaded exactly once,
        every checkpoint key used except the documented ``UNUSED_CHECKPOINT_KEYS``."""
        targets = self.state_dict()
        tied = bool(self.config.tie_word_embeddings)
        expected = set(targets) - ({"lm_head.weight"} if tied else set())
        sources = {key: weights for key in weights.keys()}
        dropped = sorted(k for k in sources if k.startswith(UNUSED_CHECKPOINT_KEYS))
        if tied and "lm_head.weight" in sources:
            dropped.append("lm_head.weight")     # tied: the embedding is the source of truth
        for key in dropped:
            del sources[key]
        for prefix, folder, kind in ((VISION_PREFIX, vision_dir, "vision"), (AUDIO_PREFIX, audio_dir, "audio")):
            wanted = {k for k in expected if k.startswith(prefix)}
            if wanted and not wanted & set(sources):
                if folder is None:
                    raise FileNotFoundError(f"{weights.path}: no {kind}-tower weights and no {kind}-tower folder given")
                tower = load_weights_file(folder, TOWER_KEY_MAPS[kind])
                sources.update({key: tower for key in tower.keys()})
                dropped += tower.dropped
        unexpected = sorted(set(sources) - expected)
        missing = sorted(expected - set(sources))
        if unexpected or missing:
            raise ValueError(f"{weights.path}: checkpoint does not match the HumanOmni module tree "
                             f"(missing {len(missing)}: {missing[:8]}; unexpected {len(unexpected)}: {unexpected[:8]})")
        with torch.no_grad():
            for key in sorted(expected):
                tensor = sources[key].get(key)
                if tensor.shape != targets[key].shape:
                    raise ValueError(f"{sources[key].path}: {key} has shape {tuple(tensor.shape)}, the model expects "
                                     f"{tuple(targets[key].shape)} (wrong tower folder or config?)")
                targets[key].copy_(tensor)
        if tied:
            self.lm_head.weight = self.model.embed_tokens.weight
        if dropped:
            logger.info("dropped %d unused checkpoint tensors (%s ...)", len(dropped), ", ".join(dropped[:3]))


# AutoModelForCausalLM loads HumanOmni folders (r1omni.hf_auto imports this module when the Auto classes load).
AutoModelForCausalLM.register(HumanOmniConfig, HumanOmniForCausalLM, exist_ok=True)
