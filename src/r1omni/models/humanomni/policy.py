"""HumanOmni / R1-Omni behind the :class:`~r1omni.models.policy.Policy` interface.

:class:`HumanOmniPolicy` pairs a :class:`HumanOmniForCausalLM` with its :class:`HumanOmniProcessor`:

* ``prepare`` renders and tokenises the prompts, pre-processes frames / audio / gate text once per clip;
* ``generate`` is :func:`r1omni.models.decoding.generate` with this family's two hooks: ``prefill``
  builds the merged ``inputs_embeds`` of the B clips once (media encoded once per clip) and runs them
  once; ``stepper`` steps the LLM with :class:`~r1omni.models.decoding.Qwen2Step`. Rows stop at
  ``<|im_end|>`` (and the checkpoint's other eos ids); the completion mask runs up to and including
  the first stop token; log-probabilities come back when ``SamplingConfig.logprobs`` asks;
* ``token_logprobs`` scores completions with ONE call of ``self.module(...)`` (media encoded once per clip
  inside it, shared by that clip's rows through ``clip_index``), so a DDP / accelerate wrapper placed in
  ``self.module`` sees the whole computation. With ``share_prompts`` (default) each clip's prompt also
  runs through the LLM once and its completions on its keys / values (:mod:`r1omni.models.prefix`,
  also under activation checkpointing); without, each row runs as prompt + completion (same numbers);
* ``save`` writes the released folder layout that :func:`load_policy` (and, for the parts it reads, the
  official loader) read back.

Sampling settings are exactly those of the :class:`SamplingConfig` passed in; the checkpoint's
``generation_config.json`` (which for the released R1-Omni reportedly adds repetition_penalty 1.1) only
supplies the eos ids. ``generate`` decodes in eval mode (the released BERT config has dropout 0.1) and
restores the caller's mode; ``token_logprobs`` runs in the caller's mode.

On construction the towers are frozen (as the official loader does) and the modules no forward reads
(``unused_modules``) are frozen for good; a trainer chooses the rest through ``parts()``.

Letters in shape comments: B clips, G completions per clip, N rows (B*G), P prompt length,
C completion length, X vocabulary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import DynamicCache, Qwen2ForCausalLM
from transformers.cache_utils import Cache

from r1omni.atomic import atomic_dir, atomic_write_text
from r1omni.models import decoding
from r1omni.models.card import CardInfo, write_model_card
from r1omni.models.decoding import Prefill, Step, Vocabulary, qwen2_stepper
from r1omni.models.humanomni.checkpoint import CheckpointFolders
from r1omni.models.humanomni.modeling import HumanOmniForCausalLM
from r1omni.models.humanomni.processing import HumanOmniProcessor
from r1omni.models.kv_cache import cache_parameter
from r1omni.models.logprobs import selected_logprobs
from r1omni.models.policy import ClipInput, Completions, PreparedBatch, SamplingConfig

__all__ = ["HumanOmniPolicy", "load_policy", "VISION_SUBDIR", "AUDIO_SUBDIR", "BERT_SUBDIR"]

# Sub-folders of a saved checkpoint; config.json names the towers by these RELATIVE paths.
VISION_SUBDIR, AUDIO_SUBDIR, BERT_SUBDIR = "siglip", "whisper", "bert"
END_OF_TURN = "<|im_end|>"


def _unwrap(module: torch.nn.Module) -> HumanOmniForCausalLM:
    """The HumanOmni model inside DDP / accelerate / DeepSpeed (``.module``) or torch.compile (``._orig_mod``)."""
    while not isinstance(module, HumanOmniForCausalLM):
        inner = getattr(module, "module", None) or getattr(module, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"policy.module is a {type(module).__name__} that does not wrap a HumanOmniForCausalLM")
        module = inner
    return module


class HumanOmniPolicy:
    """The HumanOmni family's :class:`~r1omni.models.policy.Policy`; ``share_prompts`` (default True, an
    attribute a caller may switch) scores each clip's prompt once for all its rows, as the Qwen-Omni policy's
    switch of the same name does."""

    family = "humanomni"

    def __init__(self, model: HumanOmniForCausalLM, processor: HumanOmniProcessor, freeze_towers: bool = True,
                 share_prompts: bool = True) -> None:
        self.module: torch.nn.Module = model
        self.share_prompts = share_prompts
        self.processor = processor
        self.tokenizer = processor.tokenizer
        for module in model.unused_modules():
            module.requires_grad_(False)
        if freeze_towers:
            model.model.vision_tower.requires_grad_(False)
            model.model.audio_tower.requires_grad_(False)
        self.stop_token_ids = self._stop_token_ids(model)
        self.vocabulary = Vocabulary(self.tokenizer, tuple(self.stop_token_ids), self.tokenizer.pad_token_id)

    def _stop_token_ids(self, model: HumanOmniForCausalLM) -> list[int]:
        end_of_turn = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if end_of_turn is None or end_of_turn == self.tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {END_OF_TURN} token; HumanOmni uses Qwen's ChatML")
        configured = model.generation_config.eos_token_id
        configured = configured if isinstance(configured, list) else [configured] if configured is not None else []
        return list(dict.fromkeys([end_of_turn, *configured]))

    @property
    def model(self) -> HumanOmniForCausalLM:
        """The bare model (unwrapped from any trainer wrapper placed in ``self.module``)."""
        return _unwrap(self.module)

    @property
    def num_frames(self) -> int:
        """Frames per clip the checkpoint was trained with (``config.num_frames``)."""
        return int(self.model.config.num_frames)

    @property
    def device(self) -> torch.device:
        return self.model.model.embed_tokens.weight.device

    # -- the protocol --------------------------------------------------------------------------------

    def check_clip(self, clip: ClipInput) -> None:
        self.processor.check(clip)

    def prepare(self, clips: list[ClipInput]) -> PreparedBatch:
        return self.processor(clips)

    def generate(self, batch: PreparedBatch, num_return_sequences: int = 1,
                 sampling: SamplingConfig | None = None) -> Completions:
        return decoding.generate(self, self.model, batch.to(self.device), num_return_sequences, sampling,
                                 self.vocabulary)

    def prefill(self, batch: PreparedBatch) -> Prefill:
        """Merge the B prompts with their media once and run the merged rows through the LLM (the
        :func:`~r1omni.models.decoding.generate` hook). Positions count each row's real tokens, as
        transformers' generate counts them for left-padded rows. A repetition penalty reads the new tokens
        only: the prompt exists as embeddings (transformers' generate on ``inputs_embeds`` does the same)."""
        model = self.model
        merged = model.prepare_multimodal_inputs(batch.input_ids, batch.attention_mask, **batch.media)
        mask = merged.attention_mask                                                          # (B, M)
        cache = DynamicCache(config=model.config)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)                                 # (B, M)
        out = model(inputs_embeds=merged.inputs_embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1, **{cache_parameter(Qwen2ForCausalLM.forward): cache})
        no_history = torch.zeros((mask.shape[0], 0), dtype=torch.long, device=mask.device)   # (B, 0)
        return Prefill(out.logits[:, -1], cache, mask, mask.long().sum(dim=1), no_history)

    def stepper(self, cache: Cache, key_mask: torch.Tensor, next_position: torch.Tensor, lean: bool = True) -> Step:
        """:class:`~r1omni.models.decoding.Qwen2Step` on the LLM; ``lean=False`` (or an LLM it does not
        reproduce): the model's own forward, one token per row on ``cache`` (parity tests compare the two)."""
        model = self.model
        step = qwen2_stepper(model.model, model.lm_head, cache, key_mask, next_position) if lean else None
        if step is not None:
            return step
        prompt_len = cache.get_seq_length()

        def module_step(tokens: torch.Tensor, index: int) -> torch.Tensor:
            return model(input_ids=tokens[:, None], attention_mask=key_mask[:, :prompt_len + index + 1],
                         position_ids=(next_position + index)[:, None], use_cache=True, logits_to_keep=1,
                         **{cache_parameter(Qwen2ForCausalLM.forward): cache}).logits[:, -1]    # (N, X)
        return module_step

    def encode_completions(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return decoding.encode_completions(self.tokenizer, texts, self.stop_token_ids[0], self.tokenizer.pad_token_id)

    def token_logprobs(self, batch: PreparedBatch, completion_ids: torch.Tensor,
                       clip_index: torch.Tensor) -> torch.Tensor:
        if completion_ids.ndim != 2 or clip_index.shape != completion_ids.shape[:1]:
            raise ValueError(f"completion_ids (N, C) and clip_index (N,) expected, got "
                             f"{tuple(completion_ids.shape)} and {tuple(clip_index.shape)}")
        if (completion_ids < 0).any():
            raise ValueError("completion_ids must be token ids: pad with the pad token, not -100")
        batch = batch.to(self.device)
        clip_index, completion_ids = clip_index.to(self.device), completion_ids.to(self.device)
        if self.share_prompts:
            out = self.module(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              completion_ids=completion_ids, clip_index=clip_index, return_logprobs=True,
                              **batch.media)
            return out.logprobs                                                                      # (N, C)
        num_completion = completion_ids.shape[1]
        input_ids = torch.cat([batch.input_ids[clip_index], completion_ids], dim=1)                  # (N, P+C)
        # Padding after a row's stop token is attended to by nothing earlier, so it needs no mask.
        attention_mask = torch.cat([batch.attention_mask[clip_index], torch.ones_like(completion_ids)], dim=1)
        out = self.module(input_ids=input_ids, attention_mask=attention_mask, clip_index=clip_index,
                          logits_to_keep=num_completion + 1, use_cache=False, **batch.media)
        logits = out.logits[:, :-1]                                                                  # (N, C, X)
        return selected_logprobs(logits, completion_ids)                                             # (N, C)

    def parts(self) -> dict[str, list[torch.nn.Module]]:
        model = self.model
        inner = model.model
        llm = [inner.embed_tokens, inner.layers, inner.norm]
        if not model.config.tie_word_embeddings:
            llm.append(model.lm_head)
        bert = inner.bert_model
        return {
            "llm": llm,
            "vision_tower": inner.vision_tower.used_modules(),
            "audio_tower": [inner.audio_tower],
            "vision_projector": [inner.mm_projector],
            "audio_projector": [inner.audio_projector],
            "gate_text_encoder": [bert.embeddings, bert.encoder],
            "gate": [inner.bert_gate],
        }

    def save(self, directory: str | os.PathLike, official_compatible: bool = False,
             card: CardInfo | None = None) -> None:
        """Write the released layout: config.json (towers named by relative sub-folders), model.safetensors
        (every module incl. the towers, tied lm_head omitted), tokenizer + chat template, generation config,
        ``siglip/`` ``whisper/`` ``bert/`` with configs, preprocessor configs and the BERT tokenizer.

        ``official_compatible=True`` also writes the tower and BERT weights into the sub-folders, which the
        official loader re-reads from there (it ignores the copies in model.safetensors).
        ``card``: what the saver knows, for the model card (``README.md``).
        """
        model = self.model
        config = model.config
        with atomic_dir(directory) as folder:
            released = config.to_released_dict(torch_dtype=model.dtype)
            released.update(mm_vision_tower=VISION_SUBDIR, mm_audio_tower=AUDIO_SUBDIR)
            _write_json(folder / "config.json", released)
            state = {key: tensor.contiguous() for key, tensor in model.state_dict().items()
                     if not (config.tie_word_embeddings and key == "lm_head.weight")}
            save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
            model.generation_config.save_pretrained(folder)
            self.processor.save_pretrained(folder, VISION_SUBDIR, AUDIO_SUBDIR, BERT_SUBDIR)
            write_model_card(folder, self.family, card)
            for subdir, sub_config, architecture in (
                    (VISION_SUBDIR, config.vision_config, "SiglipVisionModel"),
                    (AUDIO_SUBDIR, config.audio_config, "WhisperForAudioClassification"),
                    (BERT_SUBDIR, config.bert_config, "BertModel")):
                data = sub_config.to_dict()
                data.update(architectures=[architecture], torch_dtype=str(model.dtype).removeprefix("torch."))
                data.pop("dtype", None)
                _write_json(folder / subdir / "config.json", data)
            if official_compatible:
                inner = model.model
                # Key names as the stand-alone models of transformers 4.x write them.
                for subdir, module in ((VISION_SUBDIR, inner.vision_tower.vision_tower),   # vision_model.*
                                       (AUDIO_SUBDIR, inner.audio_tower.audio_tower),      # encoder.*
                                       (BERT_SUBDIR, inner.bert_model)):                   # embeddings.* ...
                    tower = {key: tensor.contiguous() for key, tensor in module.state_dict().items()}
                    save_file(tower, folder / subdir / "model.safetensors", metadata={"format": "pt"})


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_policy(directory: str | os.PathLike, vision_tower: str | os.PathLike | None = None,
                audio_tower: str | os.PathLike | None = None, bert_tokenizer: str | os.PathLike | None = None,
                dtype: torch.dtype = torch.float32, frame_mode: str = "stretch",
                device: str | torch.device | None = None, freeze_towers: bool = True) -> HumanOmniPolicy:
    """Load a released HumanOmni / R1-Omni folder (or one written by :meth:`HumanOmniPolicy.save`).

    ``frame_mode``: ``"stretch"`` (official inference, default) or ``"pad"`` (official training).
    Nothing is downloaded; see :meth:`HumanOmniForCausalLM.from_pretrained` for where each part is read.
    """
    folders = CheckpointFolders.resolve(directory, vision_tower, audio_tower, bert_tokenizer)
    model = HumanOmniForCausalLM.from_pretrained(directory, torch_dtype=dtype, vision_tower=folders.vision,
                                                 audio_tower=folders.audio, bert_tokenizer=folders.bert)
    config = model.config
    processor = HumanOmniProcessor.from_pretrained(
        folders.checkpoint, folders.vision, folders.audio, folders.bert, frame_mode=frame_mode,
        use_x_start_end=config.mm_use_x_start_end, bert_max_positions=config.bert_config.max_position_embeddings,
        vision_image_size=config.vision_config.image_size, num_mel_bins=config.audio_config.num_mel_bins)
    if device is not None:
        model.to(device)
    return HumanOmniPolicy(model, processor, freeze_towers=freeze_towers)
