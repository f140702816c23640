"""The HTTP app in-process (Starlette TestClient runs its lifespan): access control and REST."""

from __future__ import annotations

import io
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from server.http import create_http_app
from server.rest import MULTIPART_OVERHEAD
from server.security import MIN_TOKEN_LENGTH, UnsafeBind, check_bind, is_loopback
from tests.tools.fake_pipeline import FakePipeline, Turn
from tools.context import App

BASE = "http://127.0.0.1:8000"
TURNS = [
    Turn("dana", "Our budget for the offsite is four thousand euros."),
    Turn("eli", "Then we should book the venue this week."),
    Turn("dana", "Agreed, I will send the contract tomorrow."),
]


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_http_app(app), base_url=BASE) as test_client:
        yield test_client


@pytest.fixture
def secured(app: App) -> Iterator[TestClient]:
    app.settings.token = "s3cret-token"
    with TestClient(create_http_app(app), base_url=BASE) as test_client:
        yield test_client


def _mcp_initialize() -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}}


MCP_HEADERS = {"accept": "application/json, text/event-stream",
               "content-type": "application/json"}


def test_token_is_required_on_every_route(secured: TestClient) -> None:
    for method, path in [("GET", "/healthz"), ("GET", "/api/v1/speakers"),
                         ("POST", "/mcp"), ("GET", "/api/v1/conversations/1/export")]:
        response = secured.request(method, path, json=_mcp_initialize(), headers=MCP_HEADERS)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "bearer token" in response.json()["error"]
    wrong = secured.get("/healthz", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = secured.get("/healthz", headers={"authorization": "Bearer s3cret-token"})
    assert right.status_code == 200 and right.json()["status"] == "ok"
    mcp = secured.post("/mcp", json=_mcp_initialize(),
                       headers={**MCP_HEADERS, "authorization": "Bearer s3cret-token"})
    assert mcp.status_code == 200


def test_foreign_host_and_origin_are_refused(client: TestClient, app: App) -> None:
    evil = client.get("/healthz", headers={"host": "attacker.example"})
    assert evil.status_code == 421 and "SPEAKER_MEMORY_ALLOWED_HOSTS" in evil.json()["error"]
    assert client.post("/mcp", json=_mcp_initialize(),
                       headers={**MCP_HEADERS, "host": "attacker.example:8000"}
                       ).status_code == 421
    origin = client.get("/healthz", headers={"origin": "http://attacker.example"})
    assert origin.status_code == 403
    # The server's own pages may call it; another page on this machine may not.
    assert client.get("/healthz", headers={"host": "localhost:8000",
                                           "origin": "http://localhost:8000"}).status_code == 200
    other_port = client.get("/healthz", headers={"host": "localhost:8000",
                                                 "origin": "http://localhost:5173"})
    assert other_port.status_code == 403
    assert "SPEAKER_MEMORY_ALLOWED_ORIGINS" in other_port.json()["error"]


def test_another_local_page_cannot_change_data(client: TestClient, fake: FakePipeline,
                                               tmp_path: Path) -> None:
    # A page on localhost:3000 posting text/plain (no CORS preflight) used to relabel segments.
    _upload(client, fake.recording(tmp_path / "meeting.wav", TURNS))
    segment = client.get("/api/v1/segments").json()["segments"][0]
    before = segment["speaker"]["label"]
    forged = client.post(f"/api/v1/segments/{segment['id']}/identify",
                         content=b'{"speaker_name": "Mallory"}',
                         headers={"origin": "http://localhost:3000",
                                  "content-type": "text/plain"})
    assert forged.status_code == 403
    # Without an Origin (curl, an agent) text/plain is still refused: JSON endpoints take JSON.
    plain = client.post(f"/api/v1/segments/{segment['id']}/identify",
                        content=b'{"speaker_name": "Mallory"}',
                        headers={"content-type": "text/plain"})
    assert plain.status_code == 400 and "application/json" in plain.json()["error"]
    after = client.get("/api/v1/segments").json()["segments"][0]
    assert after["speaker"]["label"] == before != "Mallory"


def test_listed_origins_are_accepted(app: App) -> None:
    app.settings.allowed_origins = ["https://Notes.example.com/"]
    with TestClient(create_http_app(app), base_url=BASE) as client:
        ok = client.get("/healthz", headers={"origin": "https://notes.example.com"})
        assert ok.status_code == 200
        mcp = client.post("/mcp", json=_mcp_initialize(),
                          headers={**MCP_HEADERS, "origin": "https://notes.example.com"})
        assert mcp.status_code == 200
        assert client.get("/healthz", headers={"origin": "https://evil.example.com"}
                          ).status_code == 403


def test_extra_allowed_hosts_are_accepted(app: App) -> None:
    app.settings.allowed_hosts = ["memory.lan"]
    with TestClient(create_http_app(app), base_url="http://memory.lan:8000") as client:
        assert client.get("/healthz").status_code == 200
        response = client.post("/mcp", json=_mcp_initialize(), headers=MCP_HEADERS)
        assert response.status_code == 200


def test_non_loopback_binding_needs_a_token(app: App) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    with pytest.raises(UnsafeBind, match="SPEAKER_MEMORY_TOKEN"):
        check_bind("0.0.0.0", None)
    app.settings.host = "0.0.0.0"
    with pytest.raises(UnsafeBind):
        create_http_app(app)
    app.settings.token = "t"
    with pytest.raises(UnsafeBind, match="16"):
        create_http_app(app)  # a guessable token is no protection
    app.settings.token = "x" * (MIN_TOKEN_LENGTH - 1)
    with pytest.raises(UnsafeBind, match="token_urlsafe"):
        create_http_app(app)
    app.settings.token = "x" * MIN_TOKEN_LENGTH
    create_http_app(app)  # with a long enough token it may listen anywhere
    app.settings.host = "127.0.0.1"
    app.settings.token = "t"
    create_http_app(app)  # on loopback any token is extra protection


def _upload(client: TestClient, path: Path, **fields: str) -> dict[str, object]:
    with path.open("rb") as handle:
        response = client.post("/api/v1/conversations", data={"wait": "true", **fields},
                               files={"file": (path.name, handle, "audio/wav")})
    assert response.status_code in (200, 201), response.text
    body: dict[str, object] = response.json()
    return body


def test_rest_upload_read_name_search_export(
    client: TestClient, fake: FakePipeline, tmp_path: Path
) -> None:
    path = fake.recording(tmp_path / "offsite.wav", TURNS)
    created = _upload(client, path, title="Offsite")
    assert created["status"] == "done" and created["unknown_speakers"] == 2
    cid = created["conversation_id"]
    assert _upload(client, path)["duplicate"] is True

    listed = client.get("/api/v1/conversations").json()
    assert listed["total"] == 1 and listed["conversations"][0]["title"] == "Offsite"
    transcript = client.get(f"/api/v1/conversations/{cid}").json()
    first = transcript["segments"][0]
    text = client.get(f"/api/v1/conversations/{cid}", params={"format": "text"}).json()
    assert "four thousand euros" in text["text"]

    named = client.post(f"/api/v1/segments/{first['id']}/identify",
                        json={"speaker_name": "Dana"})
    assert named.status_code == 200 and named.json()["segments_relabelled"] == 2
    hits = client.get("/api/v1/search", params={"query": "budget", "speaker": "Dana",
                                                "mode": "keyword"}).json()["hits"]
    assert [h["segment"]["id"] for h in hits] == [first["id"]]
    speakers = client.get("/api/v1/speakers", params={"kind": "enrolled"}).json()["speakers"]
    assert [s["label"] for s in speakers] == ["Dana"]
    convs = client.get("/api/v1/speakers/Dana/conversations").json()
    assert convs["total"] == 1
    latest = client.get("/api/v1/segments", params={"limit": 1}).json()["segments"]
    assert len(latest) == 1

    srt = client.get(f"/api/v1/conversations/{cid}/export", params={"format": "srt"})
    assert srt.status_code == 200 and srt.headers["content-type"].startswith(
        "application/x-subrip")
    assert 'filename="offsite.srt"' in srt.headers["content-disposition"]
    assert "Dana: Our budget" in srt.text

    clip = client.get(f"/api/v1/segments/{first['id']}/audio")
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(clip.content)) as wav:
        assert wav.getframerate() == 16_000 and wav.getnframes() > 0

    assert client.patch(f"/api/v1/conversations/{cid}", json={"title": "Offsite plan"}
                        ).json()["title"] == "Offsite plan"
    assert client.get(f"/api/v1/conversations/{cid}/status").json()["status"] == "done"
    assert client.post(f"/api/v1/conversations/{cid}/reprocess").json()["status"] == "done"
    undone = client.post("/api/v1/undo")
    assert undone.status_code == 200 and undone.json()["action"] == "undo"


def test_rest_enroll_upload(client: TestClient, fake: FakePipeline, tmp_path: Path) -> None:
    clip = fake.clip(tmp_path / "eli.wav", "eli")
    with clip.open("rb") as handle:
        response = client.post("/api/v1/speakers", data={"name": "Eli"},
                               files={"file": ("eli.wav", handle, "audio/wav")})
    assert response.status_code == 201, response.text
    assert response.json()["speaker"]["label"] == "Eli"


def test_rest_errors_are_json_with_status(client: TestClient, app: App) -> None:
    missing = client.get("/api/v1/conversations/41")
    assert missing.status_code == 404 and "conversation" in missing.json()["error"]
    assert client.get("/api/v1/search", params={"query": " "}).status_code == 400
    assert client.get("/api/v1/conversations", params={"limit": "x"}).status_code == 400
    big = b"\0" * (app.settings.max_upload_bytes + 10)
    oversize = client.post("/api/v1/conversations",
                           files={"file": ("big.wav", big, "audio/wav")})
    assert oversize.status_code == 413
    assert "SPEAKER_MEMORY_MAX_UPLOAD_BYTES" in oversize.json()["error"]
    not_form = client.post("/api/v1/conversations", content=b"x",
                           headers={"content-type": "audio/wav"})
    assert not_form.status_code == 400 and "multipart" in not_form.json()["error"]


def test_rest_refuses_ids_and_bodies_out_of_range(client: TestClient) -> None:
    for path in ("/api/v1/conversations/9223372036854775808",
                 "/api/v1/conversations/0", "/api/v1/segments/99999999999999999999/audio"):
        response = client.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"].startswith("the id in the URL must be a whole number")
    for value in ("9223372036854775808", "1" * 5000, "²", "-1"):
        response = client.get("/api/v1/segments", params={"conversation_id": value})
        assert response.status_code == 400, (value, response.text)
    for event_id in (True, 2**63, 0, "1"):
        response = client.post("/api/v1/undo", json={"event_id": event_id})
        assert response.status_code == 400, (event_id, response.text)
        assert "event_id must be a whole number" in response.json()["error"]
    speaker = client.get("/api/v1/speakers/9223372036854775808/conversations")
    assert speaker.status_code == 400 and "speaker id" in speaker.json()["error"]
    # A JSON body is read no further than its cap, declared length or not.
    huge = b'{"speaker_name": "' + b"a" * (2 << 20) + b'"}'
    for headers in ({"content-type": "application/json"},
                    {"content-type": "application/json", "transfer-encoding": "chunked"}):
        response = client.post("/api/v1/segments/1/identify",
                               content=iter([huge[i:i + 65536]
                                             for i in range(0, len(huge), 65536)])
                               if "transfer-encoding" in headers else huge, headers=headers)
        assert response.status_code == 413, response.text
        assert "limit" in response.json()["error"]


def test_a_chunked_upload_is_cut_off_at_the_cap(client: TestClient, app: App) -> None:
    # No declared length: the body used to be spooled in full (2 GiB) before the 413.
    cap = app.settings.max_upload_bytes
    boundary = "cut"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(2 * (cap + MULTIPART_OVERHEAD) // 16384):
            yield b"\0" * 16384

    response = client.post("/api/v1/conversations", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and "limit" in response.json()["error"]
    assert not list(app.settings.audio_dir.glob("*")), "nothing of it is kept"


def test_the_body_reader_stops_pulling_once_past_the_cap() -> None:
    import anyio
    from starlette.requests import Request

    from memory.errors import InputTooLarge
    from server.rest import _capped

    pulled = 0

    async def receive() -> dict[str, object]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 16384, "more_body": pulled < 100}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)

    async def read() -> None:
        with pytest.raises(InputTooLarge):
            await _capped(request, 65536, InputTooLarge("too large")).body()

    anyio.run(read)
    assert pulled == 5  # 4 x 16 KiB fit; the 5th passes the cap and nothing more is read


def test_mcp_bodies_are_capped_at_what_base64_audio_needs(app: App) -> None:
    # The cap used to follow the 512 MB upload limit: a 400 MB argument cost 3.9 GB.
    from tools.inputs import MAX_BASE64_AUDIO_BYTES

    app.settings.max_upload_bytes = 512 * 1024 * 1024
    with TestClient(create_http_app(app), base_url=BASE) as client:
        def body() -> Iterator[bytes]:
            for _ in range(2 * MAX_BASE64_AUDIO_BYTES // (1 << 20)):
                yield b" " * (1 << 20)

        response = client.post("/mcp", content=body(), headers=MCP_HEADERS)
        assert response.status_code == 413


def test_the_page_limit_is_one_limit_on_every_surface(client: TestClient) -> None:
    # It was 500 in the MCP schema, clamped to 500 in tools and refused above 1000 in memory.
    from memory.api import MAX_PAGE

    assert client.get("/api/v1/conversations", params={"limit": MAX_PAGE}).status_code == 200
    over = client.get("/api/v1/conversations", params={"limit": MAX_PAGE + 1})
    assert over.status_code == 400
    assert over.json()["error"].startswith(f"limit must be between 1 and {MAX_PAGE}")


def test_rest_deletes_a_conversation_for_good(
    client: TestClient, app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    path = fake.recording(tmp_path / "offsite.wav", TURNS)
    cid = _upload(client, path)["conversation_id"]
    deleted = client.delete(f"/api/v1/conversations/{cid}")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["conversation_id"] == cid and body["final"] and body["audio_deleted"]
    assert list(app.settings.audio_dir.glob("*.wav")) == []
    assert client.get(f"/api/v1/conversations/{cid}").status_code == 404
    assert client.delete(f"/api/v1/conversations/{cid}").status_code == 404


def test_rest_refuses_to_delete_a_conversation_being_processed(
    client: TestClient, fake: FakePipeline, tmp_path: Path
) -> None:
    fake.gate = threading.Event()
    try:
        path = fake.recording(tmp_path / "offsite.wav", TURNS)
        with path.open("rb") as handle:
            started = client.post("/api/v1/conversations",
                                  files={"file": (path.name, handle, "audio/wav")})
        assert started.status_code == 202, started.text
        cid = started.json()["conversation_id"]
        busy = client.delete(f"/api/v1/conversations/{cid}")
        assert busy.status_code == 409 and "still being processed" in busy.json()["error"]
    finally:
        fake.gate.set()


def test_rest_bounds_titles_and_search_text(
    client: TestClient, app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    path = fake.recording(tmp_path / "offsite.wav", TURNS)
    with path.open("rb") as handle:
        refused = client.post("/api/v1/conversations", data={"title": "t" * 600},
                              files={"file": (path.name, handle, "audio/wav")})
    assert refused.status_code == 400 and "at most 500 are allowed" in refused.json()["error"]
    assert list(app.settings.audio_dir.glob("*")) == []  # the refused upload was not kept
    cid = _upload(client, path)["conversation_id"]
    renamed = client.patch(f"/api/v1/conversations/{cid}", json={"title": "t" * 100_000})
    assert renamed.status_code == 400 and len(renamed.json()["error"]) < 300
    search = client.get("/api/v1/search", params={"query": "w" * 5000})
    assert search.status_code == 400 and "query is 5,000 characters" in search.json()["error"]



def test_rest_changes_the_review_page_makes(
    client: TestClient, fake: FakePipeline, tmp_path: Path
) -> None:
    path = fake.recording(tmp_path / "offsite.wav", TURNS)
    cid = _upload(client, path)["conversation_id"]
    info = client.get("/api/v1/info").json()
    assert info["live"] is True and "srt" in info["export_formats"]
    assert info["max_upload_bytes"] == 64 * 1024
    assert client.get("/api/v1/history").json() == {"events": []}

    segments = client.get(f"/api/v1/conversations/{cid}").json()["segments"]
    dana = segments[0]["speaker"]
    eli = segments[1]["speaker"]
    renamed = client.patch(f"/api/v1/speakers/{dana['id']}", json={"name": "Dana"})
    assert renamed.status_code == 200, renamed.text
    assert [s["label"] for s in renamed.json()["speakers"]] == ["Dana"]
    history = client.get("/api/v1/history").json()["events"]
    assert [e["action"] for e in history] == ["rename"] and not history[0]["undone"]
    assert "Dana" in history[0]["summary"]

    # A speaker's sample: the segment of theirs that shows the voice best, as a WAV.
    sample = client.get("/api/v1/speakers/Dana/sample")
    assert sample.status_code == 200 and sample.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(sample.content)) as wav:
        assert wav.getnframes() > 0
    # The whole recording, as it was uploaded.
    recording = client.get(f"/api/v1/conversations/{cid}/audio")
    assert recording.status_code == 200 and recording.content == path.read_bytes()
    assert recording.headers["content-type"].startswith("audio/")

    moved = client.post(f"/api/v1/segments/{segments[1]['id']}/misidentified",
                        json={"correct_speaker": "Dana"})
    assert moved.status_code == 200, moved.text
    after = client.get(f"/api/v1/conversations/{cid}").json()["segments"]
    assert after[1]["speaker"]["label"] == "Dana"
    assert client.post("/api/v1/undo", json={}).json()["action"] == "undo"

    merged = client.post(f"/api/v1/speakers/{eli['id']}/merge", json={"into": "Dana"})
    assert merged.status_code == 200, merged.text
    assert {s["speaker"]["label"] for s in
            client.get(f"/api/v1/conversations/{cid}").json()["segments"]} == {"Dana"}
    for body in ({}, {"into": True}, {"into": ["Dana"]}):
        refused = client.post("/api/v1/speakers/Dana/merge", json=body)
        assert refused.status_code == 400 and '"into"' in refused.json()["error"], body
    assert client.post(f"/api/v1/segments/{segments[1]['id']}/misidentified",
                       json={"correct_speaker": False}).status_code == 400
    client.post("/api/v1/undo", json={})

    refused = client.delete("/api/v1/speakers")
    assert refused.status_code == 400 and "kind=unknown" in refused.json()["error"]
    gone = client.delete("/api/v1/speakers", params={"kind": "unknown"})
    assert gone.status_code == 200 and [s["id"] for s in gone.json()["speakers"]] == [eli["id"]]
    deleted = client.delete("/api/v1/speakers/Dana")
    assert deleted.status_code == 200 and deleted.json()["action"] == "delete"
    assert client.get("/api/v1/speakers").json()["speakers"] == []
    nothing = client.get(f"/api/v1/speakers/{eli['id']}/sample")
    assert nothing.status_code == 404


def test_the_page_loads_without_the_token_and_its_api_calls_need_it(secured: TestClient) -> None:
    page = secured.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = secured.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    for path in ("/api/v1/info", "/static/../api/v1/info", "/static/%2e%2e/api/v1/info"):
        assert secured.get(path).status_code in (401, 404), path
    assert secured.post("/", json={}).status_code == 401  # only reading the files is public
    info = secured.get("/api/v1/info", headers={"authorization": "Bearer s3cret-token"})
    assert info.status_code == 200
    # The page's own origin may call the API; another local page still may not.
    own = secured.get("/api/v1/info", headers={"authorization": "Bearer s3cret-token",
                                               "host": "127.0.0.1:8000",
                                               "origin": "http://127.0.0.1:8000"})
    assert own.status_code == 200
    other = secured.get("/api/v1/info", headers={"authorization": "Bearer s3cret-token",
                                                 "origin": "http://127.0.0.1:3000"})
    assert other.status_code == 403
