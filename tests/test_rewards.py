import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1omni.claims import PHRASES
from r1omni.rewards import (
    REWARD_FUNCTIONS,
    accuracy_reward,
    consistency_reward,
    format_reward,
    grounding_reward,
    resolve_rewards,
    total_reward,
)

JUNK_100K = "x<think>" * 12_500


# (completion, label, format strict, format paper, acc exact, acc normalized)
TABLE = [
    ("<think>She smiles.</think>\n<answer>happy</answer>", "happy", 1, 1, 1, 1),
    ("<think>She smiles.</think><answer>Happy</answer>", "happy", 1, 1, 0, 1),            # upper case
    ("<think>She smiles.</think><answer>happiness</answer>", "happy", 1, 1, 0, 1),        # synonym
    ("<think>x</think><answer> happy </answer>", "happy", 1, 1, 1, 1),                    # spaces
    ("happy", "happy", 0, 0, 1, 1),                                                       # missing tags
    ("<answer>happy</answer>", "happy", 0, 0, 1, 1),                                      # missing think
    ("<think>x</think>happy", "happy", 0, 0, 0, 0),                                       # missing answer tags
    ("<think>x</think><answer>happy</answer>\nDone.", "happy", 0, 0, 1, 1),               # text after answer
    ("<think>x</think><answer></answer>", "happy", 0, 1, 0, 0),                           # empty answer
    ("<think>x</think><answer>sad</answer><answer>happy</answer>", "happy", 0, 1, 0, 0),  # repeated tags
    ("<think><think>x</think></think><answer>happy</answer>", "happy", 0, 1, 1, 1),       # nested
    ("<think>x</think><answer>ｈａｐｐｙ</answer>", "happy", 1, 1, 0, 1),                   # unicode width
    ("<think>x</think><answer>喜悦</answer>", "happy", 1, 1, 0, 0),                         # unknown word
    ("<think>x</think><answer>happy</answer>", None, 1, 1, 0, 0),                         # unlabelled row
    (JUNK_100K, "happy", 0, 0, 0, 0),                                                     # 100 kB junk
    ("", "happy", 0, 0, 0, 0),
]


@pytest.mark.parametrize("completion, label, fmt, fmt_paper, acc, acc_norm", TABLE)
def test_reward_table(completion, label, fmt, fmt_paper, acc, acc_norm):
    assert format_reward([completion]) == [fmt]
    assert format_reward([completion], paper_regex=True) == [fmt_paper]
    assert accuracy_reward([completion], label=[label]) == [acc]
    assert accuracy_reward([completion], label=[label], normalize=True) == [acc_norm]
    assert total_reward([completion], label=[label]) == [fmt + acc]


def test_rewards_accept_chat_messages_and_ignore_extra_columns():
    completions = [[{"role": "assistant", "content": "<think>x</think><answer>sad</answer>"}]]
    assert format_reward(completions, label=["sad"], video=["a.mp4"]) == [1.0]
    assert accuracy_reward(completions, label=["sad"], subtitle=[None]) == [1.0]
    assert grounding_reward(completions, cues=[{"pitch": 0.8}], label=["sad"]) == [0.0]
    assert consistency_reward(completions, label=["sad"], cues=[None]) == [0.0]
    assert set(REWARD_FUNCTIONS) == {"accuracy", "format", "grounding", "consistency"}


def test_accuracy_reward_checks_alignment():
    with pytest.raises(ValueError, match="2 completions but 1 labels"):
        accuracy_reward(["a", "b"], label=["sad"])


def test_junk_is_fast():
    start = time.perf_counter()
    format_reward([JUNK_100K] * 20, paper_regex=True)
    accuracy_reward([JUNK_100K] * 20, label=["sad"] * 20, normalize=True)
    assert time.perf_counter() - start < 5.0  # a catastrophic-backtracking guard, not a benchmark


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(list("<>/ \n\tabcdefghijklmnopqrstuvwxyzHAPY") +
                                   ["<think>", "</think>", "<answer>", "</answer>", "happy", "sad"]),
                    max_size=60).map("".join) | st.text(max_size=200),
       label=st.sampled_from(["happy", "sad", "neutral", None]))
def test_rewards_never_raise_and_stay_in_range(text, label):
    for normalize in (False, True):
        acc = accuracy_reward([text], label=[label], normalize=normalize)[0]
        assert acc in (0.0, 1.0)
    for paper in (False, True):
        assert format_reward([text], paper_regex=paper)[0] in (0.0, 1.0)
    assert 0.0 <= total_reward([text], label=[label])[0] <= 2.0


def test_resolve_binds_options_and_takes_callables_passed_in():
    def shouting(completions, **columns):
        return [float(text.isupper()) for text in completions]

    terms = resolve_rewards({"accuracy": 2.0, "format": 1.0, "shouting": 0.5}, accuracy_normalize=True,
                            format_paper_regex=True, extra={"shouting": shouting})
    assert [(t.name, t.weight) for t in terms] == [("accuracy", 2.0), ("format", 1.0), ("shouting", 0.5)]
    texts = ["<think></think><answer>Sadness</answer>", "ANGRY"]
    assert [t.function(texts, label=["sad", "sad"]) for t in terms] == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def test_resolve_rejects_unknown_and_shadowing_names():
    with pytest.raises(ValueError, match=r"unknown reward\(s\) \['acuracy'\].*reward_functions="):
        resolve_rewards({"acuracy": 1.0})
    with pytest.raises(ValueError, match=r"\['format'\] are built in"):
        resolve_rewards({"format": 1.0}, extra={"format": lambda completions, **columns: [0.0]})
    with pytest.raises(ValueError, match="at least one"):
        resolve_rewards({})


# A happy face (mouth up, lips parted) and a low, soft voice; brow_raise etc. unknown.
CUES = {"face": {"mouth_curve": 0.9, "mouth_open": 0.45}, "voice": {"pitch": -0.7, "loudness": 0.1}}


def completion(think: str, answer: str = "happy") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


@pytest.mark.parametrize("think, expected", [
    ("The mouth corners turn up and the pitch is low.", 1.0),                       # all true
    ("The mouth corners turn up. The lips curve upward. The pitch is low.", 1.0),    # a repeat counts once
    ("The mouth corners turn down and the pitch is high.", -1.0),                    # all false
    ("The mouth corners turn up, the lips are parted, the pitch is high.", 1 / 3),  # 2 true, 1 false
    ("The mouth corners turn up and the pitch is high.", 0.0),                       # one of each
    ("She seems cheerful and speaks.", 0.0),                                         # no checkable claim
    ("The brows are raised.", 0.0),                                                  # cue not known
    ("", 0.0),                                                                       # empty reasoning
    # Every pitch level at once: the claims contradict each other, all count as false.
    ("The pitch is low, the pitch is medium, the pitch is high.", -1.0),
    ("The mouth corners turn up. The pitch is low, the pitch is high.", -1 / 3),
])
def test_grounding_reward_table(think, expected):
    assert grounding_reward([completion(think)], cues=[CUES]) == [pytest.approx(expected)]


def test_grounding_reward_without_cues_pays_nothing_and_checks_alignment():
    text = completion("The pitch is low.")
    assert grounding_reward([text, text], cues=[None, {}]) == [0.0, 0.0]
    assert grounding_reward([text]) == [0.0]
    assert grounding_reward(["The pitch is low."], cues=[CUES]) == [0.0]   # no think block: nothing claimed
    with pytest.raises(ValueError, match="2 completions but 1 cue rows"):
        grounding_reward([text, text], cues=[CUES])


@pytest.mark.parametrize("think, answer, expected", [
    ("The face suggests happiness.", "happy", 1.0),
    ("The voice hints at sadness, but the face points to happiness.", "happy", 1.0),   # the last word counts
    ("The facial cues suggest surprise. Therefore, the emotion is sad.", "sad", 1.0),
    ("The facial cues suggest surprise.", "sad", 0.0),                                   # argues one, answers another
    ("The mouth corners turn up.", "happy", 0.0),                                        # argues for nothing
    ("The face suggests happiness.", "gibberish", 0.0),
])
def test_consistency_reward_table(think, answer, expected):
    assert consistency_reward([completion(think, answer)]) == [expected]


CLAIM_WORDINGS = [phrase for levels in PHRASES.values() for phrases in levels.values() for phrase in phrases]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(CLAIM_WORDINGS + ["<think>", "</think>", "<answer>", "happy", ". ", "sad"])
                      | st.text(max_size=30), max_size=20).map(" ".join),
       cues=st.sampled_from([CUES, None, {"voice": {"pitch": 0.0}}]))
def test_grounding_and_consistency_never_raise_and_stay_in_range(parts, cues):
    assert -1.0 <= grounding_reward([parts], cues=[cues])[0] <= 1.0
    assert -1.0 <= grounding_reward([completion(parts)], cues=[cues])[0] <= 1.0
    assert consistency_reward([parts])[0] in (0.0, 1.0)
