"""The demo report's modality-balance section (``r1omni.demo.report``), from a results dict alone (fast)."""

from __future__ import annotations

from r1omni.demo.report import _balance_lines


def balance(face, changes, ratio, probe) -> dict:
    return {"split": "id", "face_only_accuracy": face, "voice_only_accuracy": 0.5,
            "answer_change": {"no_video": changes, "no_audio": 0.25, "n": 14, "source": "attribution"},
            "token_norms": {"video_to_text": ratio, "audio_to_text": 2.0, "n": 70},
            "face_probe": {"accuracy": probe, "chance": 0.14}}


def test_one_row_per_stage_with_its_numbers():
    results = {"variants": {"base": {"balance": balance(0.0, 0.0, 12.5, 0.29)},
                            "label_sft": {"balance": balance(0.143, None, 11.96, None)},
                            "rlvr": {"id": {}}}}   # a variant without a balance record gets no row
    lines = _balance_lines(results)
    assert "## Modality balance (id)" in lines and any("14 clips" in line for line in lines)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| stage")]
    assert rows == ["| base (instruction pre-trained) | 0.00 | 0.50 | 0.00 | 0.25 | 12.5 | 2.0 | 0.29 (0.14) |",
                    "| label SFT (MAFW-DFEW-SFT) | 0.14 | 0.50 | – | 0.25 | 12.0 | 2.0 | – (0.14) |"]
    assert _balance_lines({"variants": {"base": {}}}) == []


def test_the_attribution_table_gives_the_video_decisive_share_of_face_carried_clips():
    from r1omni.demo.report import _attribution_lines

    summary = {"attribution_accuracy": 0.5, "decisive": {"video": 0.25, "audio": 0.75},
               "no_audio": {"flip_rate": 0.75}, "no_video": {"flip_rate": 0.25},
               "by_true_modality": {"video": {"n": 4, "decisive": {"video": 1, "neither": 3}}}}
    older = {k: v for k, v in summary.items() if k != "by_true_modality"}   # a results.json from before
    rows = [line for line in _attribution_lines({"variants": {"rlvr": {"attribution": summary},
                                                              "label_sft": {"attribution": older}}})
            if line.startswith("| ") and not line.startswith("| variant")]
    assert rows[0].endswith("| 0.25 | 0.25 (n = 4) |") and rows[1].endswith("| 0.25 | – |")
    assert rows[0].startswith("| RLVR") and "| 0.50 | – | 0.25 |" in rows[0]    # no media-decided share yet


def test_the_report_says_how_a_stream_was_removed_and_scores_the_clips_the_media_decide():
    from r1omni.demo.report import _attribution_lines

    summary = {"attribution_accuracy": 0.5, "decisive": {}, "no_audio": {"flip_rate": 0.0},
               "no_video": {"flip_rate": 0.0}, "media_decided": {"n": 3, "named_correctly": 2 / 3}}
    results = {"variants": {"rlvr": {"attribution": summary, "balance": balance(0.5, 0.0, 1.0, 0.3)}},
               "attribution_removal": {"method": "reference", "reference": "synth-train-00002"}}
    lines = _attribution_lines(results) + _balance_lines(results)
    assert sum("reference clip's in its place (synth-train-00002, labelled neutral)" in line for line in lines) == 2
    assert "| 0.50 | 0.67 (n = 3) |" in next(line for line in lines if line.startswith("| RLVR"))
    assert any("grey frames / silence" in line for line in _attribution_lines({"variants": results["variants"]}))
