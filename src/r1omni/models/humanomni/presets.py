"""Named HumanOmni configurations with random weights and offline tokenizers.

* ``humanomni-tiny``: the dimensions of the parity fixture (Qwen2 hidden 64 x 2 layers, SigLIP 32 px /
  patch 8 / width 32, Whisper d_model 32 x 2 layers, BERT width 32, 8 frames). Whisper still needs
  3000 mel frames (1500 positions, 500 audio tokens after pooling), so a clip is ~530 merged tokens;
  a forward on 2 clips takes a fraction of a second on one CPU thread. For tests and the embedded benchmark.
* ``r1-omni-0.5b``: the real R1-Omni-0.5B dimensions (Qwen2.5-0.5B, SigLIP-base-224, Whisper-large-v3
  encoder, BERT-base, gate 3584). Random weights (~1.37 B parameters, ~5.5 GB in float32): for GPU
  benchmarks and as the shape reference; real use loads the released folder with ``load_policy``.

Both use tokenizers trained here (``build_bpe_tokenizer`` with the Qwen2-VL special tokens and a
Qwen2-VL-style chat template, and a small lowercase WordPiece for the gate), since nothing can be
downloaded. The 0.5B preset keeps the real embedding sizes (151936 / 30522 rows); its small
tokenizers use only the first rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    BertConfig,
    BertTokenizer,
    GenerationConfig,
    SiglipVisionConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
)

from r1omni.models.humanomni.configuration import HumanOmniConfig
from r1omni.models.humanomni.modeling import HumanOmniForCausalLM
from r1omni.models.humanomni.policy import HumanOmniPolicy
from r1omni.models.humanomni.processing import FrameSettings, HumanOmniProcessor
from r1omni.models.tokenizer import build_bpe_tokenizer, default_corpus

__all__ = ["PRESETS", "QWEN2_VL_SPECIAL_TOKENS", "QWEN2_VL_CHAT_TEMPLATE", "tiny_config", "r1_omni_0p5b_config",
           "build_tokenizers", "build_policy", "humanomni_tiny", "r1_omni_0p5b"]

# The 14 added tokens of the Qwen2-VL tokenizer that R1-Omni ships, in id order.
QWEN2_VL_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)

# ChatML with the default system prompt; list contents render image / video parts as Qwen2-VL does.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# The wrappers are plain text in the prompt; letting the BPE see them keeps them short.
_WRAPPER_TEXT = "<vi_start><video><vi_end>\n<au_start><audio><au_end>\n"


def build_tokenizers(corpus: Iterable[str] | None = None, bpe_vocab_size: int = 512,
                     bert_vocab_size: int = 400) -> tuple:
    """(Qwen-style BPE tokenizer with the Qwen2-VL specials and template, lowercase BERT WordPiece)."""
    texts = list(corpus) if corpus is not None else default_corpus()
    tokenizer = build_bpe_tokenizer([*texts, _WRAPPER_TEXT], vocab_size=bpe_vocab_size,
                                    special_tokens=QWEN2_VL_SPECIAL_TOKENS, chat_template=QWEN2_VL_CHAT_TEMPLATE)
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(texts * 2, trainers.WordPieceTrainer(
        vocab_size=bert_vocab_size, special_tokens=list(_BERT_SPECIALS), show_progress=False))
    bert_tokenizer = BertTokenizer(vocab=wordpiece.get_vocab(), do_lower_case=True, model_max_length=512)
    return tokenizer, bert_tokenizer


def _round_up(value: int, multiple: int = 64) -> int:
    return int(math.ceil(value / multiple) * multiple)


def tiny_config(vocab_size: int = 576, bert_vocab_size: int = 400, bos_token_id: int = 0,
                eos_token_id: int = 2, num_frames: int = 8) -> HumanOmniConfig:
    """The ``humanomni-tiny`` architecture (dimensions of the parity fixture)."""
    return HumanOmniConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, max_window_layers=2, rope_theta=1_000_000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, sliding_window=None,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, mm_hidden_size=32, audio_hidden_size=32,
        num_frames=num_frames,
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=32, patch_size=8,
                                         hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
        audio_config=WhisperConfig(num_mel_bins=128, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                                   encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2,
                                   decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=32,
                                   vocab_size=64, classifier_proj_size=8, pad_token_id=1, bos_token_id=2,
                                   eos_token_id=3, decoder_start_token_id=2),
        bert_config=BertConfig(vocab_size=bert_vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=512, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0),
    )


def r1_omni_0p5b_config(bos_token_id: int = 151643, eos_token_id: int = 151645,
                        num_frames: int = 8) -> HumanOmniConfig:
    """The R1-Omni-0.5B architecture (the released config.json of HumanMLLM/R1-Omni-0.5B)."""
    return HumanOmniConfig(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, max_window_layers=21, rope_theta=1_000_000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, sliding_window=None,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, mm_hidden_size=768, audio_hidden_size=1280,
        num_frames=num_frames, tokenizer_model_max_length=2048,
        vision_config=SiglipVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                         num_attention_heads=12, image_size=224, patch_size=16,
                                         hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
        audio_config=WhisperConfig(num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20,
                                   encoder_ffn_dim=5120, decoder_layers=32, decoder_attention_heads=20,
                                   decoder_ffn_dim=5120, max_source_positions=1500, max_target_positions=448,
                                   vocab_size=51866, classifier_proj_size=256),
        bert_config=BertConfig(),   # bert-base-uncased
    )


def build_policy(config: HumanOmniConfig, tokenizer, bert_tokenizer, seed: int = 0) -> HumanOmniPolicy:
    """A randomly initialised policy of ``config`` with the given tokenizers."""
    if len(tokenizer) > config.vocab_size or len(bert_tokenizer) > config.bert_config.vocab_size:
        raise ValueError(f"tokenizers ({len(tokenizer)}, {len(bert_tokenizer)} tokens) exceed the embedding tables "
                         f"({config.vocab_size}, {config.bert_config.vocab_size})")
    torch.manual_seed(seed)
    model = HumanOmniForCausalLM(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
                                               eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    vision, audio = config.vision_config, config.audio_config
    extractor = WhisperFeatureExtractor(feature_size=audio.num_mel_bins, sampling_rate=16000, hop_length=160,
                                        chunk_length=30, n_fft=400)
    if extractor.nb_max_frames != 2 * audio.max_source_positions:
        raise ValueError(f"the Whisper encoder needs {2 * audio.max_source_positions} mel frames, the feature "
                         f"extractor gives {extractor.nb_max_frames}")
    processor = HumanOmniProcessor(tokenizer, bert_tokenizer, extractor,
                                   FrameSettings(vision.image_size, vision.image_size), frame_mode="stretch",
                                   use_x_start_end=config.mm_use_x_start_end,
                                   bert_max_length=config.bert_config.max_position_embeddings)
    return HumanOmniPolicy(model, processor)


def _token_ids(tokenizer) -> dict[str, int]:
    return {"bos_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")}


def humanomni_tiny(seed: int = 0, corpus: Iterable[str] | None = None, num_frames: int = 8) -> HumanOmniPolicy:
    """Tiny random HumanOmni (fixture dimensions: Qwen2 64x2, SigLIP 32px, Whisper 32x2, BERT 32) for tests."""
    tokenizer, bert_tokenizer = build_tokenizers(corpus)
    config = tiny_config(vocab_size=_round_up(len(tokenizer)), bert_vocab_size=len(bert_tokenizer),
                         num_frames=num_frames, **_token_ids(tokenizer))
    return build_policy(config, tokenizer, bert_tokenizer, seed)


def r1_omni_0p5b(seed: int = 0, corpus: Iterable[str] | None = None, num_frames: int = 8) -> HumanOmniPolicy:
    """R1-Omni-0.5B dimensions with random weights (~1.37 B params); load real weights with load_policy."""
    tokenizer, bert_tokenizer = build_tokenizers(corpus)
    config = r1_omni_0p5b_config(num_frames=num_frames, **_token_ids(tokenizer))
    return build_policy(config, tokenizer, bert_tokenizer, seed)


PRESETS: dict[str, Callable[..., HumanOmniPolicy]] = {
    "humanomni-tiny": humanomni_tiny,
    "r1-omni-0.5b": r1_omni_0p5b,
}
