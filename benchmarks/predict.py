"""Inference speed: clips/s of ``predict_files`` and where the time goes; on a GPU, decoding against
the memory-bandwidth limit.

**Section 1 (any machine).** Generates ``--clips`` clips of the embedded benchmark, builds a preset
with random weights and runs the inference pipeline batch by batch, timing each stage:

* decode: media files -> frames and waveform (``ClipLoader.load``, PyAV);
* pre-process: frames / waveform / question -> model tensors (``policy.prepare``);
* encode: the vision and audio towers and the splicing of their tokens into the prompt, timed by
  calling the policy module's own media encoding (``embed_prompts`` of the Qwen-Omni thinker,
  ``prepare_multimodal_inputs`` of HumanOmni) on the same batch;
* generate: ``policy.generate``, which encodes the media again itself; "prefill + decode" is
  generate minus encode.

It prints each stage in ms per clip and its share, clips/s of that loop, and clips/s of
``predict_files`` over the same files as a cross-check. Random weights never produce the
end-of-turn token, so every clip generates exactly ``--max-new-tokens`` tokens.

**Section 2 (CUDA only, or ``--bandwidth-device``).** A HumanOmni-family preset (default
``r1-omni-0.5b``: R1-Omni-0.5B dimensions, random weights) in bf16 decodes greedily with the end of
turn held off (``min_new_tokens``), at ``--bandwidth-batch-sizes``. A decode step's time is the
difference between two generation lengths divided by the extra tokens (prefill and media encoding
cancel). Each step must read every weight of the language model (decoder layers, final norm, the
tied output embedding: the towers are not read while decoding) plus the KV cache, so

    bound on steps/s = memory bandwidth / (weight bytes + KV-cache bytes per step)

The bandwidth is measured with a device-to-device copy, and the GPU's nominal figure is shown where
its name is known. The section is skipped with a message when there is no CUDA device or the preset
does not exist.

    python benchmarks/predict.py [--preset qwen2.5-omni-tiny] [--clips 16] [--batch-size 4]
        [--max-new-tokens 32] [--threads 1] [--skip-bandwidth]
        [--bandwidth-preset r1-omni-0.5b] [--bandwidth-device cuda] [--bandwidth-dtype bfloat16]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from r1omni.clips import ClipLoader
from r1omni.inference import predict_files, sample_for_path
from r1omni.media import write_clip
from r1omni.models import PreparedBatch, SamplingConfig, init_preset, list_presets
from r1omni.schema import read_samples
from r1omni.synth import generate_benchmark, get_preset

# Nominal memory bandwidth (bytes/s) by a fragment of torch.cuda.get_device_name().
NOMINAL_BANDWIDTH = {
    "H200": 4.8e12, "H100 80GB HBM3": 3.35e12, "H100 SXM": 3.35e12, "H100 NVL": 3.9e12, "H100 PCIe": 2.0e12,
    "A100-SXM4-80GB": 2.039e12, "A100 80GB PCIe": 1.935e12, "A100-SXM4-40GB": 1.555e12, "A100-PCIE-40GB": 1.555e12,
    "L40S": 0.864e12, "L4": 0.3e12, "A10G": 0.6e12, "RTX 4090": 1.008e12,
}


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def media_encoder(policy) -> Callable[[PreparedBatch], object] | None:
    """The policy module's own media encoding for a prepared batch, where the family exposes one."""
    module = policy.module
    if hasattr(module, "embed_prompts"):                      # Qwen-Omni: SharedMediaThinker
        return lambda batch: module.embed_prompts(batch.input_ids, batch.attention_mask, batch.media)
    model = getattr(policy, "model", None)
    if model is not None and hasattr(model, "prepare_multimodal_inputs"):   # HumanOmni
        return lambda batch: model.prepare_multimodal_inputs(batch.input_ids, batch.attention_mask, **batch.media)
    return None


def policy_device(policy) -> torch.device:
    return next(policy.module.parameters()).device


# ------------------------------------------------------------------------------------ section 1
def time_stages(policy, paths: list[str], batch_size: int, sampling: SamplingConfig) -> dict[str, float]:
    """Seconds per stage over all clips."""
    loader = ClipLoader(num_frames=policy.num_frames)
    encode = media_encoder(policy)
    device = policy_device(policy)
    totals = {"decode": 0.0, "pre-process": 0.0, "encode": 0.0, "generate": 0.0}
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        tick = time.perf_counter()
        clips = [loader.load(sample_for_path(p)) for p in chunk]
        totals["decode"] += time.perf_counter() - tick
        tick = time.perf_counter()
        batch = policy.prepare(clips)
        totals["pre-process"] += time.perf_counter() - tick
        if encode is not None:
            on_device = batch.to(device)
            sync(device)
            tick = time.perf_counter()
            with torch.no_grad():
                encode(on_device)
            sync(device)
            totals["encode"] += time.perf_counter() - tick
        tick = time.perf_counter()
        policy.generate(batch, sampling=sampling)
        sync(device)
        totals["generate"] += time.perf_counter() - tick
    return totals


def pipeline_section(args, tmp: Path) -> None:
    config = dataclasses.replace(get_preset("tiny"), split_sizes={"test_id": args.clips})
    manifest = generate_benchmark(tmp / "synth", preset=config, seed=0, splits=["test_id"], progress=False)["test_id"]
    paths = [s.video for s in read_samples(manifest)]
    policy = init_preset(args.preset, seed=0)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    print(f"== pipeline: preset {args.preset} ({sum(p.numel() for p in policy.module.parameters()) / 1e6:.2f} M "
          f"parameters), cpu, {torch.get_num_threads()} thread(s), {len(paths)} clips, batch {args.batch_size}, "
          f"{policy.num_frames} frames, {args.max_new_tokens} new tokens per clip")
    time_stages(policy, paths[:args.batch_size], args.batch_size, sampling)   # warm-up
    totals = time_stages(policy, paths, args.batch_size, sampling)
    encoded = media_encoder(policy) is not None
    stages = {"decode": totals["decode"], "pre-process": totals["pre-process"]}
    if encoded:
        stages["encode"] = totals["encode"]
        stages["prefill + decode"] = max(totals["generate"] - totals["encode"], 0.0)
    else:
        stages["generate (encode inside)"] = totals["generate"]
    pipeline = totals["decode"] + totals["pre-process"] + totals["generate"]
    for name, seconds in stages.items():
        print(f"  {name:18s} {1000 * seconds / len(paths):8.2f} ms/clip  {100 * seconds / pipeline:5.1f} %")
    if not encoded:
        print("  (this family exposes no separate media encoding: encode is inside generate)")
    print(f"  pipeline: {len(paths) / pipeline:.2f} clips/s (the encode call is extra work, not counted)")
    tick = time.perf_counter()
    records = list(predict_files(policy, paths, batch_size=args.batch_size, sampling=sampling))
    wall = time.perf_counter() - tick
    failed = sum(r.error is not None for r in records)
    print(f"  predict_files: {len(paths) / wall:.2f} clips/s ({failed} failed)")


# ------------------------------------------------------------------------------------ section 2
def human_bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def measured_bandwidth(device: torch.device, megabytes: int = 1024, repeats: int = 5) -> float:
    """Bytes/s of a device-to-device copy (each byte read once and written once)."""
    count = megabytes * 2 ** 20 // 2
    source = torch.empty(count, dtype=torch.bfloat16, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        tick = time.perf_counter()
        target.copy_(source)
        sync(device)
        best = min(best, time.perf_counter() - tick)
    return 2 * source.numel() * source.element_size() / best


def nominal_bandwidth(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for fragment, value in NOMINAL_BANDWIDTH.items():
        if fragment in name:
            return name, value
    return name, None


def llm_weight_bytes(model) -> int:
    """Bytes of the weights one decoding step reads: decoder layers, final norm, output projection."""
    tensors = [*model.model.layers.parameters(), *model.model.norm.parameters(), model.lm_head.weight]
    return sum(t.numel() * t.element_size() for t in tensors)


def kv_bytes_per_position(model) -> int:
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = next(model.model.layers.parameters()).element_size()
    return config.num_hidden_layers * 2 * config.num_key_value_heads * head_dim * element


def bandwidth_section(args, tmp: Path) -> None:
    device = torch.device(args.bandwidth_device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("== bandwidth: skipped (no CUDA device; pass --bandwidth-device cpu to run it here anyway)")
        return
    if args.bandwidth_preset not in list_presets():
        print(f"== bandwidth: skipped (preset {args.bandwidth_preset!r} does not exist; known: "
              f"{', '.join(sorted(list_presets()))})")
        return
    dtype = getattr(torch, args.bandwidth_dtype)
    tick = time.perf_counter()
    policy = init_preset(args.bandwidth_preset, seed=0)
    model = getattr(policy, "model", None)
    if model is None or not hasattr(model, "prepare_multimodal_inputs"):
        print(f"== bandwidth: skipped (preset {args.bandwidth_preset!r} is not a HumanOmni-family model; the "
              "section drives transformers' generate with min_new_tokens, which only that family exposes)")
        return
    policy.module.to(device=device, dtype=dtype)
    print(f"== bandwidth: preset {args.bandwidth_preset} ({sum(p.numel() for p in model.parameters()) / 1e9:.3f} B "
          f"parameters, built in {time.perf_counter() - tick:.0f} s) in {args.bandwidth_dtype} on {device}")
    frames = np.random.default_rng(0).integers(0, 256, (48, 224, 224, 3), dtype=np.uint8)
    waveform = (0.3 * np.sin(2 * np.pi * 200 * np.arange(32000) / 16000)).astype(np.float32)
    clip_path = write_clip(tmp / "bandwidth.mp4", frames, 24, waveform)
    clip = ClipLoader(num_frames=policy.num_frames).load(sample_for_path(str(clip_path)))
    from transformers import GenerationConfig

    weight_bytes = llm_weight_bytes(model)
    kv_per_position = kv_bytes_per_position(model)
    name, nominal = nominal_bandwidth(device)
    measured = measured_bandwidth(device)
    print(f"  device {name}: copy bandwidth {measured / 1e9:.0f} GB/s"
          + (f", nominal {nominal / 1e9:.0f} GB/s" if nominal else ", nominal unknown"))
    print(f"  weights read per decoding step: {human_bytes(weight_bytes)}; KV cache {human_bytes(kv_per_position)} "
          f"per position and row")
    short, long = args.bandwidth_tokens
    for batch_size in args.bandwidth_batch_sizes:
        batch = policy.prepare([clip] * batch_size).to(device)
        eos = policy.stop_token_ids
        pad = policy.tokenizer.pad_token_id

        def run(tokens: int) -> tuple[float, int]:
            settings = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                        eos_token_id=eos, pad_token_id=pad, use_cache=True)
            sync(device)
            tick = time.perf_counter()
            with torch.no_grad():
                merged = model.prepare_multimodal_inputs(batch.input_ids, batch.attention_mask, **batch.media)
                ids = model.generate(inputs_embeds=merged.inputs_embeds, attention_mask=merged.attention_mask,
                                     generation_config=settings)
            sync(device)
            if ids.shape[1] != tokens:
                raise RuntimeError(f"generation stopped after {ids.shape[1]} of {tokens} tokens; the step time "
                                   "would be wrong")
            return time.perf_counter() - tick, int(merged.inputs_embeds.shape[1])

        run(short)  # warm-up
        times = {tokens: min(run(tokens)[0] for _ in range(args.repeats)) for tokens in (short, long)}
        prompt_len = run(short)[1]
        step = (times[long] - times[short]) / (long - short)
        mean_context = prompt_len + (short + long) / 2
        bytes_per_step = weight_bytes + batch_size * mean_context * kv_per_position
        bound_steps = measured / bytes_per_step
        line = (f"  batch {batch_size:3d}: prompt {prompt_len} tokens, {1000 * step:.2f} ms/step -> "
                f"{1 / step:.0f} tokens/s per row, {batch_size / step:.0f} tokens/s in all; bound at copy bandwidth "
                f"{bound_steps:.0f} steps/s ({100 * (1 / step) / bound_steps:.0f} % of it)")
        if nominal:
            share = 100 * bytes_per_step / step / nominal
            line += f", at nominal {nominal / bytes_per_step:.0f} steps/s ({share:.0f} %)"
        print(line)
        print(f"           prefill + encode of {short} tokens: {1000 * (times[short] - short * step):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="qwen2.5-omni-tiny", help="preset of section 1 (random weights)")
    parser.add_argument("--clips", type=int, default=16, help="generated clips for section 1 (default 16)")
    parser.add_argument("--batch-size", type=int, default=4, help="section 1 batch size (default 4)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="section 1 tokens per clip (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-pipeline", action="store_true", help="run section 2 only")
    parser.add_argument("--skip-bandwidth", action="store_true", help="run section 1 only")
    parser.add_argument("--bandwidth-preset", default="r1-omni-0.5b", help="HumanOmni-family preset of section 2")
    parser.add_argument("--bandwidth-device", default="cuda", help="device of section 2 (default cuda)")
    parser.add_argument("--bandwidth-dtype", default="bfloat16", help="dtype of section 2 (default bfloat16)")
    parser.add_argument("--bandwidth-batch-sizes", type=int, nargs="+", default=[1, 8],
                        help="section 2 batch sizes (default 1 8)")
    parser.add_argument("--bandwidth-tokens", type=int, nargs=2, default=[16, 80], metavar=("SHORT", "LONG"),
                        help="the two generation lengths whose difference times a step (default 16 80)")
    parser.add_argument("--repeats", type=int, default=3, help="section 2 timed runs, best kept (default 3)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="r1omni-bench-predict-") as tmp:
        if not args.skip_pipeline:
            pipeline_section(args, Path(tmp))
        if not args.skip_bandwidth:
            bandwidth_section(args, Path(tmp))


if __name__ == "__main__":
    main()
