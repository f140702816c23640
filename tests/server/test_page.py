"""The review page in real headless Chromium against `speaker-memory serve` with the bundled
models (issue 10's flows). The flows run in order on one server, one browser and one tab:
each starts from what the one before it left, as a person would use the page.

dev08's opening has two new voices, bf_emma and am_fenrir; bf_emma is named "Nick". In
dev04's opening she says "...about six percent over budget...", so she comes back as Nick
there and a search for "budget" said by Nick finds her. Ground truth (who speaks when) comes
from the excerpts' transcript JSON, never from what the page shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from inference.audio import decode, wav_bytes
from tests.server.browser import SCREENSHOTS, launch
from tests.server.tests_support import serve_subprocess
from tests.testdata import dev_conversation, enrollment_clip, reference_speaker

pytestmark = [pytest.mark.models, pytest.mark.slow]

FIRST, LATER, VOICE, NAME = "dev08-start", "dev04-start", "bf_emma", "Nick"
PROCESSING_MS = 600_000
"""Processing a 30 s excerpt with the real models, on a busy 2-core machine."""
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
"""The README's screenshots, made here from the real page."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for base, _ in serve_subprocess(tmp_path_factory.mktemp("page"), token=None):
        yield base


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Chromium's fake microphone says: dev04's opening (Nick on the budget), as the WAV
    file the fake device reads."""
    path = tmp_path_factory.mktemp("microphone") / f"{LATER}.wav"
    path.write_bytes(wav_bytes(decode(dev_conversation(LATER))))
    return path


@pytest.fixture(scope="module")
def browser(playwright: Playwright, microphone: Path) -> Iterator[Browser]:
    browser = launch(playwright, "--use-fake-ui-for-media-stream",
                     "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={microphone}%noloop")
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def tab(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900},
                                  permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def page(tab: Page, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The shared tab; its screen is saved after each test, pass or fail."""
    errors: list[str] = []

    def on_error(error: Exception) -> None:
        errors.append(str(error))

    tab.on("pageerror", on_error)
    yield tab
    tab.remove_listener("pageerror", on_error)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    assert not errors, errors  # an uncaught exception in the page's own code


def api(server: str, path: str) -> Any:
    response = httpx.get(f"{server}/api/v1{path}", timeout=30)
    response.raise_for_status()
    return response.json()


def upload(page: Page, name: str) -> int:
    """Upload one excerpt through the Upload tab; watch its progress reach 100%; open it."""
    page.goto("/#/upload")
    page.locator(".uploads").wait_for(state="attached")
    # Every value the progress bar shows, as the page sets it from the job's progress.
    page.evaluate("""() => {
        window.progressSeen = [];
        new MutationObserver((changes) => {
            for (const { target } of changes) {
                if (target.tagName === "PROGRESS") window.progressSeen.push(target.value);
            }
        }).observe(document.querySelector(".uploads"),
                   { attributes: true, subtree: true, attributeFilter: ["value"] });
    }""")
    page.get_by_label("Speakers (if known)").fill("2")
    page.locator("#files").set_input_files(dev_conversation(name))
    item = page.locator(".upload-item", has_text=dev_conversation(name).name)
    expect(item).to_have_class(re.compile(r"\bdone\b"), timeout=PROCESSING_MS)
    assert item.locator("progress").evaluate("bar => bar.value") == 100
    seen = page.evaluate("window.progressSeen")
    assert any(0 < value < 100 for value in seen), seen  # the job's own progress, not a jump
    item.get_by_role("link", name="Open").click()
    expect(page.locator(".transcript .segment").first).to_be_visible()
    match = re.search(r"#/conversation/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


def lanes(page: Page) -> list[str]:
    return page.locator(".timeline .lane-name").all_inner_texts()


def name_voice(page: Page, segment_id: int, name: str) -> None:
    page.locator(f"#seg-{segment_id}").get_by_role("button", name="Who is this?").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_role("textbox").fill(name)
    dialog.get_by_role("button", name="Name").click()
    expect(page.locator("dialog[open]")).to_have_count(0)


def expect_labels(page: Page, segment_ids: list[int], label: str) -> None:
    """Each of these transcript rows shows `label` (waiting for the page to redraw)."""
    rows = page.locator(", ".join(f"#seg-{i} .speaker" for i in segment_ids))
    expect(rows).to_have_text([label] * len(segment_ids))


class Flow:
    """What the flows hand on to the next one."""

    first: int
    later: int
    her: dict[str, Any]


flow = Flow()


def test_1_upload_shows_progress_transcript_and_two_speakers(page: Page, server: str) -> None:
    flow.first = upload(page, FIRST)
    assert len(lanes(page)) == 2
    speakers = {s.get_attribute("data-speaker-id")
                for s in page.locator(".transcript .segment").all()}
    assert len(speakers) == 2
    # The timeline draws one bar per segment with a speaker, in its speaker's lane.
    segments = api(server, f"/conversations/{flow.first}")["segments"]
    assert page.locator(".timeline .bar").count() == sum(1 for s in segments if s["speaker"])


def test_2_naming_a_voice_relabels_everywhere_and_undo_restores(page: Page, server: str) -> None:
    segments = api(server, f"/conversations/{flow.first}")["segments"]
    hers = [s for s in segments if reference_speaker(FIRST, s["start"], s["end"]) == VOICE]
    flow.her = max(hers, key=lambda s: len(s["text"]))
    unknown = flow.her["speaker"]
    assert unknown["kind"] == "unknown"
    voice = [s["id"] for s in segments if s["speaker"] and s["speaker"]["id"] == unknown["id"]]

    name_voice(page, flow.her["id"], NAME)
    expect(page.locator("#notice")).to_contain_text("relabelled")
    expect_labels(page, voice, NAME)
    assert NAME in lanes(page)
    assert unknown["label"] not in page.locator(".transcript").inner_text()
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=DOCS / "conversation.png")

    page.get_by_role("link", name="Speakers", exact=True).click()
    row = page.locator(".speakers tbody tr", has_text=NAME)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("named")
    page.screenshot(path=DOCS / "speakers.png")

    page.go_back()
    undo = page.locator("#undo")
    expect(undo).to_contain_text(NAME)  # says what it will reverse
    undo.click()
    expect(page.locator("#notice")).to_contain_text("Undid")
    expect_labels(page, voice, unknown["label"])
    assert NAME not in lanes(page)

    name_voice(page, flow.her["id"], NAME)  # named again, for the flows that follow
    expect(page.locator(f"#seg-{flow.her['id']} .speaker")).to_have_text(NAME)


def test_3_a_later_upload_recognises_the_named_voice(page: Page) -> None:
    flow.later = upload(page, LATER)
    assert NAME in lanes(page)


def test_4_search_by_speaker_jumps_to_the_segment(page: Page, server: str) -> None:
    page.get_by_role("link", name="Conversations", exact=True).click()
    page.get_by_label("Search", exact=True).fill("budget")
    page.get_by_label("Speaker", exact=True).select_option(label=NAME)
    page.get_by_role("button", name="Search", exact=True).click()
    hit = page.locator(".hit", has_text="budget").first
    expect(hit).to_contain_text(NAME)
    segment_id = int(hit.get_attribute("data-segment") or 0)
    segment = next(s for s in api(server, f"/conversations/{flow.later}")["segments"]
                   if s["id"] == segment_id)
    assert reference_speaker(LATER, segment["start"], segment["end"]) == VOICE
    hit.get_by_role("link").click()
    row = page.locator(f"#seg-{segment_id}")
    expect(row).to_have_class(re.compile(r"\btarget\b"))
    expect(row).to_be_in_viewport()
    expect(row).to_be_focused()


def test_5_a_segment_and_the_recording_play(page: Page, server: str) -> None:
    first = page.locator(".transcript .segment").first
    first.get_by_role("button", name=re.compile("^Play segment")).click()
    page.wait_for_function("() => document.querySelector('#clip-player').duration > 0")
    clip = page.evaluate("document.querySelector('#clip-player').duration")
    assert 0.3 < clip < 31
    page.wait_for_function("() => document.querySelector('#recording').duration > 20")
    # Clicking a turn in the timeline seeks the recording there.
    bar = page.locator(".timeline .bar").nth(2)
    bar.click()
    segment_id = int(bar.get_attribute("data-segment") or 0)
    start = next(s["start"] for s in api(server, f"/conversations/{flow.later}")["segments"]
                 if s["id"] == segment_id)
    seconds = page.evaluate("document.querySelector('#recording').currentTime")
    assert abs(seconds - start) < 0.1
    expect(page.locator(f"#seg-{segment_id}")).to_have_class(re.compile(r"\bplaying\b"))


def test_6_merge_two_speakers_then_undo(page: Page) -> None:
    page.goto(f"/#/conversation/{flow.later}")
    expect(page.locator(".timeline .lane")).to_have_count(2)
    other = next(label for label in lanes(page) if label != NAME)
    page.get_by_role("button", name=f"Merge {other} into another speaker").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_role("combobox").select_option(label=NAME)
    dialog.get_by_role("button", name="Merge").click()
    expect(page.locator(".timeline .lane")).to_have_count(1)
    assert lanes(page) == [NAME]
    page.locator("#undo").click()
    expect(page.locator(".timeline .lane")).to_have_count(2)
    assert sorted(lanes(page)) == sorted([NAME, other])



def test_9_someone_else_moves_one_segment(page: Page, server: str) -> None:
    page.goto(f"/#/conversation/{flow.later}")
    segments = api(server, f"/conversations/{flow.later}")["segments"]
    other = next(s for s in segments if s["speaker"] and s["speaker"]["label"] != NAME)
    page.locator(f"#seg-{other['id']}").get_by_role("button", name="Someone else").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_role("combobox").fill(NAME)
    dialog.get_by_role("button", name="Move segment").click()
    expect(page.locator(f"#seg-{other['id']} .speaker")).to_have_text(NAME)
    page.locator("#undo").click()
    expect(page.locator(f"#seg-{other['id']} .speaker")).to_have_text(other["speaker"]["label"])


def test_10_speakers_page_plays_renames_deletes_and_enrolls(page: Page) -> None:
    page.goto("/#/speakers")
    rows = page.locator(".speakers tbody tr")
    expect(rows.first).to_be_visible()
    unknown = page.locator(".speakers tbody tr", has_text="unknown").first
    label = unknown.locator("th").inner_text()
    unknown.get_by_role("button", name=f"Play a sample of {label}").click()
    page.wait_for_function("() => document.querySelector('#sample-player').duration > 0")

    page.get_by_role("button", name=f"Rename {label}").click()
    page.locator("dialog[open]").get_by_role("textbox").fill("Sam")
    page.locator("dialog[open]").get_by_role("button", name="Rename").click()
    expect(page.locator(".speakers tbody th", has_text="Sam")).to_have_count(1)
    page.locator("#undo").click()
    expect(page.locator(".speakers tbody th", has_text=label)).to_have_count(1)

    page.get_by_role("button", name="Delete all unknown").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete all unknown").click()
    expect(page.locator(".speakers tbody tr", has_text="unknown")).to_have_count(0)
    page.locator("#undo").click()
    expect(page.locator(".speakers tbody th", has_text=label)).to_have_count(1)

    page.get_by_label("Name", exact=True).fill("Reader")
    page.get_by_label("Audio file").set_input_files(enrollment_clip("ls_3080"))
    page.get_by_role("button", name="Enroll", exact=True).click()
    expect(page.locator(".speakers tbody th", has_text="Reader")).to_have_count(
        1, timeout=PROCESSING_MS)
    expect(page.locator("#notice")).to_contain_text("Enrolled")

UNLABELLED = """() => [...document.querySelectorAll("button, input, select, a[href]")]
    .filter((node) => node.offsetParent !== null || node.type === "file")
    .filter((node) => !(node.labels?.length || node.getAttribute("aria-label")
                        || node.textContent.trim()))
    .map((node) => node.outerHTML.slice(0, 120))"""
"""Visible controls with no name a screen reader could read out."""


def test_phone_width_and_named_controls(page: Page) -> None:
    for hash_ in (f"#/conversation/{flow.later}", "#/speakers", "#/upload", "#/conversations"):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"/{hash_}")
        page.locator("main h2, main .conversation-head").first.wait_for()
        assert page.evaluate(UNLABELLED) == [], hash_
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, (hash_, width)  # nothing runs off the side of a phone
    page.screenshot(path=SCREENSHOTS / "phone-conversations.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    # The keyboard reaches the pages: the first Tab stops are the skip link and the tabs.
    page.goto("about:blank")
    page.goto("/#/conversations")
    page.get_by_role("heading", name="Conversations").wait_for()
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Conversations", exact=True)).to_be_focused()


def test_8_live_tab_streams_the_microphone_with_names(page: Page) -> None:
    page.goto("/#/live")
    page.evaluate("""() => {
        window.partialsSeen = [];
        new MutationObserver(() => {
            const text = document.querySelector("#live-partial").textContent;
            if (text) window.partialsSeen.push(text);
        }).observe(document.querySelector("#live-partial"), { childList: true, subtree: true,
                                                              characterData: true });
    }""")
    page.get_by_label("Title (optional)").fill("Live budget")
    page.get_by_role("button", name="Start recording").click()
    expect(page.locator("#live-state")).to_contain_text("Listening", timeout=60_000)
    # Confirmed text arrives with the speaker's name: the fake microphone plays Nick.
    named = page.locator(".live-lines .segment", has=page.locator(".speaker", has_text=NAME))
    expect(named.first).to_be_visible(timeout=PROCESSING_MS)
    assert named.first.locator(".text").inner_text().strip()
    # A segment sent again as it grows replaces its own line: one line per segment.
    assert page.evaluate("""() => {
        const ids = [...document.querySelectorAll(".live-lines .segment")]
            .map(node => node.dataset.segment);
        return ids.length === new Set(ids).size;
    }""")
    assert page.evaluate("window.partialsSeen"), "no partial text was shown"
    grey = page.locator("#live-partial").evaluate("node => getComputedStyle(node).color")
    assert grey == "rgb(107, 107, 107)", grey  # partial text is grey (#6b6b6b: 5.3:1 on white)
    page.screenshot(path=SCREENSHOTS / "live.png")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#live-state")).to_contain_text("Stopped", timeout=PROCESSING_MS)
    page.locator("#live-state").get_by_role("link", name="Open the conversation").click()
    expect(page.locator(".transcript .segment").first).to_be_visible()
    # Finalised offline after the stop: the page redraws by itself once that is done.
    expect(page.locator(".conversation-head .status")).to_have_text("done",
                                                                    timeout=PROCESSING_MS)
    expect(page.locator(".transcript .speaker", has_text=NAME).first).to_be_visible()


TOKEN = "page-test-token-0123456789"


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for base, _ in serve_subprocess(tmp_path_factory.mktemp("page-token"), token=TOKEN):
        yield base


def test_7_with_a_token_the_page_asks_for_it_once_per_tab(
    browser: Browser, secured_server: str, request: pytest.FixtureRequest,
) -> None:
    # The page's files hold no data and load without the token; the API refuses without it.
    assert httpx.get(f"{secured_server}/", timeout=30).status_code == 200
    assert httpx.get(f"{secured_server}/api/v1/info", timeout=30).status_code == 401
    context = browser.new_context(base_url=secured_server, permissions=["microphone"])
    page = context.new_page()
    try:
        page.goto("/")
        login = page.locator("#login")
        expect(login).to_be_visible()
        expect(page.locator("main h2")).to_have_count(0)  # nothing shown before the token

        page.get_by_label("Token", exact=True).fill("not-the-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#login-error")).to_contain_text("refused")
        expect(login).to_be_visible()

        page.get_by_label("Token", exact=True).fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(login).to_be_hidden()
        expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
        # Kept for the tab (sessionStorage): a reload does not ask again...
        page.reload()
        expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
        expect(login).to_be_hidden()
        # ...and it never goes into a URL the page requests.
        assert TOKEN not in page.url
        # The live WebSocket opens with a one-use ticket (a browser cannot send the header).
        sockets: list[str] = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        page.goto("/#/live")
        page.get_by_role("button", name="Start recording").click()
        expect(page.locator("#live-state")).to_contain_text("Listening", timeout=PROCESSING_MS)
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#live-state")).to_contain_text("Stopped", timeout=PROCESSING_MS)
        assert sockets and all(TOKEN not in url and "ticket" not in url for url in sockets)
        # Another tab asks again.
        other = context.new_page()
        other.goto("/")
        expect(other.locator("#login")).to_be_visible()
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
        context.close()
