"""Modality balance: does a model use each stream, and where is the face lost on its way to the answer?

Issue #26's diagnosis, one record per model (a stage of the demo), on in-distribution clips:

* **answer change**: the share of clips whose greedy answer (mapped to the label set) changes when the
  frames are removed (``no_video``) and when the audio is (``no_audio``), blanked or replaced by a reference
  clip's. Attribution (:mod:`r1omni.explain.attribution`) already measures exactly this as its flip rates,
  so where it ran on the same clips its summary is reused (:func:`answer_changes_from_attribution`); otherwise the
  clips are answered here, three times each (:func:`answer_changes`);
* **token norms**: the mean L2 norm of the video tokens and of the audio tokens as they enter the
  language model (after the projectors, and the media norm if any) over the mean norm of the prompt's
  text token embeddings. A pre-norm LLM never rescales a token's residual stream, so media tokens far
  above the text scale fuse badly (``shared/notes/levers-2026-12.md`` section 2.1);
* **face probe**: the held-out accuracy of a linear read-out of the face's emotion from the LLM's final
  hidden state at the last prompt position (the one that predicts the answer's first token), beside
  the majority share. Decodable here but ignored by the answer means the LLM carries the face and the
  decision does not use it; at chance here means it never got that far.

Face-only and voice-only accuracy are the evaluation's (``by_carrier``); the demo puts them beside.
Token norms and the probe need a policy that can show its prompt states (``policy.prompt_states``, the
Qwen-Omni thinkers); for others they are None. Nothing here trains or changes a model.

Shapes: B clips of a batch, P prompt length, D hidden size, n probe clips, K classes.
"""

from __future__ import annotations

import numpy as np
import torch

from r1omni.clips import ClipLoader, remove_modalities
from r1omni.inference import answer_clips
from r1omni.labels import LabelSet
from r1omni.models import ClipInput, Policy, SamplingConfig
from r1omni.schema import Sample

__all__ = ["face_emotion", "answer_changes", "answer_changes_from_attribution", "prompt_measures", "linear_probe",
           "measure_balance", "RIDGE_GRID"]

RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""Ridge penalties the probe chooses from by leave-one-out on its training half."""


def face_emotion(sample: Sample) -> str | None:
    """The emotion the clip's face shows, from the generated benchmark's ``meta`` (None elsewhere).

    >>> face_emotion(Sample(id="a", corpus="synth", video="a.mp4", label="sad", meta={"carrier": "voice"}))
    'neutral'
    >>> face_emotion(Sample(id="b", corpus="synth", video="b.mp4", label="sad", meta={"carrier": "conflict",
    ...                     "label_modality": "voice", "distractor": "happy"}))
    'happy'
    """
    carrier = sample.meta.get("carrier")
    if carrier in ("face", "both", "independent"):
        return sample.label
    if carrier == "voice":        # the face rests while the voice carries the label
        return "neutral"
    if carrier == "conflict":
        return sample.label if sample.meta.get("label_modality") == "face" else sample.meta.get("distractor")
    return None


def answer_changes(policy: Policy, samples: list[Sample], loader: ClipLoader, labels: LabelSet | None,
                   method: str = "blank", batch_size: int = 16, max_new_tokens: int = 512,
                   reference: ClipInput | None = None) -> dict:
    """Share of ``samples`` whose greedy answer changes without the video and without the audio, decided as
    attribution decides a flip (the label the answer maps to differs); a stream is removed as attribution
    removes it (``method``, and ``reference`` for "reference": :func:`r1omni.clips.remove_modalities`)."""
    sampling = SamplingConfig(max_new_tokens=max_new_tokens)
    changed = {"no_video": 0, "no_audio": 0}
    count = 0
    for start in range(0, len(samples), batch_size):
        clips = loader.load_many(samples[start:start + batch_size]).clips
        if not clips:
            continue
        with torch.no_grad():
            factual = answer_clips(policy, clips, sampling, labels, check_claims=False)
            for condition, video, audio in (("no_video", True, False), ("no_audio", False, True)):
                removed = [remove_modalities(clip, video=video, audio=audio, method=method, reference=reference)
                           for clip in clips]
                answers = answer_clips(policy, removed, sampling, labels, check_claims=False)
                changed[condition] += sum(a.label != f.label for a, f in zip(answers, factual))
        count += len(clips)
    shares = {condition: value / count if count else None for condition, value in changed.items()}
    return {**shares, "n": count, "source": "decoded"}


def answer_changes_from_attribution(summary: dict) -> dict:
    """The same shares from an attribution summary (:func:`r1omni.explain.attribution.summarize`)."""
    if not summary.get("n"):
        return {"no_video": None, "no_audio": None, "n": 0, "source": "attribution"}
    return {"no_video": summary["no_video"]["flip_rate"], "no_audio": summary["no_audio"]["flip_rate"],
            "n": summary["n"], "source": "attribution"}


def prompt_measures(policy: Policy, samples: list[Sample], loader: ClipLoader, batch_size: int = 64
                    ) -> tuple[dict, torch.Tensor, list[Sample]]:
    """Token norms by modality over ``samples`` (and media-to-text ratios), the LLM's last-position hidden
    states (n, D) and the samples they belong to (those that decoded)."""
    norms: dict[str, list[torch.Tensor]] = {"video": [], "audio": [], "text": []}
    hidden, kept = [], []
    for start in range(0, len(samples), batch_size):
        loaded = loader.load_many(samples[start:start + batch_size])
        if not loaded.clips:
            continue
        states = policy.prompt_states(policy.prepare(loaded.clips))
        token_norms = states.embeds.float().norm(dim=-1)                        # (B, P)
        for name, mask in (("video", states.video_mask), ("audio", states.audio_mask), ("text", states.text_mask)):
            norms[name].append(token_norms[mask].cpu())                          # (tokens,)
        hidden.append(states.last_hidden.float().cpu())                          # (B, D)
        kept += loaded.kept
    means = {name: float(torch.cat(values).mean()) if values and torch.cat(values).numel() else None
             for name, values in norms.items()}
    text = means["text"]
    record = {**means, "n": len(kept),
              "video_to_text": means["video"] / text if means["video"] is not None and text else None,
              "audio_to_text": means["audio"] / text if means["audio"] is not None and text else None}
    return record, torch.cat(hidden) if hidden else torch.zeros(0, 0), kept


def _split(labels: list[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / test indices, stratified by label and fixed by ``seed`` (a class of one stays in training)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted(set(labels)):
        members = rng.permutation([i for i, value in enumerate(labels) if value == label])
        cut = int(len(members) * test_fraction)
        test += members[:cut].tolist()
        train += members[cut:].tolist()
    return np.array(sorted(train), dtype=int), np.array(sorted(test), dtype=int)


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression of one-hot targets: weights (D, K) and the hat matrix's diagonal (n,)."""
    gram = x.T @ x + penalty * np.eye(x.shape[1])                               # (D, D)
    weights = np.linalg.solve(gram, x.T @ y)                                    # (D, K)
    leverage = np.einsum("nd,dn->n", x, np.linalg.solve(gram, x.T))              # (n,)
    return weights, leverage


def linear_probe(features: np.ndarray | torch.Tensor, labels: list[str], seed: int = 0,
                 test_fraction: float = 0.5) -> dict:
    """Held-out accuracy of a linear classifier of ``labels`` from ``features`` (n, D).

    One-vs-rest ridge regression on features standardised with the training half's statistics, in closed
    form (no scikit-learn at run time); the penalty is chosen from :data:`RIDGE_GRID` by leave-one-out
    accuracy on the training half (closed form: the residual over 1 - leverage), so the test half is
    used once. ``chance`` is the test accuracy of always answering the training half's commonest label.
    """
    x = np.asarray(features, dtype=np.float64)                                  # (n, D)
    train, test = _split(list(labels), test_fraction, seed)
    classes = sorted(set(labels))
    if len(test) == 0 or len(classes) < 2:
        return {"accuracy": None, "chance": None, "n_train": len(train), "n_test": len(test), "ridge": None}
    onehot = np.array([[label == c for c in classes] for label in labels], dtype=np.float64)  # (n, K)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
    z = (x - mean) / std                                                         # (n, D)
    prior = onehot[train].mean(axis=0)                                           # (K,)
    target = onehot[train] - prior                                               # (n_train, K)

    def loo_accuracy(penalty: float) -> float:
        weights, leverage = _ridge(z[train], target, penalty)
        fitted = z[train] @ weights                                              # (n_train, K)
        held_out = target - (target - fitted) / (1 - leverage)[:, None]          # (n_train, K)
        return float((held_out.argmax(axis=1) == target.argmax(axis=1)).mean())

    penalty = max(RIDGE_GRID, key=lambda value: (loo_accuracy(value), value))   # ties: the stronger penalty
    weights, _ = _ridge(z[train], target, penalty)
    predicted = (z[test] @ weights + prior).argmax(axis=1)                       # (n_test,)
    truth = onehot[test].argmax(axis=1)                                          # (n_test,)
    return {"accuracy": float((predicted == truth).mean()), "chance": float((truth == prior.argmax()).mean()),
            "n_train": len(train), "n_test": len(test), "ridge": penalty}


def measure_balance(policy: Policy, samples: list[Sample], loader: ClipLoader, labels: LabelSet | None,
                    attribution: dict | None = None, flip_clips: int = 14, seed: int = 0, batch_size: int = 64,
                    max_new_tokens: int = 512, method: str = "blank", reference: ClipInput | None = None) -> dict:
    """The balance record of one model on ``samples`` (in-distribution clips of the generated benchmark).

    Answer changes come from ``attribution`` (a summary over the first clips of ``samples``) when given,
    else are decoded on the first ``flip_clips`` clips (0: not measured); token norms and the face probe use
    every clip, the probe's train / test split fixed by ``seed``; ``method`` and ``reference`` say how the
    decoded answer changes remove a stream (:func:`answer_changes`).
    """
    policy.module.eval()
    if attribution is not None:
        changes = answer_changes_from_attribution(attribution)
    elif flip_clips:
        changes = answer_changes(policy, samples[:flip_clips], loader, labels, method=method,
                                 batch_size=batch_size, max_new_tokens=max_new_tokens, reference=reference)
    else:
        changes = None
    record: dict = {"answer_change": changes, "token_norms": None, "face_probe": None}
    if not hasattr(policy, "prompt_states"):
        return record
    record["token_norms"], hidden, kept = prompt_measures(policy, samples, loader, batch_size)
    faces = [face_emotion(sample) for sample in kept]
    rows = [i for i, face in enumerate(faces) if face is not None]
    if rows:
        record["face_probe"] = linear_probe(hidden[rows].numpy(), [faces[i] for i in rows], seed=seed)
    return record
