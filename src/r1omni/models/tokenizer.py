"""Offline tokenizers for the tiny presets: a byte-level BPE trained here with ``tokenizers``.

Real checkpoints bring their own tokenizer files; tiny random-weight presets (tests, the embedded
benchmark) cannot download one, so they train a small BPE on a corpus of the prompts, labels and
cue vocabulary they will see. Byte-level BPE encodes any text, so a word missing from the corpus
only costs more tokens. ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` are added as single
non-special tokens: they survive ``skip_special_tokens=True`` decoding and stay one token each.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from r1omni.labels import LABEL_SETS, SYNONYMS
from r1omni.template import PROMPTS, render_completion

__all__ = ["build_bpe_tokenizer", "default_corpus", "THINK_TAGS", "QWEN_CHAT_TEMPLATE"]

THINK_TAGS = ("<think>", "</think>", "<answer>", "</answer>")

# Qwen2-style ChatML with the default system prompt the released checkpoints use. List contents
# render their text parts only; families that need media parts in the template supply their own.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CUE_WORDS = (
    "In the video, the person's mouth corners turn up and the eyes narrow. In the audio, the pitch is "
    "high and rising, the speech is fast and loud. In the text, the subtitle reads: nothing special. "
    "Therefore the emotion is happy. The brows are lowered and drawn together, the mouth is tight. "
    "The voice is low, slow, quiet, trembling, flat, tense, with long pauses. The eyes are wide open. "
    "The face shows no clear expression. The nose wrinkles and the upper lip rises. The jaw drops."
)


def default_corpus() -> list[str]:
    """Prompts, label words and a cue vocabulary: what a tiny emotion model reads and writes."""
    words = sorted({w for s in LABEL_SETS.values() for w in s.labels + s.raw} | set(SYNONYMS))
    texts = list(PROMPTS.values()) + [_CUE_WORDS, " ".join(words)]
    texts += [render_completion("The person looks " + w + ".", w) for w in words]
    return texts


def build_bpe_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 512,
                        special_tokens: Iterable[str] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                        extra_special_tokens: dict[str, str] | None = None,
                        chat_template: str = QWEN_CHAT_TEMPLATE, eos_token: str = "<|im_end|>",
                        pad_token: str = "<|endoftext|>") -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``corpus`` (default :func:`default_corpus`) and wrap it for transformers.

    ``extra_special_tokens`` maps attribute names to tokens (e.g. ``{"video_token": "<|VIDEO|>"}``),
    which transformers exposes as ``tokenizer.video_token`` / ``tokenizer.video_token_id``.
    """
    texts = list(corpus) if corpus is not None else default_corpus()
    specials = list(dict.fromkeys([*special_tokens, *(extra_special_tokens or {}).values()]))
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # Repeat the corpus so that rare words still earn merges in a small vocabulary.
    bpe.train_from_iterator(texts * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=eos_token, pad_token=pad_token, bos_token=None,
        padding_side="left", extra_special_tokens=extra_special_tokens or {},
    )
    tokenizer.add_tokens(list(THINK_TAGS), special_tokens=False)
    tokenizer.chat_template = chat_template
    return tokenizer
