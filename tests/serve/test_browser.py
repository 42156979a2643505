"""The web page end to end in headless Chromium: pick a clip, see it play, read the emotion, the
highlighted reasoning and the modality bars.

Debian's Chromium (/usr/bin/chromium, package ``chromium``) driven by Playwright's Python API;
Playwright's own browser downloads are not used. Skipped where that binary is absent.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from serve_fakes import TAUGHT_THINK

from r1omni.serve import ServeConfig, create_app

CHROMIUM = Path("/usr/bin/chromium")
# Headless flags for this machine's closed network (see the project's machine notes): no GPU, no
# QUIC, none of Chromium's background calls home. Playwright adds a fresh profile (--user-data-dir).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"),
]


@pytest.fixture
def page(policy, upload_dir, live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    app = create_app(policy, ServeConfig(label_set="synth", max_new_tokens=64, upload_dir=str(upload_dir),
                                         model_name="tiny-angry"))
    with live_server(app) as base_url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.problems = []
        page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
        page.on("pageerror", lambda err: page.problems.append(str(err)))
        page.goto(base_url)
        yield page
        browser.close()


def test_page_answers_for_an_uploaded_clip(page, media_dir, tmp_path):
    page.locator("#model-info", has_text="tiny-angry").wait_for()
    assert "angry" in page.text_content("#model-info")

    page.set_input_files("#file-input", str(media_dir / "clip.mp4"))
    page.locator("#result").wait_for(state="visible")
    # The clip plays from a local object URL.
    assert page.get_attribute("#preview video", "src").startswith("blob:")
    assert page.text_content("#label") == "angry"
    assert page.locator("#format").text_content() == "well-formed"
    # The reasoning is all there, its visual and audio clauses marked in two colours.
    assert "".join(page.locator("#reasoning .seg").all_text_contents()) == TAUGHT_THINK
    # Each cue claim carries its verdict against the cues measured on the clip: the brows are not
    # measured, the loudness is (the clip has a soundtrack).
    marks = page.locator("#reasoning .verdict")
    assert marks.count() == 2
    assert marks.nth(0).get_attribute("data-verdict") == "not checkable"
    assert marks.nth(1).get_attribute("data-verdict") in ("supported", "contradicted")
    assert "measured:" in marks.nth(1).get_attribute("title")
    visual = page.locator("#reasoning .seg-visual")
    audio = page.locator("#reasoning .seg-audio")
    assert visual.count() == 1 and "brows" in visual.text_content()
    assert audio.count() == 1 and "voice" in audio.text_content()
    colours = {kind: page.eval_on_selector(f"#reasoning .seg-{kind}", "e => getComputedStyle(e).backgroundColor")
               for kind in ("visual", "audio")}
    assert colours["visual"] != colours["audio"]
    assert page.locator("#attribution-panel").is_hidden()
    assert "Answered in" in page.text_content("#status")

    # With "explain" ticked, one bar per modality.
    page.check("#explain")
    page.click("#analyse")
    page.locator("#attribution-panel").wait_for(state="visible")
    rows = page.locator("#attribution .bar-row")
    assert rows.count() == 3
    assert [rows.nth(i).get_attribute("data-modality") for i in range(3)] == ["video", "audio", "both"]
    widths = [page.eval_on_selector(f'.bar-row[data-modality="{m}"] .bar-fill', "e => e.style.width")
              for m in ("video", "audio", "both")]
    assert all(w.endswith("%") for w in widths) and max(float(w[:-1]) for w in widths) == pytest.approx(50)
    assert page.text_content("#decisive").startswith("Decisive modality:")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert not page.problems, page.problems


def test_page_takes_a_dropped_audio_file_and_reports_errors(page, media_dir):
    # A drop as the browser delivers one: a DataTransfer holding the file, on the drop zone.
    page.evaluate("""([name, encoded]) => {
        const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }""", ["voice.wav", base64.b64encode((media_dir / "voice.wav").read_bytes()).decode()])
    page.locator("#result").wait_for(state="visible")
    assert page.get_attribute("#preview audio", "src").startswith("blob:")
    assert page.text_content("#label") == "angry"

    page.set_input_files("#file-input", str(media_dir / "corrupt.mp4"))
    page.locator("#status.error").wait_for()
    assert page.text_content("#status").startswith("Error 422: corrupt.mp4: ")
    assert page.locator("#result").is_hidden()
    # The failed request logs a console error for its 422; nothing else may go wrong.
    assert all("422" in problem for problem in page.problems), page.problems


def test_page_draws_a_long_recording_as_a_timeline(page, tmp_path):
    from real_media import UTTERANCES, recording, require_espeak

    require_espeak()
    clip = recording(tmp_path / "session.mp4", seconds=30, utterances=((5.5, UTTERANCES[0][1]),))
    page.locator("#model-info", has_text="tiny-angry").wait_for()
    page.check("#timeline-mode")
    page.fill("#segment-seconds", "5")
    page.check("#transcribe")
    page.set_input_files("#file-input", str(clip))
    page.locator("#timeline-summary", has_text="windows").wait_for(timeout=120_000)
    windows = page.locator("#timeline .window")
    assert windows.count() == 6
    assert [float(windows.nth(i).get_attribute("data-start")) for i in range(6)] == [0, 5, 10, 15, 20, 25]
    assert page.get_attribute("#timeline-progress", "value") == page.get_attribute("#timeline-progress", "max") == "6"
    lefts = [page.eval_on_selector(f"#timeline .window:nth-child({i + 1})", "e => parseFloat(e.style.left)")
             for i in range(6)]
    assert lefts == pytest.approx([0, 100 / 6, 200 / 6, 300 / 6, 400 / 6, 500 / 6], abs=0.5)
    assert "heard:" in windows.nth(1).get_attribute("title")   # the utterance at 5.5 s
    assert page.text_content("#status").startswith("Timeline of 6 windows")
    # A click plays the recording from that window's start.
    windows.nth(2).click()
    page.wait_for_function("() => document.getElementById('player').currentTime >= 10")
    assert page.locator("#result").is_hidden()
    assert not page.problems, page.problems


@pytest.mark.parametrize("docs, rendered", [("docs", ".swagger-ui .opblock-summary-path"), ("redoc", "redoc h1")])
def test_api_docs_load_nothing_from_another_host(page, docs, rendered):
    """/docs (Swagger UI) and /redoc run on a closed network: every script, stylesheet and icon, and every
    request the page makes, comes from this server."""
    from urllib.parse import urlsplit

    origin = urlsplit(page.url)._replace(path="", query="", fragment="").geturl()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{origin}/{docs}")
    page.locator(rendered).first.wait_for()
    if docs == "docs":
        assert page.locator(".opblock-summary-path", has_text="/v1/chat/completions").count() == 1
    else:
        assert "/v1/chat/completions" in page.content()
    sources = page.eval_on_selector_all("script[src], link[href], img[src]",
                                        "nodes => nodes.map(n => n.src || n.href)")
    assert any(src.endswith(".js") for src in sources), sources
    assert all(src.startswith(origin + "/") for src in sources), sources
    assert requested and all(url.startswith((origin + "/", "data:", "blob:")) for url in requested), requested
    assert not page.problems, page.problems
