import pytest

from r1omni.labels import DFEW, LABEL_SETS, MAFW, RAVDESS, SYNONYMS, get_label_set, normalize_label, strict_label


@pytest.mark.parametrize("text, expected", [
    ("happiness", "happy"), ("Happy", "happy"), ("  HAPPY.  ", "happy"), ("joy", "happy"),
    ("anxiety", "anxious"), ("fearful", "fear"), ("surprised", "surprise"), ("Surprise!", "surprise"),
    ("sadness", "sad"), ("anger", "angry"), ("contempt", "contemptuous"), ("disappointment", "disappointed"),
    ("helplessness", "helpless"), ("The emotion is: Angry", "angry"), ("ｈａｐｐｙ", "happy"),
    ("", None), ("banana", None), ("happy and sad", None), (None, None),
])
def test_normalize_label_table(text, expected):
    assert normalize_label(text) == expected


def test_normalize_label_respects_closed_set():
    assert normalize_label("calm", RAVDESS) == "calm"
    assert normalize_label("calm", DFEW) is None
    assert normalize_label("contempt", DFEW.labels) is None


def test_strict_label_is_exact_after_lowercase_strip():
    assert strict_label(" Fear ", DFEW) == "fear"
    assert strict_label("fearful", DFEW) is None
    assert strict_label(None, DFEW) is None


def test_every_canonical_label_maps_to_itself():
    for label_set in LABEL_SETS.values():
        for label in label_set.labels:
            assert normalize_label(label) == label, label
        for raw, canonical in zip(label_set.raw, label_set.labels):
            assert label_set.from_raw(raw) == canonical


def test_label_set_sizes():
    assert (len(DFEW), len(MAFW), len(RAVDESS)) == (7, 11, 8)
    assert set(DFEW.labels) < set(MAFW.labels)
    assert all(value in {l for s in LABEL_SETS.values() for l in s.labels} for value in SYNONYMS.values())
    with pytest.raises(KeyError, match="known"):
        get_label_set("nope")
