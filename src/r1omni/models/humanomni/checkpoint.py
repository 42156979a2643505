"""Reading HumanOmni / R1-Omni checkpoint folders: config, tower folders, BERT files, the weights file.

The released layout: ``config.json`` (``model_type: HumanOmni_qwen2`` and the ``mm_*`` keys, with
the authors' absolute tower paths), one ``model.safetensors`` whose keys follow the module tree in
``modeling.py`` (the towers' own copies included), the tokenizer, and the SigLIP / Whisper tower
folders named by ``mm_vision_tower`` / ``mm_audio_tower``. Paths are resolved relative to the
checkpoint folder; nothing is ever downloaded, and a wrong path names the key to edit.

Not here: the network (``modeling.py``), which imports this module and never the other way.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import BertConfig, SiglipVisionConfig, WhisperConfig

from r1omni.models.humanomni.configuration import MODEL_TYPE

__all__ = ["CheckpointFolders", "resolve_tower_dir", "read_vision_config", "read_audio_config", "find_bert_dir",
           "read_bert_config", "WeightsFile", "load_weights_file", "VISION_PREFIX", "AUDIO_PREFIX", "BERT_PREFIX",
           "TOWER_KEY_MAPS"]

logger = logging.getLogger(__name__)

# State-dict prefixes of the towers and the gate's BERT inside the released model.safetensors.
VISION_PREFIX = "model.vision_tower.vision_tower."
AUDIO_PREFIX = "model.audio_tower.audio_tower."
BERT_PREFIX = "model.bert_model."


def _local_dir(path: str | os.PathLike, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {str(path)!r} does not exist; r1omni never downloads models: "
                                "download the files first (e.g. `huggingface-cli download <repo> --local-dir <dir>`) "
                                "and pass the local folder")
    return folder


@dataclass
class CheckpointFolders:
    """Where the parts of a HumanOmni checkpoint live on this machine."""

    checkpoint: Path
    config_dict: dict
    vision: Path
    audio: Path
    bert: Path

    @classmethod
    def resolve(cls, directory: str | os.PathLike, vision_tower: str | os.PathLike | None = None,
                audio_tower: str | os.PathLike | None = None,
                bert_tokenizer: str | os.PathLike | None = None) -> "CheckpointFolders":
        directory = _local_dir(directory, "checkpoint")
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: missing; is {directory} a HumanOmni / R1-Omni checkpoint?")
        config_dict = _read_json(config_path)
        if str(config_dict.get("model_type", "")).lower() != MODEL_TYPE.lower():
            raise ValueError(f"{config_path}: model_type is {config_dict.get('model_type')!r}, expected {MODEL_TYPE!r}")
        vision = resolve_tower_dir(directory, vision_tower, config_dict.get("mm_vision_tower"), "vision_tower",
                                   "mm_vision_tower", "google/siglip-base-patch16-224")
        audio = resolve_tower_dir(directory, audio_tower, config_dict.get("mm_audio_tower"), "audio_tower",
                                  "mm_audio_tower", "openai/whisper-large-v3")
        return cls(directory, config_dict, vision, audio, find_bert_dir(directory, bert_tokenizer))


def resolve_tower_dir(checkpoint_dir: Path, explicit: str | os.PathLike | None, configured: str | None,
                      argument: str, key: str, repo_hint: str) -> Path:
    """The tower folder: the explicit argument, else the config value resolved relative to the checkpoint."""
    if explicit is not None:
        return _local_dir(explicit, argument)
    if not configured:
        raise ValueError(f"{checkpoint_dir / 'config.json'} has no {key}; pass {argument}=<folder of {repo_hint}>")
    folder = Path(configured).expanduser()
    if not folder.is_absolute():
        folder = checkpoint_dir / folder
    if folder.is_dir():
        return folder
    raise FileNotFoundError(
        f"{checkpoint_dir / 'config.json'}: {key} = {configured!r} is not a folder on this machine (the released "
        f"checkpoints name the authors' own paths). Download {repo_hint} and pass {argument}=<its folder>, or set "
        f"{key} in config.json to that folder (absolute, or relative to the checkpoint folder)")


def read_vision_config(folder: Path) -> SiglipVisionConfig:
    """SigLIP vision config from a tower folder (a full ``siglip`` config or a ``siglip_vision_model`` one)."""
    data = _read_json(folder / "config.json")
    if data.get("model_type") == "siglip":
        data = data.get("vision_config") or {}
    elif data.get("model_type") != "siglip_vision_model":
        raise ValueError(f"{folder / 'config.json'}: model_type {data.get('model_type')!r} is not SigLIP; HumanOmni "
                         "0.5B uses google/siglip-base-patch16-224")
    data.pop("model_type", None)
    return SiglipVisionConfig(**data)


def read_audio_config(folder: Path) -> WhisperConfig:
    data = _read_json(folder / "config.json")
    if data.get("model_type") != "whisper":
        raise ValueError(f"{folder / 'config.json'}: model_type {data.get('model_type')!r} is not Whisper; HumanOmni "
                         "0.5B uses openai/whisper-large-v3")
    data.pop("model_type", None)
    return WhisperConfig(**data)


def find_bert_dir(checkpoint_dir: Path, explicit: str | os.PathLike | None) -> Path:
    """The BERT gate tokenizer folder: the explicit path, else ``<checkpoint>/bert``."""
    if explicit is not None:
        folder = _local_dir(explicit, "bert_tokenizer")
    else:
        folder = checkpoint_dir / "bert"
    if not (folder / "vocab.txt").is_file() and not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"no BERT tokenizer in {folder}: the HumanOmni gate reads the prompt with bert-base-uncased's tokenizer, "
            "which the released checkpoints do not ship. Put bert-base-uncased's vocab.txt (and "
            f"tokenizer_config.json) in {checkpoint_dir / 'bert'} or pass bert_tokenizer=<folder with vocab.txt>")
    return folder


def read_bert_config(folder: Path, weights: "WeightsFile") -> BertConfig:
    """BERT config from ``folder/config.json``, else inferred from the checkpoint's ``model.bert_model.*`` shapes."""
    if (folder / "config.json").is_file():
        data = _read_json(folder / "config.json")
        data.pop("model_type", None)
        return BertConfig(**data)
    shape = weights.shape
    try:
        vocab, hidden = shape(BERT_PREFIX + "embeddings.word_embeddings.weight")
        max_positions = shape(BERT_PREFIX + "embeddings.position_embeddings.weight")[0]
        type_vocab = shape(BERT_PREFIX + "embeddings.token_type_embeddings.weight")[0]
        intermediate = shape(BERT_PREFIX + "encoder.layer.0.intermediate.dense.weight")[0]
    except KeyError as err:
        raise ValueError(f"{weights.path}: no BERT weights ({err}) and no config.json in {folder}") from None
    layers = len({k.split(".")[4] for k in weights.keys() if k.startswith(BERT_PREFIX + "encoder.layer.")})
    # Head count is not visible in the shapes; bert-base uses 64-wide heads.
    heads = max(1, hidden // 64)
    logger.info("BERT config inferred from %s: hidden %d, %d layers, %d heads", weights.path, hidden, layers, heads)
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=intermediate, max_position_embeddings=max_positions,
                      type_vocab_size=type_vocab)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


# Tower folders hold the weights of the stand-alone models; map them to the HumanOmni key names.
# (prefix in the tower file, HumanOmni prefix); anything else in the file is reported as dropped.
TOWER_KEY_MAPS = {
    "vision": (("vision_model.", VISION_PREFIX + "vision_model."),
               *((name, VISION_PREFIX + "vision_model." + name)     # transformers 5.x SiglipVisionModel files
                 for name in ("embeddings.", "encoder.", "post_layernorm.", "head."))),
    "audio": (("encoder.", AUDIO_PREFIX + "encoder."), ("model.encoder.", AUDIO_PREFIX + "encoder.")),
}


class WeightsFile:
    """Lazy tensors of one folder's ``model.safetensors`` (single or sharded), keys optionally renamed."""

    def __init__(self, folder: Path, key_map: tuple[tuple[str, str], ...] = ()) -> None:
        self.folder = folder
        index_path = folder / "model.safetensors.index.json"
        single = folder / "model.safetensors"
        if single.is_file():
            files = {single: None}
            self.path = single
        elif index_path.is_file():
            shard_names = sorted(set(_read_json(index_path)["weight_map"].values()))
            files = {folder / name: None for name in shard_names}
            self.path = index_path
        else:
            raise FileNotFoundError(f"{folder}: no model.safetensors (or model.safetensors.index.json); convert "
                                    "pytorch_model.bin checkpoints to safetensors first")
        self._where: dict[str, tuple[Path, str]] = {}
        self._handles: dict[Path, Any] = {}
        self.dropped: list[str] = []
        for file in files:
            for name in self._handle(file).keys():
                target = _rename(name, key_map) if key_map else name
                if target is None:
                    self.dropped.append(f"{file.name}:{name}")
                else:
                    self._where[target] = (file, name)

    def _handle(self, file: Path):
        if file not in self._handles:      # memory-mapped; tensors are read one at a time
            self._handles[file] = safe_open(file, "pt")
        return self._handles[file]

    def keys(self) -> list[str]:
        return list(self._where)

    def get(self, key: str) -> torch.Tensor:
        file, name = self._where[key]
        return self._handle(file).get_tensor(name)

    def shape(self, key: str) -> list[int]:
        file, name = self._where[key]
        return list(self._handle(file).get_slice(name).get_shape())


def _rename(name: str, key_map: tuple[tuple[str, str], ...]) -> str | None:
    for source, target in key_map:
        if name.startswith(source):
            return target + name[len(source):]
    return None


def load_weights_file(folder: Path, key_map: tuple[tuple[str, str], ...] = ()) -> WeightsFile:
    return WeightsFile(Path(folder), key_map)
