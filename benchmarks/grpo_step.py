"""GRPO step throughput: r1omni's loop (``r1omni.train.grpo.train_grpo``) against TRL's ``GRPOTrainer``.

Part 1, like for like. Both train the same tiny TEXT-ONLY Qwen2 (random weights, hidden 64, 2
layers, the offline BPE of ``r1omni.models.tokenizer``), saved once and loaded by both, on the same
16 prompts with the same reward and the same settings: G completions per prompt, P prompts per
step, one optimiser step per rollout (μ = 1), max_completion_length, temperature 1 / top-k 50,
AdamW lr with linear decay, β = 0.04 with a reference model, the per-sequence mean ("grpo") loss,
group-scaled advantages, fp32 on CPU (TRL: ``bf16=False``, ``use_cpu=True``, no vLLM, no
activation checkpointing). They run one after the other in this process, ``--rounds`` times
alternately; the best round of each (by CPU time) is reported: steps/s and completion tokens/s of
the median step after ``--warmup``, by wall-clock and by process CPU time (one torch thread, so CPU
time is what a step costs even when other jobs share the machine), and r1omni / TRL.

r1omni drives models through its Policy protocol, which a plain causal LM does not implement, so
this file carries a minimal text-only adapter (:class:`TextPolicy`: prepare = chat template +
left-padded tokens; generate = r1omni's decoding loop (``r1omni.models.decoding``) with its
``prefill`` / ``stepper`` hooks (``earlier_loop=True``: HF ``generate``); token_logprobs = each
prompt once, its G completions on its keys / values, as r1omni's omni policies score; parts, save)
and a :class:`TextLoader` that hands ``train_grpo`` the question of each manifest row instead of
decoding media. Both are passed to ``train_grpo`` (``policy=``, ``loader=``) for part 1 only. The
differences that remain are the loops' own: how each builds its batches, scores, logs and steps.

Part 2, r1omni's time split (``time/rollout``, ``time/reference``, ``time/policy``,
``time/optimizer`` of metrics.jsonl) on a tiny omni preset with generated clips (4 frames of
56x56 + 1 s of audio per clip).

Part 1 runs two settings: the original one (4 prompts x G=4, 16 new tokens) and 4 prompts x G=8 with
128 new tokens, closer to the work r1omni does.

Part 3, the embedded demo's real GRPO step (``qwen2.5-omni-demo`` from random init, 8 generated clips
x G=8, 100 new tokens at T 0.5 / top-k 50, beta 0.04, 2 torch threads, as ``r1omni demo`` runs it);
random weights rarely stop early, so almost every row decodes all 100 tokens (the worst case; the
demo's trained cold start averages ~87). It runs twice: with r1omni's loop, and with the loop that
loop replaced (:func:`earlier_generate`: a growing cache, the model's own forward per step,
transformers' logits warpers, a multinomial over the vocabulary), which lives here only, to be measured
against.

For every setting the **compute floor** is measured in the same run: one batched forward + backward
of the same rows and tokens (``token_logprobs`` of the step's completions, ``.sum().backward()``),
no generation loop; the step time is printed as a multiple of it. For the demo's step, also its
matrix-product work (GFLOP of linear layers and attention in the rollout, the reference forward and the
policy forward + backward, counted by torch's ``FlopCounterMode``) and the time that work would take at
this machine's float32 product rate measured in the same run (2048^3): a bound no implementation of the
same step in float32 beats here. The process's peak resident memory is printed at the end.

Part 4, shared-prefix scoring (``share_prompts``, :mod:`r1omni.models.prefix`) on R1-Omni's shape: one clip x
G=8 whose prompt is ``--prefix-ratio`` (10) times as long as each completion, for a random HumanOmni and a
random Qwen2.5-Omni thinker with the same scaled-down Qwen2.5-0.5B LLM (:data:`PREFIX_LLM`); the scoring part
of a GRPO step (reference forward, policy forward + backward of the GRPO loss, AdamW) with sharing on and
off and activation checkpointing on and off, rounds in turn: median CPU and wall seconds, GFLOP (the
counter of part 3) and peak resident memory above the step's start (:class:`PeakMemory`).

The reward is a toy verifiable one (the share of "e" characters in a completion): random weights
never produce the ``<think>/<answer>`` format, and the figures here are about speed only.

    python benchmarks/grpo_step.py [--steps 30] [--warmup 3] [--rounds 3] [--omni-preset qwen2.5-omni-tiny]
                                   [--demo-steps 6] [--parts trl omni demo prefix] [--prefix-ratio 10]

Run with one torch thread (set here); on a shared machine, compare figures from the same run only.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.generation.logits_process import (  # noqa: E402
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from r1omni.atomic import atomic_dir  # noqa: E402
from r1omni.clips import ClipLoader, LoadedClips  # noqa: E402
from r1omni.media import write_clip  # noqa: E402
from r1omni.models import ClipInput, Completions, PreparedBatch, SamplingConfig  # noqa: E402
from r1omni.models import decoding  # noqa: E402
from r1omni.models.humanomni.presets import build_policy, build_tokenizers, tiny_config  # noqa: E402
from r1omni.models.qwen_omni.presets import PRESETS as QWEN_PRESETS  # noqa: E402
from r1omni.models.decoding import (  # noqa: E402
    Prefill,
    Step,
    Vocabulary,
    evaluating,
    qwen2_stepper,
)
from r1omni.models.kv_cache import cache_parameter  # noqa: E402
from r1omni.models.tokenizer import build_bpe_tokenizer  # noqa: E402
from r1omni.schema import Sample, read_samples, write_samples  # noqa: E402
from r1omni.synth import generate_benchmark  # noqa: E402
from r1omni.template import PROMPTS  # noqa: E402
from r1omni.train.grpo import GRPOConfig, LossConfig, train_grpo  # noqa: E402
from r1omni.train.losses import policy_loss  # noqa: E402
from r1omni.train.setup import OptimConfig, open_policy, set_trainable_parts  # noqa: E402

torch.set_num_threads(1)

LABELS = ("happy", "sad", "angry", "neutral")
REWARD_NAME = "letter_e"


def letter_e(completions, **columns) -> list[float]:
    """Share of "e" characters; completions as plain text (r1omni) or chat messages (TRL)."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [text.count("e") / max(len(text), 1) for text in texts]


# -- a text-only Qwen2 behind r1omni's Policy protocol ------------------------------------------------
class TextScorer(nn.Module):
    """``policy.module`` of :class:`TextPolicy`: log-probabilities of completion tokens (N, C). Each prompt
    runs once and its rows' completions attend to its keys / values, as r1omni's omni policies score
    (``SharedMediaThinker``); the numbers equal one forward of each row's prompt + completion."""

    def __init__(self, model: Qwen2ForCausalLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                clip_index: torch.Tensor) -> torch.Tensor:
        decoder, key = self.model.model, cache_parameter(type(self.model.model).forward)
        cache = DynamicCache(config=self.model.config)
        prompt_hidden = decoder(input_ids=prompt_ids, attention_mask=prompt_mask, use_cache=True,
                                position_ids=(prompt_mask.cumsum(1) - 1).clamp(min=0),
                                **{key: cache}).last_hidden_state                             # (B, P, D)
        cache.batch_select_indices(clip_index)
        completion_len = completion_ids.shape[1]
        positions = prompt_mask.sum(1)[clip_index, None] + torch.arange(completion_len)[None]   # (N, C)
        mask = torch.cat([prompt_mask[clip_index], torch.ones_like(completion_ids)], dim=1)    # (N, P+C)
        completion_hidden = decoder(input_ids=completion_ids, attention_mask=mask, position_ids=positions,
                                    use_cache=True, **{key: cache}).last_hidden_state         # (N, C, D)
        hidden = torch.cat([prompt_hidden[clip_index, -1:], completion_hidden[:, :-1]], dim=1)  # (N, C, D)
        logits = self.model.lm_head(hidden).float()                                            # (N, C, V)
        return logits.gather(-1, completion_ids[..., None])[..., 0] - logits.logsumexp(dim=-1)   # (N, C)


class TextPolicy:
    """The minimal Policy a text-only causal LM needs for ``train_grpo`` (questions only, no media)."""

    family = "qwen2_text"

    def __init__(self, model: Qwen2ForCausalLM, tokenizer, earlier_loop: bool = False) -> None:
        self.tokenizer = tokenizer
        self.module: nn.Module = TextScorer(model)
        self._scorer = self.module            # generation uses the bare model, whatever wraps module
        self.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.pad_token_id = tokenizer.pad_token_id
        self.vocabulary = Vocabulary(tokenizer, (self.eos_token_id,), self.pad_token_id)
        self.earlier_loop = earlier_loop      # HF generate, the loop r1omni's replaced (measured against)

    @classmethod
    def load(cls, directory: str | os.PathLike, earlier_loop: bool = False) -> "TextPolicy":
        return cls(Qwen2ForCausalLM.from_pretrained(directory), AutoTokenizer.from_pretrained(directory), earlier_loop)

    @property
    def num_frames(self) -> int:
        return 1

    @property
    def device(self) -> torch.device:
        return next(self._scorer.parameters()).device

    def check_clip(self, clip: ClipInput) -> None:
        """Every question is readable: text only."""

    def prepare(self, clips: list[ClipInput]) -> PreparedBatch:
        prompts = [self.tokenizer.apply_chat_template([{"role": "user", "content": clip.question}], tokenize=False,
                                                      add_generation_prompt=True) for clip in clips]
        tokens = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        return PreparedBatch(tokens["input_ids"], tokens["attention_mask"], {}, prompts)

    def generate(self, batch: PreparedBatch, num_return_sequences: int = 1,
                 sampling: SamplingConfig | None = None) -> Completions:
        if not self.earlier_loop:        # r1omni's loop: prefill once, Qwen2Step (r1omni.models.decoding)
            return decoding.generate(self, self._scorer, batch.to(self.device), num_return_sequences, sampling,
                                     self.vocabulary)
        sampling = sampling or SamplingConfig()
        batch = batch.to(self.device)
        config = GenerationConfig(max_new_tokens=sampling.max_new_tokens, do_sample=sampling.do_sample,
                                  temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                                  eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id)
        with torch.no_grad(), evaluating(self._scorer):
            sequences = self._scorer.model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                                    generation_config=config,
                                                    num_return_sequences=num_return_sequences)    # (N, P+C)
        return decoding.completions(sequences[:, batch.input_ids.shape[1]:], None, num_return_sequences,
                                    self.vocabulary)

    def prefill(self, batch: PreparedBatch) -> Prefill:
        model, mask = self._scorer.model, batch.attention_mask
        cache = DynamicCache(config=model.config)
        out = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    use_cache=True, logits_to_keep=1, **{cache_parameter(type(model).forward): cache})
        return Prefill(out.logits[:, -1], cache, mask, mask.sum(dim=1), batch.input_ids)

    def stepper(self, cache, key_mask: torch.Tensor, next_position: torch.Tensor) -> Step:
        model = self._scorer.model
        return qwen2_stepper(model.model, model.lm_head, cache, key_mask, next_position)

    def encode_completions(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.tokenizer(t, add_special_tokens=False)["input_ids"] + [self.eos_token_id] for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_token_id] * (length - len(r)) for r in rows])
        return ids, (ids != self.pad_token_id).long()

    def token_logprobs(self, batch: PreparedBatch, completion_ids: torch.Tensor,
                       clip_index: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device)
        return self.module(batch.input_ids, batch.attention_mask, completion_ids.to(self.device),
                           clip_index.to(self.device))                                           # (N, C)

    def parts(self) -> dict[str, list[nn.Module]]:
        return {"llm": [self._scorer.model]}

    def save(self, directory: str | os.PathLike, card=None) -> None:
        """A plain transformers folder (the benchmark's text model has no r1omni card: ``card`` is unused)."""
        with atomic_dir(directory) as tmp:
            self._scorer.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)


class TextLoader(ClipLoader):
    """Stands in for ``r1omni.clips.ClipLoader``: the manifest row's question, no media."""

    def load_many(self, samples: list[Sample]) -> LoadedClips:
        return LoadedClips([ClipInput(question=s.meta["question"]) for s in samples], list(samples), {},
                           dict.fromkeys((s.id for s in samples), 0.0), {s.id: {} for s in samples})


# -- the loop r1omni's decoding replaced (measured against, nowhere else) -----------------------------
def earlier_generate(policy, batch: PreparedBatch, num_return_sequences: int = 1,
                     sampling: SamplingConfig | None = None) -> Completions:
    """``policy.generate`` as r1omni decoded before ``r1omni.models.decoding``: the family's prefill, then
    the cache repeated G times into a growing ``DynamicCache`` (every step copies it), every step
    through the model's own forward, transformers' logits warpers and a multinomial over the whole
    vocabulary. Greedy tokens equal today's loop; sampled ones follow the same distribution."""
    sampling = sampling or SamplingConfig()
    vocabulary, group = policy.vocabulary, num_return_sequences
    with torch.no_grad(), evaluating(policy.module):
        start = policy.prefill(batch.to(policy.device))
        start.cache.batch_repeat_interleave(group)
        key_mask = F.pad(start.key_mask.repeat_interleave(group, dim=0), (0, sampling.max_new_tokens), value=1)
        step = policy.stepper(start.cache, key_mask, start.next_position.repeat_interleave(group), lean=False)
        ids = earlier_loop(start.first_logits.repeat_interleave(group, dim=0), step, sampling, vocabulary,
                           start.history.repeat_interleave(group, dim=0))                        # (N, C')
    return decoding.completions(ids, None, group, vocabulary)


def earlier_loop(logits: torch.Tensor, step: Step, sampling: SamplingConfig, vocabulary: Vocabulary,
                 history: torch.Tensor) -> torch.Tensor:
    """New ids (N, C') from the first logits (N, V): warpers, multinomial, pad after each row's stop."""
    warpers = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty)]
                                  if sampling.repetition_penalty != 1.0 else [])
    if sampling.do_sample:
        warpers += [TemperatureLogitsWarper(sampling.temperature)] if sampling.temperature != 1.0 else []
        warpers += [TopKLogitsWarper(sampling.top_k)] if sampling.top_k > 0 else []
        warpers += [TopPLogitsWarper(sampling.top_p)] if sampling.top_p < 1.0 else []
    stop_ids = torch.tensor(vocabulary.stop_ids, device=logits.device)
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)              # (N,)
    generated = []
    for index in range(sampling.max_new_tokens):
        scores = logits.float()                                                              # (N, V)
        if vocabulary.suppressed_ids is not None:
            scores[:, vocabulary.suppressed_ids.to(scores.device)] = float("-inf")
        scores = warpers(history, scores)
        tokens = (torch.multinomial(F.softmax(scores, dim=-1), num_samples=1)[:, 0] if sampling.do_sample
                  else scores.argmax(dim=-1)).masked_fill(done, vocabulary.pad_id)           # (N,)
        generated.append(tokens)
        done = done | torch.isin(tokens, stop_ids)
        if bool(done.all()) or index == sampling.max_new_tokens - 1:
            break
        history = torch.cat([history, tokens[:, None]], dim=1)                               # (N, H + 1)
        logits = step(tokens, index)
    return torch.stack(generated, dim=1)                                                     # (N, C')


# -- shared set-up --------------------------------------------------------------------------------
@dataclass
class Setting:
    steps: int
    warmup: int
    generations: int = 4
    prompts_per_step: int = 4
    max_completion_length: int = 16
    lr: float = 1e-4
    beta: float = 0.04
    seed: int = 0
    earlier_loop: bool = False   # r1omni with the loop it replaced (see earlier_generate), to measure against


class StepClock:
    """Wall-clock and process CPU time once per step (at the same point of each), and each step's completion tokens.

    CPU time (one torch thread) barely moves when other jobs share the machine; wall time does."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.tokens: list[float] = []

    def tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())


@dataclass
class Figures:
    """Rates of the median step after the warm-up, by wall-clock and by CPU time."""

    wall_steps_per_second: float
    wall_tokens_per_second: float
    cpu_steps_per_second: float
    cpu_tokens_per_second: float

    @classmethod
    def of(cls, clock: StepClock, warmup: int) -> "Figures":
        def rates(ends: list[float]) -> tuple[float, float]:
            durations = [end - start for start, end in zip(ends[warmup - 1:-1], ends[warmup:])]
            tokens = clock.tokens[warmup:len(ends)]
            return (1 / statistics.median(durations),
                    statistics.median(count / seconds for count, seconds in zip(tokens, durations)))

        return cls(*rates(clock.wall), *rates(clock.cpu))

    def __str__(self) -> str:
        return (f"wall {self.wall_steps_per_second:6.2f} steps/s {self.wall_tokens_per_second:7.0f} tok/s | "
                f"cpu {self.cpu_steps_per_second:6.2f} steps/s {self.cpu_tokens_per_second:7.0f} tok/s")


def questions() -> list[tuple[str, str]]:
    return [(f"Clip {i}: which emotion does the person show, {LABELS[i % 4]} or not?", LABELS[i % 4])
            for i in range(16)]


def save_text_model(folder: Path, seed: int) -> Path:
    tokenizer = build_bpe_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# -- r1omni ----------------------------------------------------------------------------------------
def run_r1omni_text(model_dir: Path, work: Path, setting: Setting) -> Figures:
    manifest = work / "prompts.jsonl"
    write_samples(manifest, [Sample(id=f"q{i}", corpus="text", video="unused.mp4", label=label,
                                    meta={"question": question}) for i, (question, label) in enumerate(questions())])
    output_dir = Path(tempfile.mkdtemp(dir=work, prefix="r1omni-"))
    config = GRPOConfig(
        model=str(model_dir), data=str(manifest), output_dir=str(output_dir), max_steps=setting.steps,
        num_generations=setting.generations, clips_per_step=setting.prompts_per_step, gradient_accumulation_steps=1,
        beta=setting.beta, seed=setting.seed, rewards={REWARD_NAME: 1.0}, trainable=["llm"],
        sampling=SamplingConfig(max_new_tokens=setting.max_completion_length, do_sample=True, temperature=1.0,
                                top_k=50, top_p=1.0),
        loss=LossConfig(aggregation="grpo", advantage_scale="group", num_iterations=1),
        optim=OptimConfig(lr=setting.lr, schedule="linear", warmup_ratio=0.0, max_grad_norm=1.0), num_threads=1)
    clock = StepClock()
    rows_per_step = setting.prompts_per_step * setting.generations
    train_grpo(config, reward_functions={REWARD_NAME: clocked_reward(clock)},
               policy=TextPolicy.load(model_dir, setting.earlier_loop), loader=TextLoader(num_frames=1))
    clock.tokens = [json.loads(line)["completion_length"] * rows_per_step
                    for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return Figures.of(clock, setting.warmup)


def clocked_reward(clock: StepClock):
    """The toy reward, ticking ``clock`` as r1omni calls it: once per step here (one micro-batch a step),
    right after the step's rollout, so the time between two ticks is one step."""

    def reward(completions, **columns) -> list[float]:
        clock.tick()
        return letter_e(completions, **columns)

    return reward


# -- TRL -------------------------------------------------------------------------------------------
def run_trl(model_dir: Path, work: Path, setting: Setting) -> Figures:
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    class ClockCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.tick()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                clock.tokens.append(logs["completions/mean_length"] * rows_per_step)

    clock = StepClock()
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": question}], "label": label}
                                 for question, label in questions()])
    rows_per_step = setting.prompts_per_step * setting.generations
    args = TRLConfig(
        output_dir=tempfile.mkdtemp(dir=work, prefix="trl-"), max_steps=setting.steps,
        per_device_train_batch_size=rows_per_step, num_generations=setting.generations,
        gradient_accumulation_steps=1, num_iterations=1, max_completion_length=setting.max_completion_length,
        temperature=1.0, top_k=50, top_p=1.0, learning_rate=setting.lr, lr_scheduler_type="linear", warmup_steps=0,
        max_grad_norm=1.0, beta=setting.beta, loss_type="grpo", scale_rewards="group", epsilon=0.2,
        bf16=False, fp16=False, use_cpu=True, use_vllm=False, gradient_checkpointing=False, logging_steps=1,
        report_to="none", save_strategy="no", disable_tqdm=True, seed=setting.seed, dataloader_num_workers=0)
    clock = StepClock()
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[letter_e], args=args, train_dataset=dataset,
                          processing_class=AutoTokenizer.from_pretrained(model_dir), callbacks=[ClockCallback()])
    for printer in (PrinterCallback, ProgressCallback):   # the log dicts it prints every step
        trainer.remove_callback(printer)
    trainer.train()
    return Figures.of(clock, setting.warmup)


# -- part 2: r1omni's time split on an omni preset ---------------------------------------------------------
def omni_time_split(preset: str, work: Path, setting: Setting) -> tuple[dict[str, float], Figures, float]:
    """Median seconds per step in each phase, the step rates, and completion tokens per step."""
    folder = work / "clips"
    folder.mkdir()
    samples = []
    seconds = np.arange(16000) / 16000
    for i in range(8):
        rng = np.random.default_rng(i)
        frames = np.clip(rng.integers(30, 220, 3) + rng.integers(0, 12, (8, 56, 56, 3)), 0, 255).astype(np.uint8)
        wave = (0.3 * np.sin(2 * np.pi * (180 + 40 * i) * seconds)).astype(np.float32)
        video = write_clip(folder / f"clip{i}.mp4", frames, 8, wave)
        samples.append(Sample(id=f"clip{i}", corpus="toy", video=str(video), label=LABELS[i % 4]))
    manifest = folder / "train.jsonl"
    write_samples(manifest, samples, relative_to=folder)
    output_dir = work / "omni"
    config = GRPOConfig(
        model=f"preset:{preset}", data=str(manifest), output_dir=str(output_dir), max_steps=setting.steps,
        num_generations=setting.generations, clips_per_step=setting.prompts_per_step, gradient_accumulation_steps=1,
        beta=setting.beta, seed=setting.seed, rewards={REWARD_NAME: 1.0},
        sampling=SamplingConfig(max_new_tokens=setting.max_completion_length, do_sample=True, top_k=50),
        optim=OptimConfig(lr=setting.lr, schedule="linear", warmup_ratio=0.0), num_threads=1)
    clock = StepClock()
    train_grpo(config, reward_functions={REWARD_NAME: clocked_reward(clock)})
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    rows_per_step = setting.prompts_per_step * setting.generations
    clock.tokens = [row["completion_length"] * rows_per_step for row in rows]
    return ({name: statistics.median(row[f"time/{name}"] for row in rows[setting.warmup:])
             for name in ("rollout", "reference", "policy", "optimizer")},
            Figures.of(clock, setting.warmup), statistics.mean(clock.tokens[setting.warmup:]))


# -- the compute floor, and part 3: the demo's step ----------------------------------------------------------
def compute_floor(policy, clips: list[ClipInput], sampling: SamplingConfig, generations: int,
                  repeats: int = 3) -> tuple[float, int]:
    """Median seconds of one batched forward + backward over the rows and tokens of one rollout of ``clips``
    (no generation loop), and the completion tokens it covered."""
    batch = policy.prepare(clips)
    with torch.no_grad():
        completions = policy.generate(batch, num_return_sequences=generations, sampling=sampling)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        logp = policy.token_logprobs(batch, completions.ids, completions.clip_index)          # (N, C)
        (logp * completions.mask).sum().backward()
        times.append(time.perf_counter() - tick)
        policy.module.zero_grad(set_to_none=True)
    return statistics.median(times), int(completions.mask.sum())


def flop_counter():
    """torch's FlopCounterMode, taught the CPU attention kernels: counts the matrix products (linear layers,
    attention), not elementwise work."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    kernels = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: forward,
               torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}
    return FlopCounterMode(display=False, custom_mapping=kernels)


def matmul_work(policy, clips: list[ClipInput], sampling: SamplingConfig, generations: int) -> dict[str, float]:
    """GFLOP of the matrix products (linear layers, attention) in one step's phases: a rollout of ``clips``, the
    reference's forward over its completions (the policy's shape), the policy's forward + backward. Counted by
    torch's FlopCounterMode, taught the CPU attention kernels; elementwise work is not counted."""
    batch = policy.prepare(clips)
    work = {}
    with flop_counter() as counter:
        completions = policy.generate(batch, num_return_sequences=generations, sampling=sampling)
    work["rollout"] = counter.get_total_flops() / 1e9
    with flop_counter() as counter, torch.no_grad():
        policy.token_logprobs(batch, completions.ids, completions.clip_index)
    work["reference"] = counter.get_total_flops() / 1e9
    with flop_counter() as counter:
        logp = policy.token_logprobs(batch, completions.ids, completions.clip_index)          # (N, C)
        (logp * completions.mask).sum().backward()
    policy.module.zero_grad(set_to_none=True)
    work["policy"] = counter.get_total_flops() / 1e9
    return work


def sgemm_rate(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-product rate now (GFLOP/s, best of ``repeats`` size³ products): the
    fastest any of the step's products could run."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = []
    for _ in range(repeats + 1):
        tick = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - tick)
    return 2 * size ** 3 / min(times[1:]) / 1e9


def demo_step(work: Path, steps: int, warmup: int, loop: str
              ) -> tuple[dict[str, float], float, int, float, dict[str, float]]:
    """The demo's GRPO step (see the module docstring) with ``loop`` ("r1omni", or "earlier":
    :func:`earlier_generate`): median time split, completion tokens per step, the compute floor of the same
    rows and tokens, and the step's matrix-product work."""
    from r1omni.models import load_policy

    manifest = generate_benchmark(work / "bench", preset="tiny", splits=["train"], progress=False)["train"]
    output_dir = work / f"demo-grpo-{loop}"
    sampling = SamplingConfig(max_new_tokens=100, do_sample=True, temperature=0.5, top_k=50, top_p=1.0)
    config = GRPOConfig(
        model="preset:qwen2.5-omni-demo", data=str(manifest), output_dir=str(output_dir), max_steps=steps,
        num_generations=8, clips_per_step=8, gradient_accumulation_steps=1, beta=0.04, seed=0, prompt="train",
        sampling=sampling, trainable=["llm"], optim=OptimConfig(lr=1e-4, schedule="constant", warmup_ratio=0.0),
        num_threads=2, save_every=0)
    policy = open_policy(config.model, seed=config.seed)
    if loop == "earlier":
        policy.generate = partial(earlier_generate, policy)
    train_grpo(config, policy=policy)
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    split = {name: statistics.median(row[f"time/{name}"] for row in rows[warmup:])
             for name in ("rollout", "reference", "policy", "optimizer")}
    tokens = statistics.mean(row["completion_length"] * 64 for row in rows[warmup:])
    policy = load_policy(output_dir / "final")
    set_trainable_llm(policy)
    loader = ClipLoader(num_frames=policy.num_frames, prompt="train")
    clips = loader.load_many(read_samples(manifest)[:8]).clips
    floor, floor_tokens = compute_floor(policy, clips, sampling, generations=8)
    return split, tokens, floor_tokens, floor, matmul_work(policy, clips, sampling, generations=8)


def set_trainable_llm(policy) -> None:
    """Gradients for the LLM only, as the demo's GRPO trains it."""
    set_trainable_parts(policy, ["llm"])
    policy.module.train()


def text_floor(model_dir: Path, setting: Setting) -> float:
    policy = TextPolicy.load(model_dir)
    clips = [ClipInput(question=q) for q, _ in questions()[:setting.prompts_per_step]]
    sampling = SamplingConfig(max_new_tokens=setting.max_completion_length, do_sample=True, temperature=1.0,
                              top_k=50, top_p=1.0)
    return compute_floor(policy, clips, sampling, setting.generations)[0]


def compare_with_trl(model_dir: Path, work: Path, setting: Setting, rounds: int) -> None:
    """Part 1 for one setting: alternating rounds (r1omni, r1omni with the earlier loop, TRL), the best
    of each, the ratios, and the compute floor."""
    print(f"\ntext-only Qwen2 (hidden 64, 2 layers, vocab {len(AutoTokenizer.from_pretrained(model_dir))}); "
          f"{setting.prompts_per_step} prompts x G={setting.generations}, {setting.max_completion_length} new "
          f"tokens max, beta={setting.beta}, loss grpo, fp32, 1 thread, {setting.steps} steps "
          f"({setting.warmup} warm-up)")
    runs = {"r1omni": lambda: run_r1omni_text(model_dir, work, setting),
            "r1omni-ref": lambda: run_r1omni_text(model_dir, work, replace(setting, earlier_loop=True)),
            "trl": lambda: run_trl(model_dir, work, setting)}
    results: dict[str, list[Figures]] = {name: [] for name in runs}
    for round_index in range(rounds):
        for name, run in runs.items():
            result = run()
            results[name].append(result)
            print(f"  round {round_index + 1} {name:10s} {result}")
    best = {name: max(figures, key=lambda f: f.cpu_steps_per_second) for name, figures in results.items()}
    for name, figures in best.items():
        print(f"best {name:10s} {figures}")
    for baseline in ("trl", "r1omni-ref"):
        for clock in ("wall", "cpu"):
            ours, theirs = best["r1omni"], best[baseline]
            steps = getattr(ours, f"{clock}_steps_per_second") / getattr(theirs, f"{clock}_steps_per_second")
            tokens = getattr(ours, f"{clock}_tokens_per_second") / getattr(theirs, f"{clock}_tokens_per_second")
            print(f"r1omni / {baseline} ({clock:4s}): {steps:.2f}x steps/s, {tokens:.2f}x completion tokens/s")
    floor = text_floor(model_dir, setting)
    for name, figures in best.items():
        print(f"compute floor {1000 * floor:.1f} ms (one forward + backward of a rollout's rows); {name} step = "
              f"{1 / figures.wall_steps_per_second / floor:.1f}x the floor (wall)")


# -- part 4: shared-prefix scoring on R1-Omni's shape ---------------------------------------------------------
PREFIX_LLM = dict(hidden=128, layers=4, heads=2, kv_heads=1, intermediate=688, vocab=3712)
"""The part's language model: Qwen2.5-0.5B (R1-Omni's LLM: 896 wide, 24 layers, 14 query / 2 key-value heads
of 64, MLP 5.4x, vocabulary 151,936) scaled down to run on one CPU thread: 128 wide, 4 layers, 2 / 1 heads of
64, MLP 5.4x, and a vocabulary that keeps the head's share of the parameters (0.38 of the layers')."""

R1_OMNI_PROMPT_TOKENS = 8 * (224 // 16 // 2) ** 2 + 1500 // 3
"""R1-Omni-0.5B's media tokens per clip: 8 frames x 7x7 video tokens + 500 Whisper tokens (892; ~960 with the
question). The issue sizes a clip at P = 2,000 against R = 200 completion tokens; both give P / R ~ 5-10."""


def prefix_policy(family: str, seed: int):
    """A random policy of ``family`` ("humanomni" or "qwen2.5-omni") with :data:`PREFIX_LLM` as its LLM and
    prompts of ~550-600 tokens: HumanOmni's tiny towers (8 frames x 4 video tokens + 500 Whisper tokens),
    or a Qwen2.5-Omni thinker fed 8 frames of 112x112 (64 video tokens) and 20 s of audio (500 tokens)."""
    llm = PREFIX_LLM
    if family == "humanomni":
        tokenizer, bert_tokenizer = build_tokenizers()
        config = tiny_config(vocab_size=llm["vocab"], bert_vocab_size=len(bert_tokenizer),
                             bos_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
        config.hidden_size, config.num_hidden_layers = llm["hidden"], llm["layers"]
        config.num_attention_heads, config.num_key_value_heads = llm["heads"], llm["kv_heads"]
        config.intermediate_size, config.max_window_layers = llm["intermediate"], llm["layers"]
        config.head_dim = llm["hidden"] // llm["heads"]
        config.layer_types = ["full_attention"] * llm["layers"]
        return build_policy(config, tokenizer, bert_tokenizer, seed)
    return QWEN_PRESETS["qwen2.5-omni-tiny"](
        seed=seed, text_hidden_size=llm["hidden"], text_layers=llm["layers"], text_heads=llm["heads"],
        text_kv_heads=llm["kv_heads"], text_intermediate_size=llm["intermediate"], model_vocab_size=llm["vocab"],
        num_frames=8, frame_size=112)


def prefix_rollout(policy, generations: int, ratio: float, seed: int = 0):
    """One clip (as R1-Omni trains: one clip x G per device), its prepared batch, G random completions of
    prompt length / ``ratio`` tokens, the rows' clip index, the prompt length and random advantages."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (8, 112, 112, 3), dtype=np.uint8)
    audio_seconds = 1 if policy.family == "humanomni" else 20       # HumanOmni pads every clip to 30 s
    wave = (0.1 * rng.standard_normal(16000 * audio_seconds)).astype(np.float32)
    batch = policy.prepare([ClipInput(PROMPTS["train"], frames, wave)])
    if policy.family == "humanomni":
        with torch.no_grad():
            merged = policy.model.prepare_multimodal_inputs(batch.input_ids, batch.attention_mask, **batch.media)
        prompt_len = int(merged.attention_mask.sum())
    else:
        prompt_len = int(batch.attention_mask.sum())
    completion_len = max(round(prompt_len / ratio), 1)
    suppressed = set() if policy.vocabulary.suppressed_ids is None else set(policy.vocabulary.suppressed_ids.tolist())
    allowed = torch.tensor([i for i in range(len(policy.tokenizer)) if i not in suppressed])
    generator = torch.Generator().manual_seed(seed)
    ids = allowed[torch.randint(len(allowed), (generations, completion_len), generator=generator)]  # (G, R)
    advantages = torch.randn(generations, generator=generator)                                       # (G,)
    return batch, ids, torch.ones_like(ids, dtype=torch.float32), torch.zeros(generations, dtype=torch.long), \
        prompt_len, advantages


def scoring_step(policy, reference, optimizer, rollout, beta: float = 0.04) -> None:
    """The part of a GRPO step that scores (what sharing changes): the reference's forward, the policy's
    forward + backward of the GRPO loss, the optimiser update. The rollout itself already prefills each
    prompt once in both settings (``r1omni.models.decoding``), so it is left out."""
    batch, ids, mask, clip_index, _, advantages = rollout
    with torch.no_grad():
        ref_logp = reference.token_logprobs(batch, ids, clip_index)                     # (N, C)
    logp = policy.token_logprobs(batch, ids, clip_index)                                # (N, C)
    policy_loss(logp, advantages, mask, ref_logp=ref_logp, beta=beta).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


class PeakMemory:
    """Peak resident memory of the process above its level at ``start()`` (Linux: VmHWM, reset through
    /proc/self/clear_refs). glibc is told to map every allocation of 128 KiB or more on its own
    (``mallopt(M_MMAP_THRESHOLD)``), so a freed tensor leaves the resident set at once and what the peak
    measures is what the step held at its fullest, not what earlier steps left in the heap."""

    def __init__(self) -> None:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)   # M_MMAP_THRESHOLD; also stops its dynamic growth

    @staticmethod
    def _status_mib(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"/proc/self/status has no {key}")

    def start(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")
        self.base = self._status_mib("VmRSS")

    def peak_mib(self) -> float:
        return self._status_mib("VmHWM") - self.base


def prefix_family(family: str, generations: int, ratio: float, rounds: int) -> dict[tuple[bool, bool], dict]:
    """Part 4 for one family: the scoring step with sharing on / off and activation checkpointing on / off,
    rounds taken in turn (so load on the machine hits every setting alike); per setting the median CPU and
    wall seconds, the GFLOP of one step and its peak memory."""
    policy, reference = prefix_policy(family, 0), prefix_policy(family, 1)
    set_trainable_parts(policy, ["llm"])
    policy.module.train()
    reference.module.requires_grad_(False)
    model = policy.model if family == "humanomni" else policy.thinker
    optimizer = torch.optim.AdamW([p for p in policy.module.parameters() if p.requires_grad], lr=1e-5)
    rollout = prefix_rollout(policy, generations, ratio)
    settings = [(share, checkpoint) for checkpoint in (False, True) for share in (False, True)]
    memory = PeakMemory()
    results: dict[tuple[bool, bool], dict] = {s: {"cpu": [], "wall": []} for s in settings}

    def configure(share: bool, checkpoint: bool) -> None:
        policy.share_prompts = reference.share_prompts = share
        if checkpoint:
            model.activation_checkpointing_enable()
        else:
            model.activation_checkpointing_disable()

    for share, checkpoint in settings:          # warm-up (optimiser state), FLOPs, peak memory
        configure(share, checkpoint)
        scoring_step(policy, reference, optimizer, rollout)
        with flop_counter() as counter:
            scoring_step(policy, reference, optimizer, rollout)
        results[share, checkpoint]["gflop"] = counter.get_total_flops() / 1e9
        memory.start()
        scoring_step(policy, reference, optimizer, rollout)
        results[share, checkpoint]["peak_mib"] = memory.peak_mib()
    for _ in range(rounds):
        for share, checkpoint in settings:
            configure(share, checkpoint)
            wall, cpu = time.perf_counter(), time.process_time()
            scoring_step(policy, reference, optimizer, rollout)
            results[share, checkpoint]["wall"].append(time.perf_counter() - wall)
            results[share, checkpoint]["cpu"].append(time.process_time() - cpu)
    configure(True, False)
    for figures in results.values():
        figures["cpu"], figures["wall"] = statistics.median(figures["cpu"]), statistics.median(figures["wall"])
    prompt_len, completion_len = rollout[4], rollout[1].shape[1]
    results["shape"] = {"prompt": prompt_len, "completion": completion_len}
    return results


def report_prefix(generations: int, ratio: float, rounds: int) -> None:
    G = generations
    print(f"\nshared-prefix scoring (share_prompts), one clip x G={G}, R1-Omni's prompt:completion ratio ~{ratio:g}:1 "
          f"(R1-Omni-0.5B: {R1_OMNI_PROMPT_TOKENS} media tokens per clip); LLM {PREFIX_LLM['hidden']} x "
          f"{PREFIX_LLM['layers']} layers (Qwen2.5-0.5B scaled down), vocabulary {PREFIX_LLM['vocab']}, fp32, "
          f"1 thread; step = reference forward + policy forward/backward (GRPO loss, beta 0.04) + AdamW; "
          f"median of {rounds} rounds; peak = resident memory above the step's start")
    for family, name in (("humanomni", "HumanOmni (R1-Omni)"), ("qwen2.5-omni", "Qwen2.5-Omni thinker")):
        results = prefix_family(family, generations, ratio, rounds)
        shape = results.pop("shape")
        P, R = shape["prompt"], shape["completion"]
        print(f"  {name}: P = {P} prompt tokens, R = {R} completion tokens; token work of the shared passes "
              f"(P + G*R) / (G*(P + R)) = {(P + G * R) / (G * (P + R)):.3f}")
        for (share, checkpoint), f in results.items():
            print(f"    share_prompts={str(share):5s} checkpointing={str(checkpoint):5s}  {f['cpu']:6.3f} s CPU "
                  f"{f['wall']:6.3f} s wall  {f['gflop']:7.2f} GFLOP  peak {f['peak_mib']:7.1f} MiB")
        for checkpoint in (False, True):
            off, on = results[False, checkpoint], results[True, checkpoint]
            print(f"    checkpointing={str(checkpoint):5s}: sharing {off['cpu'] / on['cpu']:.2f}x faster (CPU), "
                  f"{off['wall'] / on['wall']:.2f}x (wall), {off['gflop'] / on['gflop']:.2f}x fewer GFLOP, "
                  f"peak {on['peak_mib'] / off['peak_mib']:.2f}x")
        plain = results[False, False]["cpu"] / results[True, False]["cpu"]
        kept = results[False, True]["cpu"] / results[True, True]["cpu"]
        excess = f", {100 * (kept - 1) / (plain - 1):.0f}% of its excess over 1x" if plain > 1 else ""
        print(f"    under checkpointing sharing keeps {100 * kept / plain:.0f}% of the plain sharing's speed-up "
              f"({kept:.2f}x against {plain:.2f}x, CPU{excess})")


def report_time_split(args: argparse.Namespace, work: Path) -> None:
    """Part 2, printed."""
    omni = Setting(steps=args.omni_steps, warmup=args.warmup, prompts_per_step=2, max_completion_length=32)
    split, rates, tokens_per_step = omni_time_split(args.omni_preset, work, omni)
    step_seconds = sum(split.values())
    print(f"\nr1omni on {args.omni_preset} (4 frames 56x56 + 1 s audio per clip; {omni.prompts_per_step} clips x "
          f"G={omni.generations}, {omni.max_completion_length} new tokens max, beta={omni.beta}, "
          f"{omni.steps} steps): {tokens_per_step:.0f} completion tokens/step")
    print(f"  {rates}")
    for name, seconds in split.items():
        print(f"  {name:9s} {1000 * seconds:7.1f} ms/step (median)  {100 * seconds / step_seconds:5.1f}%")


def report_demo(args: argparse.Namespace, work: Path) -> None:
    """Part 3, printed."""
    print(f"\nthe demo's GRPO step (qwen2.5-omni-demo, random init, 8 clips x G=8, 100 new tokens, T 0.5, "
          f"2 threads, {args.demo_steps} steps), by decoding loop:")
    step_seconds = {}
    for loop in ("earlier", "r1omni"):
        split, tokens_per_step, floor_tokens, floor, gflop = demo_step(work, args.demo_steps,
                                                                       min(args.warmup, 2), loop)
        step_seconds[loop] = sum(split.values())
        print(f"  {loop}: {tokens_per_step:.0f} completion tokens/step, {step_seconds[loop]:.2f} s/step "
              f"(median phases)")
        for name, seconds in split.items():
            print(f"    {name:9s} {1000 * seconds:7.1f} ms/step (median)  "
                  f"{100 * seconds / step_seconds[loop]:5.1f}%")
        print(f"    compute floor {1000 * floor:.1f} ms (forward + backward of {floor_tokens} completion tokens, "
              f"no generation loop); step = {step_seconds[loop] / floor:.1f}x the floor")
    print(f"  r1omni / earlier: {step_seconds['earlier'] / step_seconds['r1omni']:.2f}x faster step")
    rate = sgemm_rate()
    bound = sum(gflop.values()) / rate
    print(f"  matrix-product work of a step: {sum(gflop.values()):.1f} GFLOP ("
          + ", ".join(f"{name} {value:.1f}" for name, value in gflop.items())
          + f"); at this machine's float32 product rate measured now ({rate:.0f} GFLOP/s, 2048^3) that is "
          f"{bound:.2f} s: the r1omni step is {step_seconds['r1omni'] / bound:.1f}x it, and 3x the earlier step "
          f"({step_seconds['earlier'] / 3:.2f} s) would be {step_seconds['earlier'] / 3 / bound:.1f}x it")


PARTS = ("trl", "omni", "demo", "prefix")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="GRPO steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the rates")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating r1omni (its loop, the earlier loop) / TRL rounds (best is kept)")
    parser.add_argument("--omni-preset", default="qwen2.5-omni-tiny", help="preset for the time split")
    parser.add_argument("--omni-steps", type=int, default=20)
    parser.add_argument("--demo-steps", type=int, default=6, help="GRPO steps of the demo preset (part 3)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which parts to run (default all): trl (1), omni (2), demo (3), prefix (4)")
    parser.add_argument("--prefix-ratio", type=float, default=10.0,
                        help="part 4's prompt : completion token ratio (R1-Omni's shape)")
    parser.add_argument("--prefix-rounds", type=int, default=3, help="part 4's timed rounds (median kept)")
    args = parser.parse_args()
    if not 1 <= args.warmup < args.steps:
        parser.error("need 1 <= --warmup < --steps")
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    settings = [Setting(steps=args.steps, warmup=args.warmup),
                Setting(steps=args.steps, warmup=args.warmup, generations=8, max_completion_length=128)]

    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        work = Path(tmp)
        if "trl" in args.parts:
            model_dir = save_text_model(work / "tiny-qwen2", settings[0].seed)
            for setting in settings:
                compare_with_trl(model_dir, work, setting, args.rounds)
        if "omni" in args.parts:
            report_time_split(args, work)
        if "demo" in args.parts:
            report_demo(args, work)
    if "prefix" in args.parts:     # last: it changes how glibc maps memory (PeakMemory)
        report_prefix(8, args.prefix_ratio, args.prefix_rounds)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
