"""A vLLM rollout engine for the Qwen2.5-Omni thinker, colocated with training (TRL's "colocate" mode).

vLLM samples the G completions per clip; the policy being trained stays a transformers module and
scores them. Three things make that work:

* **Which model vLLM runs.** vLLM registers the *full* Qwen2.5-Omni architecture
  (``Qwen2_5OmniModel``; it builds only the thinker) and reads ``thinker_config`` from it, so a
  thinker-only folder (what r1omni saves) does not load. ``VLLMOptions.model`` is therefore a full
  Qwen2.5-Omni folder with the same thinker shapes and tokenizer as the policy, typically the base
  checkpoint the run started from; its on-disk weights are overwritten before the first rollout.
* **Weights.** Before each rollout the policy's thinker weights are pushed into vLLM's model
  under the on-disk Omni names (``thinker.model.*``, ``thinker.visual.*``, ``thinker.audio_tower.*``,
  ``thinker.lm_head.*``), which vLLM's own name mapper and q/k/v packing accept, then the prefix
  cache is reset (a cached prompt prefix would belong to the old weights).
* **Mismatch.** vLLM returns each sampled token's log-probability. It is the *raw* (untempered)
  one, vLLM's default ``logprobs_mode``, which is what ``Policy.token_logprobs`` computes; the GRPO
  loop turns their difference into capped per-token importance weights
  (``LossConfig.importance_cap``). vLLM's own image / audio pre-processing may also differ slightly
  from the trainer's; the weights absorb that too.

Media go in as they were decoded: the sampled frames as a (T, H, W, 3) uint8 array and the 16 kHz
waveform as a separate audio item (not ``use_audio_in_video``, which vLLM's V1 engine long did not
support). Prompts are the policy's own rendered prompts, whose single placeholders vLLM expands.

Written against vLLM's documented offline API (``LLM``, ``SamplingParams(logprobs=0)``,
``llm_engine.model_executor.driver_worker.model_runner.model.load_weights``, the path TRL uses
through TRL 1.16); tested here with a stand-in for vLLM, and on a GPU with vLLM installed by
``tests/train/test_vllm_engine.py::test_real_vllm_rollout``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from r1omni.models import ClipInput, Completions, Policy, PreparedBatch, SamplingConfig
from r1omni.train.rollout import Rollout
from r1omni.train.accelerated import unwrapped

__all__ = ["VLLMOptions", "VLLMEngine", "vllm_weight_name"]

# transformers' in-memory thinker names -> the on-disk names of a full Qwen2.5-Omni checkpoint.
_NAME_PREFIXES = (
    ("model.language_model.", "thinker.model."),
    ("model.visual.", "thinker.visual."),
    ("model.audio_tower.", "thinker.audio_tower."),
    ("lm_head.", "thinker.lm_head."),
)


@dataclass
class VLLMOptions:
    """Settings of the vLLM engine (``GRPOConfig.vllm``)."""

    model: str | None = None
    """A full Qwen2.5-Omni folder (config with ``thinker_config``, tokenizer, processor) whose thinker
    has the policy's shapes; its weights are replaced by the policy's before every rollout."""
    gpu_memory_utilization: float = 0.3
    """Share of the GPU vLLM may take (weights + KV cache); the rest is the trainer's."""
    max_model_len: int = 8192
    """Longest prompt + completion, in tokens (prompts include the expanded media tokens)."""
    enforce_eager: bool = False
    """Skip CUDA-graph capture (slower sampling, faster start, less memory)."""

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization < 1:
            raise ValueError(f"vllm.gpu_memory_utilization={self.gpu_memory_utilization}; use a share in (0, 1)")
        if self.max_model_len < 64:
            raise ValueError(f"vllm.max_model_len={self.max_model_len}; prompts with media need far more")


def vllm_weight_name(name: str) -> str:
    """The on-disk Omni name of one parameter of the HF thinker (``SharedMediaThinker`` adds a
    ``thinker.`` in front of the HF names; it is stripped first)."""
    bare = name.removeprefix("thinker.")
    for hf_prefix, disk_prefix in _NAME_PREFIXES:
        if bare.startswith(hf_prefix):
            return disk_prefix + bare[len(hf_prefix):]
    raise ValueError(f"parameter {name!r} has no Qwen2.5-Omni checkpoint name (expected one of "
                     f"{[p for p, _ in _NAME_PREFIXES]})")


def _import_vllm():
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise ImportError("rollout_engine='vllm' needs vLLM on a CUDA machine (pip install vllm); "
                          "use rollout_engine='hf' otherwise") from err


class VLLMEngine:
    """Samples rollouts with a colocated ``vllm.LLM``; see the module docstring."""

    def __init__(self, accelerator: Accelerator, options: VLLMOptions, seed: int = 0) -> None:
        if options.model is None:
            raise ValueError("rollout_engine='vllm' needs vllm.model: a full Qwen2.5-Omni folder (e.g. the "
                             "Qwen2.5-Omni-3B checkpoint the policy was initialised from); vLLM cannot load a "
                             "thinker-only folder")
        config_file = Path(options.model) / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"vllm.model={options.model}: no config.json (a local Qwen2.5-Omni folder "
                                    "is needed; nothing is downloaded)")
        self.vllm = _import_vllm()
        self.accelerator = accelerator
        self.options = options
        kwargs = dict(model=str(options.model), gpu_memory_utilization=options.gpu_memory_utilization,
                      max_model_len=options.max_model_len, enforce_eager=options.enforce_eager,
                      limit_mm_per_prompt={"image": 0, "video": 1, "audio": 1},
                      seed=seed + accelerator.process_index, logprobs_mode="raw_logprobs")
        if accelerator.num_processes > 1:
            # One in-process engine per training process (each samples its own clips).
            kwargs["distributed_executor_backend"] = "external_launcher"
        self.llm = self.vllm.LLM(**kwargs)
        self._eos_token_id: int | None = None

    # -- weights ---------------------------------------------------------------------------------
    def _named_weights(self, policy: Policy) -> Iterator[tuple[str, torch.Tensor]]:
        # Parameters only (tied embeddings once): buffers such as rotary tables are vLLM's own.
        for name, tensor in policy.module.named_parameters():
            yield vllm_weight_name(name), tensor.detach()

    def push_weights(self, policy: Policy) -> int:
        """Copy the policy's thinker weights into vLLM's model; returns how many tensors were sent."""
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        count = 0
        for name, tensor in self._named_weights(policy):
            model.load_weights([(name, tensor)])
            count += 1
        self.llm.reset_prefix_cache()
        return count

    # -- sampling --------------------------------------------------------------------------------
    def _sampling_params(self, sampling: SamplingConfig, num_generations: int, eos_token_id: int):
        return self.vllm.SamplingParams(
            n=num_generations, temperature=sampling.temperature, top_k=sampling.top_k if sampling.top_k > 0 else -1,
            top_p=sampling.top_p, repetition_penalty=sampling.repetition_penalty,
            max_tokens=sampling.max_new_tokens, logprobs=0, stop_token_ids=[eos_token_id],
            skip_special_tokens=True)

    @staticmethod
    def _request(prompt: str, clip: ClipInput) -> dict:
        media: dict = {}
        if clip.frames is not None:
            media["video"] = clip.frames
        if clip.waveform is not None:
            media["audio"] = (clip.waveform, clip.sample_rate_hz)
        return {"prompt": prompt, "multi_modal_data": media}

    def generate(self, policy: Policy, batch: PreparedBatch, num_generations: int, sampling: SamplingConfig,
                 clips: list[ClipInput] | None = None) -> Rollout:
        if clips is None or len(clips) != batch.num_clips or len(batch.prompts) != batch.num_clips:
            raise ValueError("the vLLM engine needs the decoded clips and the rendered prompts of the batch")
        with unwrapped(policy, self.accelerator) as bare, torch.no_grad():
            if bare.family != "qwen2_5_omni":
                raise ValueError(f"the vLLM engine runs Qwen2.5-Omni thinkers; this policy is {bare.family!r} "
                                 "(use rollout_engine='hf')")
            if getattr(bare, "media_norm", None) is not None:
                raise ValueError("this policy normalises its media tokens (MediaNorm), which vLLM's Qwen2.5-Omni "
                                 "does not: its samples would come from another model (use rollout_engine='hf')")
            self.push_weights(bare)
            eos = bare.tokenizer.convert_tokens_to_ids("<|im_end|>")
            pad = bare.tokenizer.pad_token_id
            requests = [self._request(prompt, clip) for prompt, clip in zip(batch.prompts, clips)]
            outputs = self.llm.generate(requests, self._sampling_params(sampling, num_generations, eos),
                                        use_tqdm=False)
            rows, logprobs, clip_index = [], [], []
            for b, request_output in enumerate(outputs):
                if len(request_output.outputs) != num_generations:
                    raise RuntimeError(f"vLLM returned {len(request_output.outputs)} completions for clip {b}, "
                                       f"expected {num_generations}")
                for completion in request_output.outputs:
                    tokens = list(completion.token_ids)
                    values = [step[token].logprob for step, token in zip(completion.logprobs, tokens)]
                    if completion.finish_reason == "stop" and (not tokens or tokens[-1] != eos):
                        # vLLM stopped on <|im_end|> without returning it: add it, with an unknown
                        # sampler log-prob (NaN -> importance weight 1 in the loop).
                        tokens.append(eos)
                        values.append(math.nan)
                    rows.append(tokens)
                    logprobs.append(values)
                    clip_index.append(b)
            length = max(1, max(len(r) for r in rows))
            ids = torch.full((len(rows), length), pad, dtype=torch.long)            # (N, C)
            mask = torch.zeros((len(rows), length), dtype=torch.long)               # (N, C)
            sampler = torch.zeros((len(rows), length), dtype=torch.float32)         # (N, C)
            for i, (tokens, values) in enumerate(zip(rows, logprobs)):
                ids[i, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                mask[i, :len(tokens)] = 1
                sampler[i, :len(values)] = torch.tensor(values, dtype=torch.float32)
            texts = bare.tokenizer.batch_decode(ids, skip_special_tokens=True)  # pads are special
        completions = Completions(ids=ids, mask=mask, texts=texts, clip_index=torch.tensor(clip_index))
        return Rollout(completions, sampler_logprobs=sampler)

