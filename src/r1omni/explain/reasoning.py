"""Is the reasoning faithful? Measurable checks on ``<think>`` text, no model needed.

* evidence: does the reasoning cite visual evidence (face, mouth, brows, eyes …) and audio
  evidence (voice, pitch, tone, speech …)?
* agreement: the emotion the reasoning argues for — the last emotion word it names, which is
  where conclusions stand — against the answer's label;
* modality citation (clips whose label one modality carries alone, the benchmark's ``carrier``):
  how often the reasoning cites the carrying modality (the paper names under-used audio cues);
* hallucination (clips with known true cues, i.e. the generated benchmark): the share of cue
  claims that contradict the clip's true cue levels, using the benchmark's own phrase bank
  (``r1omni.claims.claim_errors``), e.g. "the pitch is high" for a low-pitched voice;
* subtitle faithfulness: when the reasoning quotes the subtitle (``the subtitle reads: "…"``),
  whether the quote is the clip's subtitle (the paper names subtitle errors as a limitation).

:func:`segments` cuts one reasoning into clauses, each tagged with the evidence it cites and its cue
claims checked: what the terminal (``r1omni predict``) and the web page (``r1omni serve``) both show,
so that they show the same verdicts.

Word-list checks are deliberately simple and transparent; they are an upper bound on
faithfulness problems they can see, not a judge of free prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from r1omni.claims import ClaimCheck, check_claims, claim_errors, extract_claims
from r1omni.labels import concluded_label
from r1omni.schema import Sample

__all__ = ["mentions_visual", "mentions_audio", "hallucination", "reasoning_quality", "quoted_subtitle",
           "Segment", "segments", "VISUAL_WORDS", "AUDIO_WORDS"]

VISUAL_WORDS = ("face", "facial", "mouth", "lip", "lips", "brow", "brows", "eyebrow", "eyebrows", "eye", "eyes",
                "nose", "jaw", "smile", "smiles", "smiling", "frown", "frowns", "frowning", "expression", "video",
                "gaze", "forehead", "cheek", "cheeks", "grimace", "squint", "squints")
AUDIO_WORDS = ("voice", "vocal", "pitch", "tone", "speech", "speaks", "speaking", "speaker", "audio", "loud",
               "loudly", "quiet", "quietly", "soft", "sound", "sounds", "intonation", "tempo", "pauses", "pause",
               "volume", "trembles", "shaky", "breathy", "monotone")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_QUOTED_SUBTITLE = re.compile(r'subtitle (?:reads|says|is)[:,]?\s*"([^"]*)"', re.IGNORECASE)
# Clause boundaries: sentence ends, semicolons, and a comma before a contrasting conjunction
# ("the face is tense, but the voice is calm" holds one visual and one audio clause).
_CLAUSE_END = re.compile(r"(?<=[.!?;])\s+|,\s+(?=(?:but|while|whereas|yet|although|though)\b)", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def mentions_visual(think: str) -> bool:
    """Whether the reasoning cites visual evidence (a word of :data:`VISUAL_WORDS`).

    >>> mentions_visual("The brows are lowered.")
    True
    """
    return any(word in VISUAL_WORDS for word in _words(think))


def mentions_audio(think: str) -> bool:
    """Whether the reasoning cites audio evidence (a word of :data:`AUDIO_WORDS`).

    >>> mentions_audio("The pitch is high."), mentions_audio("She smiles.")
    (True, False)
    """
    return any(word in AUDIO_WORDS for word in _words(think))


def quoted_subtitle(think: str) -> str | None:
    """The subtitle a reasoning quotes, if it quotes one.

    >>> quoted_subtitle('In the text, the subtitle reads: "See you soon." The words are ordinary.')
    'See you soon.'
    """
    match = _QUOTED_SUBTITLE.search(think)
    return match.group(1).strip() if match else None


@dataclass
class Segment:
    """One clause of a reasoning: its text, the evidence it cites and its cue claims, checked."""

    text: str
    """The clause as written; the segments of a reasoning concatenated give it whole."""
    visual: bool
    """Mentions visual evidence (a word of :data:`VISUAL_WORDS`)."""
    audio: bool
    """Mentions audio evidence (a word of :data:`AUDIO_WORDS`)."""
    claims: list[ClaimCheck] = field(default_factory=list)
    """The clause's cue claims, each with its verdict against the cue levels given to :func:`segments`."""


def segments(think: str | None, levels: dict[str, str] | None = None) -> list[Segment]:
    """``think`` cut into clauses, each tagged with the kind of evidence it cites and its cue claims checked
    against ``levels`` (cue levels, e.g. an :class:`r1omni.inference.Answer`'s; None: nothing is checkable).

    >>> [(s.text, s.visual, s.audio) for s in segments("The brows drop, but the voice is calm. Sad.")]
    [('The brows drop, ', True, False), ('but the voice is calm. ', False, True), ('Sad.', False, False)]
    """
    if not think:
        return []
    pieces, start = [], 0
    for match in _CLAUSE_END.finditer(think):
        pieces.append(think[start:match.end()])
        start = match.end()
    pieces.append(think[start:])
    return [Segment(text=p, visual=mentions_visual(p), audio=mentions_audio(p), claims=check_claims(p, levels))
            for p in pieces if p]


def hallucination(think: str, cues: dict[str, Any]) -> tuple[int, int]:
    """(claims, contradicted claims) of a reasoning against a clip's true cues."""
    return len(extract_claims(think)), len(claim_errors(think, cues))


def reasoning_quality(rows: list[dict], samples_by_id: dict[str, Sample] | None = None) -> dict[str, float | int]:
    """Summary of prediction rows (``think``, ``pred``, ``format_ok``; see ``r1omni.evaluate``)."""
    samples_by_id = samples_by_id or {}
    n = len(rows)
    with_think = [r for r in rows if r.get("think")]
    summary: dict[str, float | int] = {
        "n": n,
        "format_rate": sum(bool(r.get("format_ok")) for r in rows) / n if n else 0.0,
        "with_reasoning": len(with_think),
    }
    if not with_think:
        return summary
    visual = [mentions_visual(r["think"]) for r in with_think]
    audio = [mentions_audio(r["think"]) for r in with_think]
    summary["mentions_visual_rate"] = sum(visual) / len(with_think)
    summary["mentions_audio_rate"] = sum(audio) / len(with_think)
    summary["mentions_both_rate"] = sum(v and a for v, a in zip(visual, audio)) / len(with_think)
    concluded = [(concluded_label(r["think"]), r.get("pred")) for r in with_think]
    judged = [(argued, pred) for argued, pred in concluded if argued is not None and pred is not None]
    summary["reasoning_concludes_rate"] = sum(a is not None for a, _ in concluded) / len(with_think)
    summary["reasoning_answer_agreement"] = (sum(a == p for a, p in judged) / len(judged)) if judged else 0.0
    quotes = [(quoted_subtitle(r["think"]), samples_by_id.get(r["id"])) for r in with_think]
    judged_quotes = [(quote, sample.subtitle) for quote, sample in quotes
                     if quote is not None and sample is not None and sample.subtitle]
    if judged_quotes:
        summary["subtitle_quotes"] = len(judged_quotes)
        summary["subtitle_quote_accuracy"] = (sum(q == t.strip() for q, t in judged_quotes) / len(judged_quotes))
    summary.update(_modality_citation(with_think, samples_by_id))
    claims = contradicted = clips_with_error = clips_judged = 0
    for row in with_think:
        sample = samples_by_id.get(row["id"])
        cues = sample.meta.get("cues") if sample is not None else None
        if not cues:
            continue
        n_claims, n_wrong = hallucination(row["think"], cues)
        clips_judged += 1
        claims += n_claims
        contradicted += n_wrong
        clips_with_error += n_wrong > 0
    if clips_judged:
        summary["cue_claims"] = claims
        summary["cue_claims_per_clip"] = claims / clips_judged
        summary["hallucination_rate"] = contradicted / claims if claims else 0.0
        summary["clips_with_hallucination_rate"] = clips_with_error / clips_judged
    return summary


def _modality_citation(rows: list[dict], samples_by_id: dict[str, Sample]) -> dict[str, float | int]:
    """On clips whose label only one modality carries (the benchmark's ``meta["carrier"]``), how often the
    reasoning cites that modality: the paper's "under-used audio cues", measured (and the same for the face)."""
    summary: dict[str, float | int] = {}
    for carrier, cites in (("voice", mentions_audio), ("face", mentions_visual)):
        carried = [r for r in rows
                   if (s := samples_by_id.get(r["id"])) is not None and s.meta.get("carrier") == carrier]
        if carried:
            summary[f"{carrier}_only_clips"] = len(carried)
            summary[f"{carrier}_only_cites_{carrier}_rate"] = sum(cites(r["think"]) for r in carried) / len(carried)
    return summary
