"""THE output contract: the R1-Omni prompts, how a target completion is written, how one is parsed.

Every part of r1omni that needs to know what a "correct" or "well-formed" answer is (the rewards,
the metrics, the evaluation and explanation reports, the server) calls :func:`parse_completion`,
so the reward and the evaluation can never disagree on what counts (the released R1-Omni code
does: its reward extracts ``<answer>`` while its evaluation compares the raw response).

The prompt strings are verbatim from the released code (HumanMLLM/R1-Omni, ``inference.py`` and the GRPO script),
including the two spaces before "Output" in the inference prompt. Chat templates and modality
placeholders are model-specific and live in ``r1omni.models``; this module is plain text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1omni.labels import LabelSet, normalize_label

__all__ = [
    "QUESTION",
    "FORMAT_INSTRUCTION",
    "PROMPTS",
    "get_prompt",
    "with_subtitle",
    "render_completion",
    "Parsed",
    "parse_completion",
    "PAPER_FORMAT_RE",
]

QUESTION = (
    "As an emotional recognition expert; throughout the video, which emotion conveyed by the "
    "characters is the most obvious to you?"
)
FORMAT_INSTRUCTION = (
    "Output the thinking process in <think> </think> and final emotion in <answer> </answer> tags."
)

PROMPTS: dict[str, str] = {
    # README / inference.py: the question, two spaces, the format instruction.
    "inference": f"{QUESTION}  {FORMAT_INSTRUCTION}",
    # GRPO training (grpo.py QUESTION_TEMPLATE): question, newline, format instruction.
    "train": f"{QUESTION}\n{FORMAT_INSTRUCTION}",
    # The released eval scripts: no format instruction, trailing newline.
    "eval": (
        "As an emotional recognition expert, in the video, when the characters display their "
        "emotions, which predominant feeling is most clearly expressed?\n"
    ),
    # The label-only SFT baseline's question (MAFW-DFEW-SFT answers with a bare word).
    "label": QUESTION,
    # r1omni's perception pre-training of tiny models (the target is a cue description).
    "describe": "Describe the person's face and voice in the clip.",
}


def get_prompt(name_or_text: str) -> str:
    """A named prompt (``inference``, ``train``, ``eval``, ``label``, ``describe``) or, if not a name,
    the text itself."""
    return PROMPTS.get(name_or_text, name_or_text)


def with_subtitle(prompt: str, subtitle: str | None) -> str:
    """Put the clip's subtitle before the question, as EMER-style data gives the text modality."""
    if not subtitle:
        return prompt
    return f'The subtitle of the video reads: "{subtitle.strip()}"\n{prompt}'


def render_completion(think: str | None, answer: str) -> str:
    """The target text of a completion: ``<think>…</think>\\n<answer>…</answer>`` (EMER cold-start
    form), or the bare answer when there is no reasoning (the label-SFT baseline)."""
    if think is None:
        return answer
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


# The released format reward: whole string, non-greedy, DOTALL. It accepts repeated and nested tags
# and empty fields, e.g. "<think></think><answer>a</answer><answer>b</answer>".
PAPER_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
# r1omni's strict format: exactly one think block and one answer block, no tag inside either,
# both non-empty, nothing before or after.
_NO_TAG = r"(?:(?!</?(?:think|answer)>).)"
_STRICT_FORMAT_RE = re.compile(
    rf"<think>(?P<think>{_NO_TAG}*?)</think>\s*<answer>(?P<answer>{_NO_TAG}*?)</answer>", re.DOTALL
)
# Beyond this length a completion is junk; parse a prefix so a 100 kB string costs microseconds.
_MAX_PARSE_CHARS = 20_000


def _first_block(text: str, open_tag: str, close_tag: str, allow_newlines: bool) -> str | None:
    """Content of the first ``open_tag … close_tag`` pair, like a non-greedy regex search, but in
    linear time (a regex search is quadratic on junk with many opening tags)."""
    start = text.find(open_tag)
    while start != -1:
        content_start = start + len(open_tag)
        end = text.find(close_tag, content_start)
        if end == -1:
            return None
        if allow_newlines or text.find("\n", content_start, end) == -1:
            return text[content_start:end]
        start = text.find(open_tag, start + 1)
    return None


@dataclass(frozen=True)
class Parsed:
    """A completion split into its parts.

    ``answer`` is the first ``<answer>`` block's content, stripped, or the whole stripped text when
    there is none (as the released accuracy reward does); ``label`` is that answer mapped to a
    canonical emotion (None when it names none); ``format_ok`` is r1omni's strict format check.
    """

    think: str | None
    answer: str
    label: str | None
    format_ok: bool
    paper_format_ok: bool


def parse_completion(text: str, labels: tuple[str, ...] | LabelSet | None = None) -> Parsed:
    """Parse one completion. Never raises on any string.

    >>> p = parse_completion("<think>She smiles.</think>\\n<answer>Happiness</answer>")
    >>> (p.think, p.answer, p.label, p.format_ok)
    ('She smiles.', 'Happiness', 'happy', True)
    >>> parse_completion("sad").label, parse_completion("sad").format_ok
    ('sad', False)
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_completion expects str, got {type(text).__name__}")
    head = text[:_MAX_PARSE_CHARS]
    think = _first_block(head, "<think>", "</think>", allow_newlines=True)
    # The released accuracy reward reads the first answer block without DOTALL (one line).
    answer_block = _first_block(head, "<answer>", "</answer>", allow_newlines=False)
    answer = (answer_block if answer_block is not None else head).strip()
    strict = _STRICT_FORMAT_RE.fullmatch(text) if len(text) <= _MAX_PARSE_CHARS else None
    format_ok = bool(strict and strict.group("think").strip() and strict.group("answer").strip())
    paper_ok = len(text) <= _MAX_PARSE_CHARS and PAPER_FORMAT_RE.fullmatch(text) is not None
    return Parsed(
        think=think.strip() if think is not None else None,
        answer=answer,
        label=normalize_label(answer, labels),
        format_ok=format_ok,
        paper_format_ok=paper_ok,
    )
