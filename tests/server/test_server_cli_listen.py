"""`speaker-memory listen` and the MCP live tools: sounddevice replaced by a fake InputStream
that plays the fake live world's audio (CI has no sound card), the pipeline by FakePipeline's
live world; the store, the session, the CLI and the MCP server are the real ones."""

from __future__ import annotations

import _thread
import json
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
from mcp import Client

from server import cli
from server.mcp_server import build_server
from tests.tools.fake_pipeline import FakePipeline, voice_vector
from tools.context import App

TURNS = [("ann", "good morning everyone shall we start"), ("bob", "yes the budget is ready")]


class FakeInputStream:
    """sounddevice.InputStream's shape: start() delivers `audio` to the callback in 100 ms
    blocks (faster than real time), then silence; `then` runs once the audio was played."""

    audio: ClassVar[np.ndarray] = np.zeros(0, np.float32)
    then: ClassVar[Callable[[], None] | None] = None
    opened: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeInputStream.opened.append(kwargs)
        self.callback = kwargs["callback"]
        self.kwargs_device = kwargs["device"]
        self.blocksize = int(kwargs["blocksize"])
        self._stop = threading.Event()

    def start(self) -> None:
        if self.kwargs_device == 99:
            raise ValueError("Error querying device 99")  # what PortAudio says
        threading.Thread(target=self._play, daemon=True).start()

    def _play(self) -> None:
        audio = np.concatenate([self.audio, np.zeros(16000 * 5, np.float32)])
        for i in range(0, len(audio), self.blocksize):
            if self._stop.is_set():
                return
            block = audio[i:i + self.blocksize].reshape(-1, 1)
            self.callback(block, len(block), None, None)
            time.sleep(0.002)
        if FakeInputStream.then is not None:
            FakeInputStream.then()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def sound_card(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeInputStream]]:
    module = types.ModuleType("sounddevice")
    module.InputStream = FakeInputStream  # type: ignore[attr-defined]
    module.query_devices = lambda: [  # type: ignore[attr-defined]
        {"name": "Fake USB mic", "max_input_channels": 1},
        {"name": "Speakers", "max_input_channels": 0}]
    module.default = types.SimpleNamespace(device=(0, 1))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    FakeInputStream.opened = []
    FakeInputStream.then = None
    yield FakeInputStream


def test_listen_prints_the_live_transcript_and_finalises_on_ctrl_c(
    on_fake: FakePipeline, sound_card: type[FakeInputStream], tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sound_card.audio = on_fake.live_script(TURNS).audio()
    sound_card.then = _thread.interrupt_main  # the user presses Ctrl-C after the audio
    code = cli.main(["listen", "--device", "0", "--title", "kitchen",
                     "--data-dir", str(tmp_path / "data")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sound_card.opened[0]["device"] == 0
    assert sound_card.opened[0]["samplerate"] == 16000
    lines = out.splitlines()
    assert lines[0].startswith("[00:00] Unknown 1: good morning everyone")
    assert any("Unknown 2: yes the budget is ready" in line for line in lines)
    # A segment is printed once, complete (not again each time it grew).
    assert sum("good morning" in line for line in lines) == 1
    assert "Processed conversation 1 ('kitchen'" in err


def test_listen_lists_devices_and_explains_a_missing_portaudio(
    on_fake: FakePipeline, sound_card: type[FakeInputStream], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Any,
) -> None:
    on_fake.live_script(TURNS)
    assert cli.main(["listen", "--list-devices", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["0: Fake USB mic (1 ch) (default)"]
    # A device that does not open: the error lists the devices, and nothing is stored.
    data = tmp_path / "data"
    assert cli.main(["listen", "--device", "99", "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert "cannot open the microphone 99" in err and "0: Fake USB mic" in err
    assert cli.main(["conversations", "--data-dir", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 0
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed / no PortAudio
    assert cli.main(["listen", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "speaker-memory[live]" in err and "libportaudio2" in err


@pytest.mark.anyio
async def test_an_agent_listens_through_mcp(
    app: App, fake: FakePipeline, sound_card: type[FakeInputStream]
) -> None:
    app.memory.enroll("Ann", [voice_vector("ann", i) for i in range(3)], fake.voice_model_id,
                      "ann.wav", 20.0)
    sound_card.audio = fake.live_script(TURNS).audio()
    played = threading.Event()
    sound_card.then = played.set
    async with Client(build_server(app)) as client:
        started = await client.call_tool("start_listening", {"title": "office"})
        assert not started.is_error, started
        conversation_id = started.structured_content["conversation_id"]
        while not played.is_set():
            await _sleep()
        seen: list[dict[str, Any]] = []
        since = 0
        for _ in range(200):
            page = (await client.call_tool("get_live_transcript", {"since": since}))
            since = page.structured_content["next_since"]
            seen += page.structured_content["events"]
            if sum(e["type"] == "final" for e in seen) >= 2:
                break
            await _sleep()
        finals = [e for e in seen if e["type"] == "final"]
        assert finals[0]["speaker"]["label"] == "Ann"
        assert all(isinstance(e["complete"], bool) for e in finals)
        stopped = await client.call_tool("stop_listening", {"conversation_id": conversation_id})
        assert not stopped.is_error, stopped
        assert stopped.structured_content["status"] == "done"
        assert "recognised Ann" in stopped.structured_content["message"]
        again = await client.call_tool("get_live_transcript", {})
        assert again.is_error and "start_listening" in again.content[0].text


async def _sleep() -> None:
    import anyio

    await anyio.sleep(0.05)
