"""Peak memory of Qwen-Omni scoring at the real vocabulary: the whole-vocabulary computation against the chunked
one r1omni scores with (:mod:`r1omni.models.logprobs`), in the same run (issue #30).

Scoring asks the log-probability of each of N x C completion tokens. Computed whole, the thinker's LM head
makes (N, C, V) logits in the model's dtype, softmax takes a float32 copy, and autograd keeps both for the
backward pass; chunked, the head runs one row at a time in float32 and each row is recomputed in the
backward. Here a random Qwen2.5-Omni thinker (the LLM of ``benchmarks/grpo_step.py``'s part 4: Qwen2.5-0.5B
scaled down to 128 wide x 4 layers, so that the head dominates as it does at V = 152,064 in the real model)
in bfloat16 scores one clip's G completions of C tokens (default: the paper's G = 8, C = 512):

* **whole**: the thinker's logits (``return_logits=True``), then float32, gather and logsumexp over all of
  them: what ``SharedMediaThinker.forward`` computed before;
* **chunked**: ``policy.token_logprobs``, as training and evaluation call it now.

Each is measured with gradients (the policy's forward + backward of a GRPO-like loss) and without (the
reference's forward), taking turns over ``--rounds``; per setting the largest peak resident memory above the
level before it (:class:`grpo_step.PeakMemory`), the median seconds, and whether the two agree (max |diff| of
the log-probabilities and of the LM head's gradient). On a GPU (``--device cuda``) the peak is
``torch.cuda.max_memory_allocated`` above the allocated level before the call.

    python benchmarks/scoring_memory.py [--generations 8] [--tokens 512] [--vocab 152064] [--rounds 3]
                                        [--device cpu] [--dtype bfloat16]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpo_step import PREFIX_LLM, PeakMemory  # noqa: E402

from r1omni.environment import describe_environment  # noqa: E402
from r1omni.models import ClipInput  # noqa: E402
from r1omni.models.placement import dtype_named  # noqa: E402
from r1omni.models.qwen_omni.presets import PRESETS as QWEN_PRESETS  # noqa: E402
from r1omni.template import PROMPTS  # noqa: E402

torch.set_num_threads(1)


def whole_vocabulary(policy, batch, ids, clip_index) -> torch.Tensor:
    """The computation before: every logit at once, then a float32 copy of them all."""
    logits = policy.module(batch.input_ids, batch.attention_mask, ids, clip_index, batch.media,
                           return_logits=True).float()                                            # (N, C, V)
    return logits.gather(-1, ids[..., None])[..., 0] - logits.logsumexp(dim=-1)                   # (N, C)


def chunked(policy, batch, ids, clip_index) -> torch.Tensor:
    return policy.token_logprobs(batch, ids, clip_index)                                          # (N, C)


class GpuPeak:
    def start(self) -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self.base = torch.cuda.memory_allocated()

    def peak_mib(self) -> float:
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - self.base) / 2**20


def build(args: argparse.Namespace):
    """The thinker, one prepared clip, G random completions of C tokens, their clip index and advantages."""
    llm = PREFIX_LLM
    policy = QWEN_PRESETS["qwen2.5-omni-tiny"](
        seed=0, text_hidden_size=llm["hidden"], text_layers=llm["layers"], text_heads=llm["heads"],
        text_kv_heads=llm["kv_heads"], text_intermediate_size=llm["intermediate"], model_vocab_size=args.vocab,
        num_frames=4, frame_size=56)
    policy.module.to(device=args.device, dtype=dtype_named(args.dtype))
    policy.module.requires_grad_(False)
    policy.thinker.lm_head.weight.requires_grad_(True)   # the head is what differs; its gradient is compared
    rng = np.random.default_rng(0)
    clip = ClipInput(PROMPTS["train"], rng.integers(0, 256, (4, 56, 56, 3), dtype=np.uint8),
                     (0.1 * rng.standard_normal(16000)).astype(np.float32))
    batch = policy.prepare([clip]).to(args.device)
    suppressed = set(policy.suppressed_token_ids.tolist())
    allowed = torch.tensor([i for i in range(len(policy.tokenizer)) if i not in suppressed])
    generator = torch.Generator().manual_seed(0)
    ids = allowed[torch.randint(len(allowed), (args.generations, args.tokens), generator=generator)].to(args.device)
    advantages = torch.randn(args.generations, 1, generator=generator).to(args.device)
    return policy, batch, ids, torch.zeros(args.generations, dtype=torch.long, device=args.device), advantages


def measure(score, grad: bool, setup, memory) -> tuple[float, float, torch.Tensor, torch.Tensor | None]:
    """One call: (peak MiB, seconds, log-probabilities, the head's gradient or None)."""
    policy, batch, ids, clip_index, advantages = setup
    head = policy.thinker.lm_head.weight
    head.grad = None
    memory.start()
    start = time.perf_counter()
    with torch.set_grad_enabled(grad):
        logp = score(policy, batch, ids, clip_index)
        if grad:
            (logp * advantages).mean().backward()
    seconds = time.perf_counter() - start
    peak = memory.peak_mib()
    return peak, seconds, logp.detach(), None if head.grad is None else head.grad.detach().clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=8, help="completions scored at once (G)")
    parser.add_argument("--tokens", type=int, default=512, help="completion length (C)")
    parser.add_argument("--vocab", type=int, default=152064, help="vocabulary (Qwen2.5-Omni's thinker: 152,064)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per setting, taken in turn")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    setup = build(args)
    memory = GpuPeak() if args.device.startswith("cuda") else PeakMemory()
    ways = {"whole": whole_vocabulary, "chunked": chunked}
    found: dict[tuple[str, bool], dict] = {(w, g): {"peak": [], "seconds": []} for w in ways for g in (True, False)}
    outputs: dict[tuple[str, bool], tuple] = {}
    for _ in range(args.rounds):
        for (way, grad), figures in found.items():
            peak, seconds, logp, grad_out = measure(ways[way], grad, setup, memory)
            figures["peak"].append(peak)
            figures["seconds"].append(seconds)
            outputs[way, grad] = (logp, grad_out)
    n, c, v = args.generations, args.tokens, args.vocab
    whole_mib = n * c * v * torch.finfo(dtype_named(args.dtype)).bits / 8 / 2**20
    print(f"Qwen2.5-Omni thinker scoring, G = {n} completions x C = {c} tokens, vocabulary {v}, {args.dtype} on "
          f"{args.device}, LLM {PREFIX_LLM['hidden']} x {PREFIX_LLM['layers']} layers; the (N, C, V) logits alone are "
          f"{whole_mib:.0f} MiB, their float32 copy {n * c * v * 4 / 2**20:.0f} MiB; peak above the level before, "
          f"largest of {args.rounds} rounds; seconds: median")
    for grad in (True, False):
        what = "forward + backward (policy)" if grad else "forward, no grad (reference)"
        rows = {way: found[way, grad] for way in ways}
        for way, figures in rows.items():
            seconds = statistics.median(figures["seconds"])
            print(f"  {what:30s} {way:8s} peak {max(figures['peak']):8.1f} MiB  {seconds:7.2f} s")
        whole, chunk = rows["whole"], rows["chunked"]
        print(f"  {what:30s} chunked / whole: peak {max(chunk['peak']) / max(whole['peak']):.3f}x, time "
              f"{statistics.median(chunk['seconds']) / statistics.median(whole['seconds']):.2f}x")
        logp_diff = (outputs["whole", grad][0] - outputs["chunked", grad][0]).abs().max().item()
        line = f"  {what:30s} max |log-prob difference| {logp_diff:.2e}"
        if grad:
            head_diff = (outputs["whole", True][1].float() - outputs["chunked", True][1].float()).abs().max().item()
            line += f", max |LM-head gradient difference| {head_diff:.2e}"
        print(line)
    environment = describe_environment()
    print("environment: " + json.dumps({k: environment.get(k) for k in ("torch", "cpu_model", "isa", "torch_threads")
                                        if k in environment}))


if __name__ == "__main__":
    main()
