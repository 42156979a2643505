import pytest

from r1omni.template import PROMPTS, get_prompt, parse_completion, render_completion, with_subtitle


def test_prompts_are_verbatim():
    assert "most obvious to you?  Output the thinking" in PROMPTS["inference"]   # two spaces
    assert PROMPTS["train"].endswith("\nOutput the thinking process in <think> </think> and final emotion in "
                                     "<answer> </answer> tags.")
    assert PROMPTS["eval"].endswith("most clearly expressed?\n")
    assert get_prompt("inference") == PROMPTS["inference"] and get_prompt("free text") == "free text"


def test_render_then_parse_round_trip():
    text = render_completion("The mouth turns up.", "happy")
    parsed = parse_completion(text)
    assert (parsed.think, parsed.answer, parsed.label, parsed.format_ok) == ("The mouth turns up.", "happy", "happy", True)
    assert render_completion(None, "sad") == "sad"


@pytest.mark.parametrize("text, answer, label, strict_ok, paper_ok", [
    ("<think>a</think><answer>happy</answer>", "happy", "happy", True, True),
    ("<think>a</think>\n\n<answer> Sad </answer>", "Sad", "sad", True, True),
    ("sad", "sad", "sad", False, False),
    ("<answer>sad</answer>", "sad", "sad", False, False),
    ("<think>a</think>", "<think>a</think>", None, False, False),
    ("<think>a</think><answer>sad</answer> trailing", "sad", "sad", False, False),
    (" <think>a</think><answer>sad</answer>", "sad", "sad", False, False),
    ("<think></think><answer>sad</answer>", "sad", "sad", False, True),
    ("<think>a</think><answer></answer>", "", None, False, True),
    ("<think>a</think><answer>sad</answer><answer>happy</answer>", "sad", "sad", False, True),
    ("<think>a<think>b</think></think><answer>sad</answer>", "sad", "sad", False, True),
    ("<THINK>a</THINK><ANSWER>sad</ANSWER>", "<THINK>a</THINK><ANSWER>sad</ANSWER>", None, False, False),
    ("<think>a</think><answer>sad\n</answer>", "<think>a</think><answer>sad\n</answer>", None, True, True),
])
def test_parse_table(text, answer, label, strict_ok, paper_ok):
    parsed = parse_completion(text)
    assert parsed.answer == answer
    assert parsed.label == label
    assert parsed.format_ok is strict_ok
    assert parsed.paper_format_ok is paper_ok


def test_subtitle_goes_before_question():
    assert with_subtitle("Q?", None) == "Q?"
    assert with_subtitle("Q?", " hello ") == 'The subtitle of the video reads: "hello"\nQ?'


def test_parse_rejects_non_strings():
    with pytest.raises(TypeError):
        parse_completion(None)  # type: ignore[arg-type]
