"""The model card (``README.md``) of a saved model folder: what the model is, what it started from, how it
was trained and on which data, and, when known, how it scored, in the Hub's format
(``huggingface_hub.ModelCard``: YAML metadata, ``model-index`` for the scores), so that the Hub, the
``huggingface_hub`` API and a person reading the folder all find the same facts.

Every family's ``save`` writes one (:func:`write_model_card`); a recipe passes what it knows
(:class:`CardInfo`: base model, recipe stage, data digest), an evaluation its WAR / UAR. Written offline
and atomically; no template engine. Not here: uploading, or the model's weights and configs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from r1omni.atomic import atomic_write_text

__all__ = ["CardInfo", "EvalScore", "write_model_card", "record_scores", "file_digest", "CARD_FILE"]

CARD_FILE = "README.md"
_TASK = "video-classification"   # the Hub's task closest to emotion recognition from clips


@dataclass
class EvalScore:
    """One evaluation of the model: WAR (accuracy) and UAR (mean recall over classes) on a dataset."""

    dataset: str
    war: float
    uar: float
    split: str | None = None


@dataclass
class CardInfo:
    """What a saver knows about the model beyond its weights; every field optional."""

    base_model: str | None = None
    """What training started from: a model folder, ``preset:NAME`` or a Hub id."""
    recipe: str | None = None
    """The stage that made it (``sft/reasoning``, ``grpo``, ``preset``, ...)."""
    data: str | None = None
    """The training manifest."""
    data_digest: str | None = None
    """sha256 of the manifest's bytes (:func:`file_digest`): equal digests, the same training list."""
    steps: int | None = None
    scores: list[EvalScore] = field(default_factory=list)


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a file's bytes (hex), or None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _is_hub_id(name: str | None) -> bool:
    """``org/name`` that is not a local path: the only base the Hub's ``base_model`` field accepts."""
    return bool(name) and name.count("/") == 1 and not name.startswith((".", "/", "preset:")) \
        and not Path(name).exists()


def write_model_card(folder: str | os.PathLike, family: str, info: CardInfo | None = None) -> Path:
    """Write ``folder/README.md`` for a model of ``family``; returns its path."""
    info = info or CardInfo()
    name = f"r1omni-{family}"
    results = _eval_results(info.scores)
    data = ModelCardData(library_name="r1omni", tags=["r1omni", "emotion-recognition", "omni-modal", family],
                         base_model=info.base_model if _is_hub_id(info.base_model) else None,
                         model_name=name if results else None, eval_results=results or None)
    facts = [("family", family), ("started from", info.base_model), ("recipe", info.recipe),
             ("training data", info.data), ("data digest (sha256)", info.data_digest), ("steps", info.steps)]
    lines = [f"- **{label}**: `{value}`" for label, value in facts if value is not None]
    text = [f"---\n{data.to_yaml()}\n---", f"# {name}",
            "An omni-modal (video + audio + text) emotion model saved by r1omni (R1-Omni reimplemented). "
            "Load it with `r1omni.load(folder)` or `r1omni predict --model FOLDER CLIP`.", "\n".join(lines)]
    if info.scores:
        text.append(_scores_section(info.scores))
    path = Path(folder) / CARD_FILE
    atomic_write_text(path, str(ModelCard("\n\n".join(text) + "\n")))
    return path


def record_scores(folder: str | os.PathLike, scores: list[EvalScore]) -> Path:
    """Add evaluations to a saved folder's card: in its ``model-index`` and its Evaluation table. A score of a
    dataset and split already there replaces the old one; the rest of the card is kept. A folder saved
    before cards existed gets one (its family read from ``config.json``)."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        config = Path(folder) / "config.json"
        family = json.loads(config.read_text()).get("model_type", "model") if config.is_file() else "model"
        return write_model_card(folder, family, CardInfo(scores=scores))
    card = ModelCard.load(path)
    new = {(score.dataset, score.split) for score in scores}
    kept = [score for score in _scores_of(card.data.eval_results or []) if (score.dataset, score.split) not in new]
    merged = kept + list(scores)
    card.data.eval_results = _eval_results(merged)
    card.data.model_name = card.data.model_name or f"r1omni-{_family_of(card)}"
    body = card.text.split(_SCORES_HEADING)[0].rstrip()
    card.text = body + "\n\n" + _scores_section(merged) + "\n"
    atomic_write_text(path, str(card))
    return path


_SCORES_HEADING = "## Evaluation"


def _eval_results(scores: list[EvalScore]) -> list[EvalResult]:
    """The Hub's ``model-index`` entries of the scores: WAR as accuracy, UAR as recall."""
    return [EvalResult(task_type=_TASK, dataset_type=score.dataset, dataset_name=score.dataset,
                       dataset_split=score.split, metric_type=kind, metric_name=name, metric_value=value)
            for score in scores for kind, name, value in (("accuracy", "WAR", score.war), ("recall", "UAR", score.uar))]


def _scores_of(results: list[EvalResult]) -> list[EvalScore]:
    """The scores a card's ``model-index`` holds (the inverse of :func:`_eval_results`), in card order."""
    found: dict[tuple[str, str | None], dict[str, float]] = {}
    for result in results:
        found.setdefault((result.dataset_name, result.dataset_split), {})[result.metric_name] = result.metric_value
    return [EvalScore(dataset=dataset, split=split, war=values.get("WAR", float("nan")),
                      uar=values.get("UAR", float("nan"))) for (dataset, split), values in found.items()]


def _scores_section(scores: list[EvalScore]) -> str:
    rows = [f"| {s.dataset} | {s.split or ''} | {s.war:.4f} | {s.uar:.4f} |" for s in scores]
    return f"{_SCORES_HEADING}\n\n| dataset | split | WAR | UAR |\n|---|---|---|---|\n" + "\n".join(rows)


def _family_of(card: ModelCard) -> str:
    tags = [tag for tag in (card.data.tags or []) if tag not in ("r1omni", "emotion-recognition", "omni-modal")]
    return tags[0] if tags else "model"
