"""Evaluation: policy × labelled clips → ``predictions.jsonl`` → ``metrics.json``, plots, report.

Greedy decoding with the paper's inference prompt by default. Two scoring tracks, reported
separately and named:

* ``strict`` (R1-Omni-compatible): the ``<answer>`` content (whole text when untagged),
  lower-cased and stripped, must equal one of the dataset's label words;
* ``normalized``: the same answer through the synonym / morphology map to the dataset's classes.

WAR, UAR, per-class recall, confusion matrix (also as PNG), unparseable count and format rate per
track; per fold and the mean over folds when the clips carry several folds; reasoning quality
(``r1omni.explain.reasoning``) beside them. Evaluation is resumable: predictions are appended per
batch and clips already in ``predictions.jsonl`` are not generated again, but only when they were
made with the same settings (``eval_settings.json``: a digest of the model's weights, its family,
frame count and chat template, the prompt, modalities, subtitles, face crop, transcription, the
decoding settings and the label set). Rows made otherwise are not this evaluation's answers: the
folder starts over, with a warning naming what differed. Under ``accelerate launch`` the processes share
the clips: each answers every N-th batch of the one-process order, and the main process gathers the rows
and writes every file, so the folder holds what one process would have written, row for row. A clip
whose media cannot be decoded is recorded with its error, left out of the metrics and counted as
skipped. A row holds the fields of the clip's answer record (:class:`r1omni.inference.Answer`, its label
as ``pred``); its cue claims are not checked here (measuring cues costs time per clip; the reasoning
report judges claims against true cues where the benchmark stores them), so ``claims`` and ``cue_levels``
stay empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from r1omni.atomic import atomic_write_text
from r1omni.clips import ClipLoader, LoadedClips, MediaCache
from r1omni.environment import describe_environment
from r1omni.explain.reasoning import reasoning_quality
from r1omni.inference import Answer, answer_clips
from r1omni.labels import LabelSet, get_label_set, strict_label
from r1omni.media import MediaError
from r1omni.metrics import METRICS, PREDICTIONS, TRACKS, classification_report, mean_over_folds
from r1omni.models import Policy, SamplingConfig
from r1omni.models.placement import batches_in_turn, placement, processes
from r1omni.models.policy import recorded_sampling
from r1omni.schema import Sample, read_log
from r1omni.yamlconfig import config_differences

__all__ = ["EvalOptions", "evaluate", "score_predictions", "TRACKS", "label_set_for", "write_confusion_png",
           "model_identity", "SETTINGS"]

logger = logging.getLogger(__name__)

SETTINGS = "eval_settings.json"
# What an earlier evaluation in the folder wrote; stale once the predictions are made again.
_RESULTS = (METRICS, "report.md", *(f"confusion_{track}.png" for track in TRACKS))


@dataclass
class EvalOptions:
    """How clips are turned into answers."""

    prompt: str = "inference"
    """Named prompt or literal text (the paper's inference prompt by default)."""
    batch_size: int = 16
    max_new_tokens: int = 512
    modalities: str = "video_audio"
    use_subtitle: bool = True
    face_crop: bool = False
    """Crop frames to the face (:func:`r1omni.media.faces.crop_faces`); each row records what was found."""
    transcribe: bool = False
    """Recognise speech as the subtitle of clips without one (:mod:`r1omni.media.transcribe`); each row
    records the transcript."""
    cache_media: bool = False
    load_ahead: bool | None = None
    """Decode the clips of this process's next batch in a background thread while the current batch
    generates (the same rows: only when the work happens changes). None: on when the model runs on a GPU,
    where generation no longer waits on the CPU's decoding; off on a CPU, whose cores generation uses."""


# EvalOptions fields that decide when work happens, not what a row holds.
_SCHEDULING = ("batch_size", "cache_media", "max_new_tokens", "load_ahead")


def label_set_for(samples: list[Sample], name: str | None = None) -> LabelSet:
    """The label set to score against: named, or the corpus's own when all clips share one."""
    if name is not None:
        return get_label_set(name)
    corpora = {s.corpus for s in samples}
    if len(corpora) == 1:
        try:
            return get_label_set(corpora.pop())
        except KeyError:
            pass
    labels = tuple(sorted({s.label for s in samples if s.label}))
    return LabelSet("data", labels, labels)


def model_identity(policy: Policy) -> dict:
    """What decides a model's answers besides the clip: family, frame count, chat template and every
    weight (a SHA-256 over the state dict's names, dtypes, shapes and bytes). One pass over the
    weights: seconds for a 7B model, small next to generating its answers."""
    weights = hashlib.sha256()
    for name, tensor in sorted(policy.module.state_dict().items()):
        weights.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    template = getattr(policy.tokenizer, "chat_template", None) or ""
    return {"family": policy.family, "num_frames": policy.num_frames, "weights_sha256": weights.hexdigest(),
            "chat_template_sha256": hashlib.sha256(str(template).encode()).hexdigest()}


def _settings(policy: Policy, labels: LabelSet, options: EvalOptions, sampling: SamplingConfig) -> dict:
    """Everything that decides a prediction row besides its clip (batch size and caching do not)."""
    answering = {k: v for k, v in asdict(options).items() if k not in _SCHEDULING}
    settings = {"model": model_identity(policy), **answering, "sampling": asdict(sampling),
                "label_set": {"name": labels.name, "labels": list(labels.labels)}}
    return json.loads(json.dumps(settings))     # as it reads back from the file


def _read_settings(path: Path) -> dict | None:
    """The settings on record (written atomically, so whole or absent unless edited by hand)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("%s: unreadable (%s); treated as no settings on record", path, err)
        return None


def _reusable_predictions(output_dir: Path, settings: dict) -> dict[str, dict]:
    """Rows of an earlier evaluation in ``output_dir`` made with ``settings``, by clip id. Rows made with
    other settings (or none on record) are dropped, with a warning naming what differed, and the folder
    starts over; the files are replaced atomically, predictions first, so a crash in between never
    pairs stale rows with the new settings."""
    predictions_path, settings_path = output_dir / PREDICTIONS, output_dir / SETTINGS
    rows = read_log(predictions_path)   # a torn last row is generated again
    previous = _read_settings(settings_path)
    if isinstance(previous, dict) and isinstance(previous.get("sampling"), dict):   # in today's fields
        previous = {**previous, "sampling": recorded_sampling(previous["sampling"])}
    if rows and previous != settings:
        changed = "none on record" if previous is None else "; ".join(config_differences(previous, settings))
        logger.warning("%s holds predictions made with other settings (%s); evaluating every clip again",
                       predictions_path, changed)
        rows = []
        for name in _RESULTS:
            (output_dir / name).unlink(missing_ok=True)
    atomic_write_text(predictions_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(settings_path, json.dumps(settings, indent=2))
    return {row["id"]: row for row in rows}


def _row(sample: Sample, answer: Answer | None, labels: LabelSet, notes: dict, error: MediaError | None = None
         ) -> dict:
    """A clip's row of ``predictions.jsonl``, from its :class:`Answer` (None: ``error`` kept it from being
    answered): the answer's fields with its label as ``pred`` (``label`` is the clip's true label) and
    ``pred_strict``, the released exact match; ``notes`` are the loader's (what the face crop found)."""
    fields = answer.to_dict() if answer is not None else Answer.absent()
    pred = fields.pop("label")
    strict = strict_label(answer.answer, labels) if answer is not None else None
    return {"id": sample.id, "label": sample.label, **fields, "pred": pred, "pred_strict": strict,
            "fold": sample.fold, "error": None if error is None else str(error), **notes}


def evaluate(policy: Policy, samples: list[Sample], output_dir: str | Path, labels: LabelSet | None = None,
             options: EvalOptions | None = None,
             progress: Callable[[int, int], None] | None = None, media: MediaCache | None = None) -> dict:
    """Generate (or reuse) predictions for ``samples`` and write predictions, metrics, plots, report;
    ``media``: decoded clips shared with other evaluations of the same files (several models)."""
    options = options or EvalOptions()
    if not samples:
        raise ValueError("no clips to evaluate; metrics over 0 clips would mean nothing")
    output_dir = Path(output_dir)
    labels = labels or label_set_for(samples)
    unlabelled = [s.id for s in samples if not s.label]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} clip(s) have no label (e.g. {unlabelled[0]!r}); evaluation needs labels")
    repeated = sorted(clip_id for clip_id, count in Counter(s.id for s in samples).items() if count > 1)
    if repeated:
        raise ValueError(f"clip ids must be unique (predictions are keyed by id); repeated: {repeated[:5]}")
    outside = sorted({s.label for s in samples} - set(labels.labels))
    if outside:
        raise ValueError(f"labels {outside} are not in the {labels.name} label set {list(labels.labels)}")
    sampling = SamplingConfig(max_new_tokens=options.max_new_tokens)
    state = processes()   # the processes of `accelerate launch`; one otherwise
    done = None
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)   # only once the clips are known to be scorable
        done = _reusable_predictions(output_dir, _settings(policy, labels, options, sampling))
    state.wait_for_everyone()   # the main process has settled what is reusable
    if done is None:
        done = {row["id"]: row for row in read_log(output_dir / PREDICTIONS)}
    todo = [s for s in samples if s.id not in done]
    logger.info("evaluating %d clips (%d already predicted) in %d process(es)", len(todo), len(done),
                state.num_processes)
    loader = ClipLoader.for_policy(policy, prompt=options.prompt, modalities=options.modalities,
                                    use_subtitle=options.use_subtitle, face_crop=options.face_crop,
                                    transcribe=options.transcribe, cache=MediaCache.of_run(media, options.cache_media))
    ahead = options.load_ahead
    if ahead is None:
        ahead = placement(policy.module)["device"] not in (None, "cpu")
    started = time.perf_counter()
    _answer_in_turn(policy, todo, loader, sampling, labels, options.batch_size, output_dir / PREDICTIONS, done,
                    progress, state, ahead)
    generate_seconds = time.perf_counter() - started
    rows = [done[s.id] for s in samples]
    metrics = score_predictions(rows, labels, samples)
    metrics["seconds"] = generate_seconds
    metrics["clips_per_second"] = len(todo) / generate_seconds if todo and generate_seconds > 0 else None
    metrics["environment"] = describe_environment()
    metrics["runs_on"] = placement(policy.module)
    metrics["processes"] = state.num_processes
    if state.is_main_process:
        atomic_write_text(output_dir / METRICS, json.dumps(metrics, indent=2))
        for track in TRACKS:
            write_confusion_png(metrics[track], output_dir / f"confusion_{track}.png", f"{track} track")
        atomic_write_text(output_dir / "report.md", render_report(metrics))
    state.wait_for_everyone()   # every process returns once the results are written
    return metrics


def _answer_in_turn(policy: Policy, todo: list[Sample], loader: ClipLoader, sampling: SamplingConfig,
                    labels: LabelSet, batch_size: int, predictions: Path, done: dict[str, dict],
                    progress: Callable[[int, int], None] | None, state, load_ahead: bool) -> None:
    """Answer ``todo`` into ``done`` (by id), batch by batch, the batches shared between the processes
    (:func:`r1omni.models.placement.batches_in_turn`); the main process appends each batch's rows to
    ``predictions`` in batch order, so the file is the one-process file, row for row."""
    batches = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    mine = batches[state.process_index::state.num_processes]   # this process's batches, in the order it takes them
    main_process = state.is_main_process
    with open(predictions, "a", encoding="utf-8") if main_process else contextlib.nullcontext() as handle, \
            _LoadAhead(loader, mine, load_ahead) as load:
        answered = batches_in_turn(batches, lambda chunk: _answer_batch(policy, chunk, load(chunk), sampling, labels))
        for index, rows in answered:
            for row in rows:
                done[row["id"]] = row
                if handle is not None:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            if handle is not None:
                handle.flush()
            if progress is not None:
                progress(sum(map(len, batches[:index + 1])), len(todo))


class _LoadAhead:
    """``load(chunk)``: the loaded clips of the next of ``batches``, which must come in their order. With
    ``enabled`` the one after it is already decoding in a background thread while the caller generates:
    one worker, so the loader (and its media cache) is only ever used by one thread at a time."""

    def __init__(self, loader: ClipLoader, batches: list[list[Sample]], enabled: bool) -> None:
        self.loader, self.batches, self.enabled = loader, batches, enabled
        self.next, self.pending, self.pool = 0, None, None

    def __enter__(self) -> "_LoadAhead":
        if self.enabled and len(self.batches) > 1:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-ahead")
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __call__(self, chunk: list[Sample]) -> LoadedClips:
        if chunk is not self.batches[self.next]:
            raise RuntimeError("batches must be loaded in the order they were announced")
        self.next += 1
        if self.pool is None:
            return self.loader.load_many(chunk)
        current = self.pending or self.pool.submit(self.loader.load_many, chunk)
        following = self.batches[self.next] if self.next < len(self.batches) else None
        self.pending = self.pool.submit(self.loader.load_many, following) if following is not None else None
        return current.result()


def _answer_batch(policy: Policy, chunk: list[Sample], loaded: LoadedClips, sampling: SamplingConfig,
                  labels: LabelSet) -> list[dict]:
    """The rows of one batch of clips (``loaded``: their decoded media), in its order, failed clips in place."""
    answers = iter(answer_clips(policy, loaded.clips, sampling, labels, check_claims=False))
    return [_row(sample, None, labels, {}, error) if (error := loaded.error_of(sample)) is not None
            else _row(sample, next(answers), labels, loaded.notes[sample.id]) for sample in chunk]


def score_predictions(rows: list[dict], labels: LabelSet, samples: list[Sample] | None = None) -> dict:
    """Metrics of both tracks from prediction rows (errors excluded and counted)."""
    scored = [r for r in rows if r.get("error") is None]
    metrics: dict = {"labels": list(labels.labels), "label_set": labels.name, "n": len(scored),
                     "skipped": len(rows) - len(scored),
                     "skipped_reasons": [r["error"] for r in rows if r.get("error")][:20]}
    format_rate = sum(bool(r["format_ok"]) for r in scored) / len(scored) if scored else 0.0
    for track, key in (("strict", "pred_strict"), ("normalized", "pred")):
        report = classification_report([r["label"] for r in scored], [r[key] for r in scored], labels.labels)
        metrics[track] = {**report.to_dict(), "format_rate": format_rate}
        folds = sorted({r.get("fold") for r in scored if r.get("fold") is not None})
        if len(folds) > 1:
            per_fold = {}
            for fold in folds:
                in_fold = [r for r in scored if r.get("fold") == fold]
                per_fold[str(fold)] = classification_report([r["label"] for r in in_fold],
                                                            [r[key] for r in in_fold], labels.labels)
            metrics[track]["folds"] = {k: {"war": v.war, "uar": v.uar, "n": v.n} for k, v in per_fold.items()}
            metrics[track]["mean_over_folds"] = mean_over_folds(list(per_fold.values()))
    cropped = [r["face_crop"] for r in scored if r.get("face_crop")]
    if cropped:
        metrics["face_crop"] = {"clips": len(cropped), "no_face": sum(not c["face_found"] for c in cropped)}
    by_id = {s.id: s for s in samples or []}
    metrics["reasoning"] = reasoning_quality(scored, by_id)
    return metrics


def write_confusion_png(track_metrics: dict, path: Path, title: str) -> None:
    import numpy as np

    from r1omni.plots import figure, save_png

    labels = track_metrics["labels"]
    matrix = np.array(track_metrics["confusion"], dtype=float)                 # (L, L+1)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = figure(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.5 * len(labels)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels) + 1), labels + ["(none)"], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_title(f"{title}: WAR {track_metrics['war']:.3f}  UAR {track_metrics['uar']:.3f}")
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def render_report(metrics: dict) -> str:
    lines = [f"# Evaluation ({metrics['n']} clips, label set {metrics['label_set']}, "
             f"{metrics['skipped']} skipped)", "", "| track | WAR | UAR | format rate | unparseable |",
             "|---|---|---|---|---|"]
    for track in TRACKS:
        m = metrics[track]
        lines.append(f"| {track} | {m['war']:.4f} | {m['uar']:.4f} | {m['format_rate']:.3f} | {m['unparseable']} |")
    if crop := metrics.get("face_crop"):
        lines.append(f"\nFace crop: no face found in {crop['no_face']} of {crop['clips']} clips "
                     "(those were used whole).")
    for track in TRACKS:
        if "mean_over_folds" in metrics[track]:
            mean = metrics[track]["mean_over_folds"]
            lines.append(f"\n{track}, mean over {mean['folds']} folds: WAR {mean['war']:.4f} ± {mean['war_std']:.4f}, "
                         f"UAR {mean['uar']:.4f} ± {mean['uar_std']:.4f}")
    lines += ["", "Per-class recall (normalized track):", ""]
    for label, recall in metrics["normalized"]["per_class_recall"].items():
        lines.append(f"- {label}: {'n/a' if recall is None else f'{recall:.3f}'}")
    reasoning = metrics.get("reasoning") or {}
    if reasoning:
        lines += ["", "Reasoning quality:", ""]
        lines += [f"- {key}: {value if not isinstance(value, float) else round(value, 4)}"
                  for key, value in reasoning.items()]
    return "\n".join(lines) + "\n"
