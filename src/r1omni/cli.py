"""The ``r1omni`` command: subcommands over the library. The only module that prints.

Each subcommand imports what it needs when it runs, so ``r1omni --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

__all__ = ["main", "build_parser"]


def _threads(args: argparse.Namespace) -> None:
    """Pin torch's CPU threads when asked (two threads on two cores can be ~100x slower for tiny
    matmuls; measure before raising it)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


# -- data ---------------------------------------------------------------------------------------

def _cmd_data_import(args: argparse.Namespace) -> int:
    from r1omni.data import import_corpus
    from r1omni.schema import write_samples

    options = dict(_parse_options(args.option))
    result = import_corpus(args.corpus, args.root, fold=args.fold, split=args.split, **options)
    write_samples(args.output, result.samples)
    print(result.summary())
    print(f"wrote {len(result.samples)} samples to {args.output}")
    return 0


def _parse_options(pairs: list[str] | None) -> list[tuple[str, object]]:
    import yaml

    options = []
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"--option {pair!r} must look like key=value")
        key, value = pair.split("=", 1)
        options.append((key, yaml.safe_load(value)))
    return options


# -- synth --------------------------------------------------------------------------------------

def _cmd_synth_generate(args: argparse.Namespace) -> int:
    from r1omni.synth import generate_benchmark

    manifests = generate_benchmark(args.output_dir, preset=args.preset, seed=args.seed, progress=not args.quiet)
    for split, path in manifests.items():
        print(f"{split}: {path}")
    return 0


# -- models -------------------------------------------------------------------------------------

def _cmd_models_list(args: argparse.Namespace) -> int:
    from r1omni.models import list_presets

    for name, description in sorted(list_presets().items()):
        print(f"{name:24s} {description}")
    return 0


def _cmd_models_init(args: argparse.Namespace) -> int:
    from r1omni.atomic import atomic_dir
    from r1omni.models import init_preset

    _threads(args)
    policy = init_preset(args.preset, seed=args.seed)
    with atomic_dir(args.output) as tmp:
        policy.save(tmp)
    params = sum(p.numel() for p in policy.module.parameters())
    print(f"{args.preset}: {params / 1e6:.2f}M parameters ({policy.family}) -> {args.output}")
    return 0


# -- predict ------------------------------------------------------------------------------------

def _cmd_predict(args: argparse.Namespace) -> int:
    from r1omni.inference import predict_files
    from r1omni.models import SamplingConfig, load_policy

    _threads(args)
    policy = load_policy(args.model)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    failures = 0
    for prediction in predict_files(policy, args.videos, modalities=args.modal, prompt=args.prompt,
                                    batch_size=args.batch_size, sampling=sampling):
        failures += prediction.error is not None
        if args.json:
            print(json.dumps(prediction.to_dict(), ensure_ascii=False), flush=True)
        elif prediction.error:
            print(f"{prediction.path}: ERROR {prediction.error}", flush=True)
        else:
            print(f"{prediction.path}: {prediction.label or '(no emotion recognised)'}"
                  f"  [answer={prediction.answer!r}, format_ok={prediction.format_ok}]")
            if prediction.think:
                print(f"  reasoning: {prediction.think}", flush=True)
    return 1 if failures == len(args.videos) else 0


# -- train --------------------------------------------------------------------------------------

def _cmd_train(args: argparse.Namespace) -> int:
    from r1omni.yamlconfig import load_config

    if args.recipe == "sft":
        from r1omni.train.sft import SFTConfig as config_class
        from r1omni.train.sft import train_sft as run
    else:
        from r1omni.train.grpo import GRPOConfig as config_class
        from r1omni.train.grpo import train_grpo as run
    config = load_config(config_class, args.config, args.overrides)
    result = run(config)
    print(f"{args.recipe}: {result.steps} steps, {result.clip_views} clip-views, "
          f"{result.wall_seconds:.1f} s, skipped {result.skipped_clips} clip(s); model -> {result.final_model}")
    return 0


# -- parser -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1omni", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(sub, name: str, handler: Callable[[argparse.Namespace], int], help_text: str):
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    data = commands.add_parser("data", help="import corpora into r1omni's manifest format")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    imp = add(data_sub, "import", _cmd_data_import, "turn a corpus as distributed into a manifest JSONL")
    imp.add_argument("--corpus", required=True,
                     choices=["dfew", "mafw", "ravdess", "emer", "manifest", "llava", "cremad", "meld"])
    imp.add_argument("root", help="the corpus folder (or the manifest / conversation file)")
    imp.add_argument("-o", "--output", required=True, help="output manifest JSONL")
    imp.add_argument("--fold", type=int, default=None)
    imp.add_argument("--split", default=None)
    imp.add_argument("--option", action="append", metavar="KEY=VALUE", help="adapter option (repeatable)")

    synth = commands.add_parser("synth", help="the generated audio-visual emotion benchmark")
    synth_sub = synth.add_subparsers(dest="synth_command", required=True, metavar="SUBCOMMAND")
    gen = add(synth_sub, "generate", _cmd_synth_generate, "generate (or reuse) the benchmark's media and manifests")
    gen.add_argument("output_dir")
    gen.add_argument("--preset", default="default")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    models = commands.add_parser("models", help="model presets")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    add(models_sub, "list", _cmd_models_list, "list the presets")
    init = add(models_sub, "init", _cmd_models_init, "write a randomly initialised preset to a folder")
    init.add_argument("--preset", required=True)
    init.add_argument("-o", "--output", required=True)
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--threads", type=int, default=None)

    predict = add(commands, "predict", _cmd_predict, "recognise and explain the emotion in video/audio files")
    predict.add_argument("--model", required=True, help="a saved model folder")
    predict.add_argument("videos", nargs="+", metavar="VIDEO")
    predict.add_argument("--modal", default="video_audio", choices=["video_audio", "video", "audio"])
    predict.add_argument("--prompt", default="inference", help="a named prompt or literal text")
    predict.add_argument("--json", action="store_true", help="one JSON object per clip")
    predict.add_argument("--batch-size", type=int, default=4)
    predict.add_argument("--max-new-tokens", type=int, default=512)
    predict.add_argument("--threads", type=int, default=None)

    train = commands.add_parser("train", help="SFT and GRPO recipes (run under `accelerate launch` to scale)")
    train_sub = train.add_subparsers(dest="recipe", required=True, metavar="RECIPE")
    for recipe, text in (("sft", "supervised fine-tuning (cold start, label SFT, perception pre-training)"),
                         ("grpo", "GRPO with verifiable rewards")):
        command = add(train_sub, recipe, _cmd_train, text)
        command.add_argument("config", help="YAML config (see configs/)")
        command.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config fields")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError, KeyError) as err:
        if args.verbose:
            raise
        print(f"r1omni {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
