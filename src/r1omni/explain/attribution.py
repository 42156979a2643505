"""Modality attribution by counterfactuals: what happens to the model's answer without each input?

For every clip the model first answers greedily with everything (the *factual* run). Then, for
each condition — audio removed, frames removed, subtitle removed, both media removed — it

* scores its own factual completion under the counterfactual input (teacher forcing) and reports
  ``contribution = log p(answer | all) - log p(answer | without X)`` over the tokens of the
  answer (and the same over the whole completion): positive means X supported the answer;
* answers again greedily and records whether the label flips.

The decisive modality of a clip is the one whose removal alone flips the answer ("video",
"audio"); "both" when each alone does, or when only removing both media does; "neither" when no
removal flips it. Removal is ``blank`` by default (grey frames, silence: the prompt keeps its
shape, only the information goes), ``omit`` (the modality's placeholder leaves the prompt, as
video-only inference does) or ``reference`` (a given clip's stream in its place, e.g. a neutral clip's:
models trained without blanks may read grey frames or silence as a cue of their own).

On the generated benchmark, where each clip stores which modality carries its label
(``meta["label_modality"]``: face, voice or both), :func:`summarize` reports how often the
attribution names it. :func:`write_attribution` writes the per-clip rows and the summary.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from r1omni.atomic import atomic_write_text
from r1omni.clips import ClipLoader, remove_modalities
from r1omni.inference import answer_clips, check_answers, generate_answers
from r1omni.labels import LabelSet
from r1omni.models import ClipInput, Policy, SamplingConfig
from r1omni.models.placement import batches_in_turn
from r1omni.schema import Sample

__all__ = ["CONDITIONS", "ClipAttribution", "remove_modalities", "attribute", "summarize", "write_attribution",
           "EXPECTED_MODALITY"]

CONDITIONS = ("no_audio", "no_video", "no_subtitle", "no_media")
# The generated benchmark's carrier -> the modality attribution should name.
EXPECTED_MODALITY = {"face": "video", "voice": "audio", "both": "both"}


@dataclass
class ClipAttribution:
    id: str
    label: str | None
    pred: str | None
    output: str
    conditions: dict[str, dict] = field(default_factory=dict)
    decisive: str = "neither"
    expected: str | None = None
    claims: list[dict] = field(default_factory=list)
    """The reasoning's cue claims with their verdicts, against the clip's true cues where the sample
    stores them (the benchmark's ``meta.cues``), else against the cues measured on the clip."""

    def to_dict(self) -> dict:
        return asdict(self)


def _answer_span(policy: Policy, text: str, length: int) -> slice:
    """Token positions of the answer inside a completion of ``length`` tokens (approximate at token
    boundaries: the prefix up to ``<answer>`` is tokenised on its own)."""
    start_char = text.find("<answer>")
    if start_char == -1:
        return slice(0, length)
    end_char = text.find("</answer>", start_char)
    prefix = len(policy.tokenizer(text[:start_char + len("<answer>")], add_special_tokens=False)["input_ids"])
    stop = (len(policy.tokenizer(text[:end_char], add_special_tokens=False)["input_ids"])
            if end_char != -1 else length)
    return slice(min(prefix, length - 1), max(min(stop, length), min(prefix, length - 1) + 1))


def _scores(policy: Policy, clips: list[ClipInput], ids: torch.Tensor, mask: torch.Tensor,
            spans: list[slice]) -> tuple[list[float], list[float]]:
    """(answer log-prob, completion log-prob) of each clip's factual completion under ``clips``."""
    batch = policy.prepare(clips)
    with torch.no_grad():
        logp = policy.token_logprobs(batch, ids, torch.arange(len(clips))) * mask      # (B, C)
    answer = [float(logp[i, span].sum()) for i, span in enumerate(spans)]
    return answer, [float(v) for v in logp.sum(dim=1)]


def _decisive(flips: dict[str, bool]) -> str:
    video, audio = flips.get("no_video", False), flips.get("no_audio", False)
    if video and audio:
        return "both"
    if video:
        return "video"
    if audio:
        return "audio"
    return "both" if flips.get("no_media", False) else "neither"


def attribute(policy: Policy, samples: list[Sample], loader: ClipLoader, labels: LabelSet | None,
              method: str = "blank", batch_size: int = 16, max_new_tokens: int = 512,
              progress=None, reference: ClipInput | None = None) -> tuple[list[ClipAttribution], int]:
    """Attribution for every clip, answers mapped to ``labels``; returns (results, clips skipped for media
    errors). ``method`` "reference" removes a stream by putting ``reference``'s in its place
    (:func:`r1omni.clips.remove_modalities`; a neutral clip loaded by ``loader``). The factual answer is the
    one :func:`r1omni.inference.answer_clips` gives. Under ``accelerate launch`` the batches are shared between
    the processes and every process returns all the results, in the one-process order
    (:func:`r1omni.models.placement.batches_in_turn`)."""
    if method == "reference" and reference is None:
        raise ValueError("attribution by 'reference' needs the reference clip")
    sampling = SamplingConfig(max_new_tokens=max_new_tokens)
    results: list[ClipAttribution] = []
    skipped = 0
    policy.module.eval()
    batches = [samples[start:start + batch_size] for start in range(0, len(samples), batch_size)]
    for index, (attributed, failed) in batches_in_turn(
            batches, lambda chunk: _attribute_batch(policy, chunk, loader, labels, method, sampling, reference)):
        results.extend(attributed)
        skipped += failed
        if progress is not None:
            progress(sum(map(len, batches[:index + 1])), len(samples))
    return results, skipped


def _attribute_batch(policy: Policy, samples: list[Sample], loader: ClipLoader, labels: LabelSet | None,
                     method: str, sampling: SamplingConfig, reference: ClipInput | None = None
                     ) -> tuple[list[ClipAttribution], int]:
    """One batch of :func:`attribute`: its clips' attributions and how many could not be read."""
    loaded = loader.load_many(samples)
    if not loaded.clips:
        return [], len(loaded.failures)
    no_subtitle_loader = replace(loader, use_subtitle=False)  # only asked for questions: media is decoded once
    clips, chunk = loaded.clips, loaded.kept
    bare = [replace(clip, question=no_subtitle_loader.question(s)) for clip, s in zip(clips, chunk)]
    with torch.no_grad():
        factual, answers = generate_answers(policy, clips, sampling, labels)
    # Claims against the true cues where the sample stores them, else against the measured ones.
    check_answers(answers, clips, true_cues=[s.meta.get("cues") for s in chunk])
    spans = [_answer_span(policy, text, int(length)) for text, length in zip(factual.texts, factual.lengths)]
    base_answer, base_total = _scores(policy, clips, factual.ids, factual.mask, spans)
    def removed(video: bool, audio: bool) -> list[ClipInput]:
        return [remove_modalities(c, video=video, audio=audio, method=method, reference=reference) for c in clips]

    variants = {"no_audio": removed(False, True), "no_video": removed(True, False), "no_subtitle": bare,
                "no_media": removed(True, True)}
    per_clip = [ClipAttribution(id=s.id, label=s.label, pred=a.label, output=a.output,
                                expected=EXPECTED_MODALITY.get(s.meta.get("label_modality")),
                                claims=[asdict(check) for check in a.claims])
                for s, a in zip(chunk, answers)]
    for condition, counterfactual in variants.items():
        answer, total = _scores(policy, counterfactual, factual.ids, factual.mask, spans)
        with torch.no_grad():
            regenerated = answer_clips(policy, counterfactual, sampling, labels, check_claims=False)
        for i, clip in enumerate(per_clip):
            new_label = regenerated[i].label
            clip.conditions[condition] = {
                "answer_contribution": base_answer[i] - answer[i],
                "completion_contribution": base_total[i] - total[i],
                "pred": new_label,
                "flipped": new_label != clip.pred,
            }
    for clip in per_clip:
        clip.decisive = _decisive({c: v["flipped"] for c, v in clip.conditions.items()})
    return per_clip, len(loaded.failures)


def summarize(results: list[ClipAttribution]) -> dict:
    """Per-dataset figures: how often each modality is decisive, mean contributions, flip rates, and
    (where the true carrier is known) how often the attribution names it, over all clips and over the
    clips whose answer changes without any media (``media_decided``)."""
    n = len(results)
    if not n:
        return {"n": 0}
    summary: dict = {"n": n, "decisive": {k: v / n for k, v in Counter(r.decisive for r in results).items()}}
    for condition in CONDITIONS:
        values = [r.conditions[condition] for r in results if condition in r.conditions]
        summary[condition] = {
            "flip_rate": sum(v["flipped"] for v in values) / len(values),
            "mean_answer_contribution": float(np.mean([v["answer_contribution"] for v in values])),
            "mean_completion_contribution": float(np.mean([v["completion_contribution"] for v in values])),
        }
    known = [r for r in results if r.expected is not None]
    if known:
        # Named correctly: the decisive modality, or (when nothing flips) the larger contribution.
        def named(r: ClipAttribution) -> str:
            if r.decisive != "neither":
                return r.decisive
            video = r.conditions["no_video"]["answer_contribution"]
            audio = r.conditions["no_audio"]["answer_contribution"]
            return "video" if video >= audio else "audio"

        hits = [named(r) == r.expected for r in known]
        by_carrier: dict[str, dict] = {}
        for expected in sorted({r.expected for r in known}):
            group = [r for r in known if r.expected == expected]
            by_carrier[expected] = {"n": len(group),
                                    "named_correctly": sum(named(r) == expected for r in group) / len(group),
                                    "attributed": dict(Counter(named(r) for r in group)),
                                    # the removals alone, without the contribution fallback of "named"
                                    "decisive": dict(Counter(r.decisive for r in group))}
        summary["attribution_accuracy"] = sum(hits) / len(hits)
        summary["by_true_modality"] = by_carrier
        # A clip whose answer stays when every stream is removed (a neutral clip against a neutral reference,
        # an answer read from the subtitle) has nothing a stream's removal can show: scored apart as well.
        decided = [r for r in known if r.conditions.get("no_media", {}).get("flipped")]
        summary["media_decided"] = {"n": len(decided), "named_correctly": (
            sum(named(r) == r.expected for r in decided) / len(decided) if decided else None)}
    return summary


def write_attribution(out_dir: str | os.PathLike, results: list[ClipAttribution], skipped: int,
                      runs_on: dict | None = None) -> dict:
    """``attribution.jsonl`` (one clip per line) and ``attribution_summary.json`` (:func:`summarize` plus
    the count of clips skipped for media errors and where the model ran, :func:`r1omni.models.placement.
    placement`) in ``out_dir``, each written atomically; the summary."""
    out = Path(out_dir)
    summary = {**summarize(results), "skipped": skipped, "runs_on": runs_on}
    atomic_write_text(out / "attribution.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in results))
    atomic_write_text(out / "attribution_summary.json", json.dumps(summary, indent=2))
    return summary
