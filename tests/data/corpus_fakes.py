"""Tiny fake corpus trees, named and laid out as the real corpora are: builders and the facts
the tests check against.

Each clip is a real 4-frame 16x16 mp4 (with or without a soundtrack) or a short wav, so that the
adapters' existence and audio checks meet real files. Trees hold a handful of clips only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from r1omni.labels import MAFW
from r1omni.media import write_audio, write_clip

_FRAMES = np.full((4, 16, 16, 3), 90, np.uint8)
_WAVE = (0.2 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.float32)


def make_clip(path: Path, audio: bool = True) -> Path:
    return write_clip(path, _FRAMES, 4, _WAVE if audio else None)


def make_wav(path: Path) -> Path:
    return write_audio(path, _WAVE)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- DFEW: clips 1..10, fold k tests clips 2k-1 and 2k; clip 10 is listed but not on disk. ---
DFEW_CLIPS = range(1, 11)
DFEW_MISSING = 10
DFEW_NO_FACE = 3


def dfew_label(clip: int) -> int:
    return (clip - 1) % 7 + 1


def dfew_fold(clip: int) -> int:
    return (clip + 1) // 2


def write_dfew_csv(path: Path, clips, pad: bool = False) -> Path:
    # pandas writes the id as a plain integer; one fold is written zero-padded to cover both.
    lines = ["video_name,label"] + [f"{str(c).zfill(5) if pad else c},{dfew_label(c)}" for c in clips]
    return write_text(path, "\n".join(lines) + "\n")


def build_dfew(root: Path) -> Path:
    for clip in DFEW_CLIPS:
        if clip != DFEW_MISSING:
            make_clip(root / "Clip" / "original" / f"{clip:05d}.mp4")
        if clip not in (DFEW_MISSING, DFEW_NO_FACE):
            faces = root / "Clip" / "clip_224x224" / f"{clip:05d}"
            faces.mkdir(parents=True)
            for i in (1, 2):
                (faces / f"{clip:05d}_{i}.jpg").write_bytes(b"")
    split_dir = root / "EmoLabel_DataSplit"
    for fold in range(1, 6):
        test = [c for c in DFEW_CLIPS if dfew_fold(c) == fold]
        train = [c for c in DFEW_CLIPS if dfew_fold(c) != fold]
        write_dfew_csv(split_dir / "test(single_labeled)" / f"set_{fold}.csv", test, pad=fold == 2)
        write_dfew_csv(split_dir / "train(single_labeled)" / f"set_{fold}.csv", train, pad=fold == 2)
    return root


# --- MAFW: clips 1..10 (fold k tests 2k-1, 2k), 00004 without audio, 00009 missing, and
# 00011 with a compound label in set_5's test list. ---
MAFW_CLIPS = range(1, 11)
MAFW_MISSING = 9
MAFW_SILENT = 4
MAFW_COMPOUND = (11, "anger_sadness")


def mafw_word(clip: int) -> str:
    return MAFW.raw[(clip - 1) % len(MAFW.raw)]


def build_mafw(root: Path) -> Path:
    for clip in MAFW_CLIPS:
        if clip != MAFW_MISSING:
            make_clip(root / "clips" / f"{clip:05d}.mp4", audio=clip != MAFW_SILENT)
    make_clip(root / "clips" / f"{MAFW_COMPOUND[0]:05d}.mp4")
    base = root / "Train & Test Set" / "single"
    for fold in range(1, 6):
        test = [c for c in MAFW_CLIPS if (c + 1) // 2 == fold]
        train = [c for c in MAFW_CLIPS if (c + 1) // 2 != fold]
        for split, clips in (("test", test), ("train", train)):
            plain = [f"{c:05d}.mp4 {mafw_word(c)}" for c in clips]
            captioned = [f"{c:05d}.mp4\t{mafw_word(c)}\t一位男士讲话。\tA man talks, clip {c}." for c in clips]
            if fold == 5 and split == "test":
                plain.append(f"{MAFW_COMPOUND[0]:05d}.mp4 {MAFW_COMPOUND[1]}")
                captioned.append(f"{MAFW_COMPOUND[0]:05d}.mp4\t{MAFW_COMPOUND[1]}\t两人。\tTwo people.")
            write_text(base / "no_caption" / f"set_{fold}" / f"{split}.txt", "\n".join(plain) + "\n")
            write_text(base / "with_caption" / f"set_{fold}" / f"{split}.txt", "\n".join(captioned) + "\n")
    return root


# --- RAVDESS: video zips unpacked under Video/, the audio zip under Audio_Speech_Actors_01-24/. ---
RAVDESS_VIDEO = {
    1: ["01-01-06-01-02-01-01.mp4", "02-01-06-01-02-01-01.mp4", "01-02-03-02-01-02-01.mp4",
        "01-01-02-01-01-01-01.mp4"],
    2: ["01-01-08-02-02-02-02.mp4"],
    5: ["01-01-03-01-01-01-05.mp4"],
    24: ["01-01-05-02-01-01-24.mp4"],
}
RAVDESS_AUDIO = {1: ["03-01-06-01-02-01-01.wav"], 24: ["03-01-01-01-01-02-24.wav"]}
# (folder actor, file name, expected skip reason)
RAVDESS_STRAYS = [
    (1, "notes.txt", "malformed filename"),
    (1, "01-01-09-01-01-01-01.mp4", "unknown emotion code '09'"),
    (1, "01-01-01-01-01-01-02.mp4", "actor field does not match its Actor_XX folder"),
]


def build_ravdess(root: Path) -> Path:
    for actor, names in RAVDESS_VIDEO.items():
        for name in names:
            make_clip(root / "Video" / f"Actor_{actor:02d}" / name, audio=not name.startswith("02-"))
    for actor, names in RAVDESS_AUDIO.items():
        for name in names:
            make_wav(root / "Audio_Speech_Actors_01-24" / f"Actor_{actor:02d}" / name)
    for actor, name, _reason in RAVDESS_STRAYS:
        path = root / "Video" / f"Actor_{actor:02d}" / name
        if name.endswith(".mp4"):
            make_clip(path)
        else:
            write_text(path, "stray\n")
    return root


# --- EMER: a v1 tree and a v2 (OV-MERD) tree with an open-set file. ---
EMER_V1_CSV = """names,emotions,subtitles,reasons
sample_00000007,happy,"Then let's meet, okay? Well, goodbye.","She smiles and nods; her voice is bright."
sample_00000033,worried,"How could a group of rookies win?","A furrowed brow and a fast, low voice."
sample_00000070,sad,"Have you never been married?","Reddened eyes and a weak voice."
sample_00000099,angry,"Get out!","Shouting."
"""
EMER_V2_CSV = '''name,chinese,english
sample_00000000,在视频中，男性医生先严肃后微笑。,"In the video, the doctor is serious, then smiles. In the text, the subtitle reads: ""How would I know!"""
sample_00000033,在视频中，男性表情紧张。,"In the video, the man looks tense."
sample_00000039,在视频中，女性瞪眼。,"In the video, the woman glares."
sample_00000070,在视频中，男性眼眶泛红。,"In the video, his eyes are reddened."
'''
EMER_OPENSET_CSV = """name,openset
sample_00000000,"['pleasurable', 'relaxed', 'joyful', 'happy']"
sample_00000033,"['pessimism', 'worry']"
sample_00000070,['sad']
"""


def build_emer_v1(root: Path) -> Path:
    write_text(root / "gt-eng.csv", EMER_V1_CSV)
    for name in ("sample_00000007", "sample_00000033", "sample_00000070"):  # 99 is missing
        make_clip(root / "video" / f"{name}.mp4")
    return root


def build_emer_v2(root: Path) -> Path:
    write_text(root / "dataset-v2" / "final-EMER-reason.csv", EMER_V2_CSV)
    write_text(root / "dataset-v2" / "check-openset.csv", EMER_OPENSET_CSV)
    for name in ("sample_00000000", "sample_00000033", "sample_00000039", "sample_00000070"):
        make_clip(root / "video" / f"{name}.mp4")
    return root


def build_clips(root: Path) -> Path:
    """A folder with a few clips for the manifest and LLaVA tests: a.mp4, b.mp4, sub/c.wav."""
    make_clip(root / "a.mp4")
    make_clip(root / "b.mp4")
    make_wav(root / "sub" / "c.wav")
    return root


# --- CREMA-D: AudioWAV and VideoFlash. write_clip has no flv writer, so the .flv files are mkv
# clips renamed (the adapter does not decode them). ---
CREMAD_NAMES = ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1091_WSI_NEU_LO", "1076_MTI_SAD_XX"]
CREMAD_STRAYS = [("1001_DFA_BOR_XX", "unknown emotion code 'BOR'"), ("readme", "malformed filename")]
CREMAD_DEMOGRAPHICS = ("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
                       "1002,21,Female,Caucasian,Not Hispanic\n")


def build_cremad(root: Path) -> Path:
    for name in CREMAD_NAMES + [CREMAD_STRAYS[0][0]]:
        make_wav(root / "AudioWAV" / f"{name}.wav")
        clip = make_clip(root / "VideoFlash" / f"{name}.mkv")
        clip.rename(clip.with_suffix(".flv"))
    write_text(root / "AudioWAV" / "readme.wav", "stray\n")
    write_text(root / "VideoDemographics.csv", CREMAD_DEMOGRAPHICS)
    return root


# --- MELD: two train utterances, one dev utterance (and one listed without its video), one test. ---
MELD_HEADER = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
               "StartTime,EndTime\n")
MELD_CSV = {
    "train": MELD_HEADER
    + '1,"Oh my God, he’s lost it.",Phoebe,sadness,negative,0,0,4,7,"00:20:57,256","00:21:00,049"\n'
    + '2,What?,Monica,surprise,negative,0,1,4,7,"00:21:01,927","00:21:03,261"\n',
    "dev": MELD_HEADER + '1,You’re a genius!,Chandler,joy,positive,0,0,4,4,"00:12:32,334","00:12:33,960"\n'
                         '2,Hey.,Phoebe,neutral,neutral,0,1,4,4,"0:12:43,012","0:12:44,074"\n',
    "test": MELD_HEADER + '1,Fine.,Ross,anger,negative,0,0,2,7,"0:19:29,588","0:19:29,727"\n',
}
MELD_VIDEOS = {"train": ["dia0_utt0", "dia0_utt1"], "dev": ["dia0_utt0"], "test": ["dia0_utt0"]}
MELD_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}


def build_meld(root: Path) -> Path:
    for split, text in MELD_CSV.items():
        write_text(root / f"{split}_sent_emo.csv", text)
    for split, names in MELD_VIDEOS.items():
        # the test videos sit in test/, as when each split's tarball is unpacked into its own folder
        folder = root / ("test" if split == "test" else "") / MELD_DIRS[split]
        for name in names:
            make_clip(folder / f"{name}.mp4")
    return root
