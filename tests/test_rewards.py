import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1omni.rewards import REWARD_FUNCTIONS, accuracy_reward, format_reward, resolve_rewards, total_reward

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
    assert set(REWARD_FUNCTIONS) == {"accuracy", "format"}


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
