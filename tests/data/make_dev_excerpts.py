"""Cut tests/data/dev-excerpts/ out of ../shared/corpus/dev (how the committed files were made).

    .venv/bin/python tests/data/make_dev_excerpts.py [../shared/corpus/dev]

The result is a corpus split in the layout of ../shared/corpus/<split>/ (manifest.json,
conversations/<id>.flac|.rttm|.speech.rttm|.json, enroll/<voice>.flac|.json), small enough to
live in the repository: the opening turns of three conversations and three enrollment clips.
Each conversation is cut in the middle of the pause after its last kept turn, so every kept turn
is whole and its reference times and text stay exact. FLAC, because it is lossless (the decoded
samples are the corpus's) at about half the size of the corpus's WAV.
"""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
TARGET = HERE / "dev-excerpts"
SOURCE = HERE.parents[2] / "shared" / "corpus" / "dev"

# conversation id -> how many opening turns to keep (chosen for the tests that use them)
EXCERPTS = {
    "dev01": 3,  # af_heart, am_fenrir, af_heart: the VAD, ASR, diarization and pipeline tests
    "dev08": 5,  # bf_emma and am_fenrir, both twice or more: the CLI and scenario's first call
    "dev04": 4,  # bf_emma's "...six percent over budget..." and am_michael: the later call
}
ENROLLED = ["af_heart", "am_fenrir", "bf_emma"]


def read_pcm16(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    with wave.open(str(path)) as source:
        assert source.getnchannels() == 1 and source.getsampwidth() == 2
        frames = source.readframes(source.getnframes())
        return np.frombuffer(frames, "<i2").copy(), source.getframerate()


def write_flac(path: Path, samples: npt.NDArray[np.int16], rate: int) -> None:
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        stream.codec_context.options = {"compression_level": "12"}
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def cut_rttm(source: Path, target: Path, new_id: str, end: float) -> None:
    """Keep the lines that start before `end`; none may cross it (the cut is in a pause)."""
    lines = []
    for line in source.read_text().splitlines():
        parts = line.split()
        start, duration = float(parts[3]), float(parts[4])
        if start < end:
            assert start + duration <= end, (source, line)
            parts[1] = new_id
            lines.append(" ".join(parts))
    target.write_text("\n".join(lines) + "\n")


def cut_conversation(source: Path, target: Path, conversation: str, keep: int) -> dict[str, Any]:
    transcript = json.loads((source / "conversations" / f"{conversation}.json").read_text())
    turns = sorted(transcript["turns"], key=lambda t: t["start"])
    kept, rest = turns[:keep], turns[keep:]
    last_end, next_start = max(t["end"] for t in kept), min(t["start"] for t in rest)
    assert last_end < next_start, f"{conversation}: turn {keep} overlaps the next one"
    samples, rate = read_pcm16(source / "conversations" / f"{conversation}.wav")
    cut = round((last_end + next_start) / 2 * rate)
    end = cut / rate
    new_id = f"{conversation}-start"
    folder = target / "conversations"
    write_flac(folder / f"{new_id}.flac", samples[:cut], rate)
    for suffix in (".rttm", ".speech.rttm"):
        cut_rttm(source / "conversations" / f"{conversation}{suffix}",
                 folder / f"{new_id}{suffix}", new_id, end)
    speakers = sorted({t["speaker"] for t in kept})
    overlaps = [o for o in transcript.get("overlap_regions", []) if o["end"] <= end]
    transcript.update(
        id=new_id, audio=f"{new_id}.flac", rttm=f"{new_id}.rttm", duration_s=end,
        speakers=speakers, roles={k: v for k, v in transcript["roles"].items() if v in speakers},
        n_turns=len(kept), n_overlaps=len(overlaps),
        total_overlap_s=round(sum(o["end"] - o["start"] for o in overlaps), 3),
        overlap_regions=overlaps, turns=kept,
        excerpt_of=f"dev/conversations/{conversation}.wav, samples 0-{cut} (0-{end:.4f} s)",
    )
    (folder / f"{new_id}.json").write_text(json.dumps(transcript, indent=1) + "\n")
    return {
        "id": new_id, "topic": transcript["topic"], "audio": f"conversations/{new_id}.flac",
        "rttm": f"conversations/{new_id}.rttm",
        "speech_rttm": f"conversations/{new_id}.speech.rttm",
        "json": f"conversations/{new_id}.json", "duration_s": end, "speakers": speakers,
        "n_turns": len(kept), "n_overlaps": len(overlaps),
        "noise_snr_db": (transcript.get("noise") or {}).get("snr_db"),
        "excerpt_of": transcript["excerpt_of"],
    }


def cut_enrollment(source: Path, target: Path, voice: str) -> dict[str, Any]:
    samples, rate = read_pcm16(source / "enroll" / f"{voice}.wav")
    write_flac(target / "enroll" / f"{voice}.flac", samples, rate)
    entry = json.loads((source / "enroll" / f"{voice}.json").read_text())
    entry.update(audio=f"enroll/{voice}.flac", split="dev-excerpts",
                 excerpt_of=f"dev/enroll/{voice}.wav, whole")
    (target / "enroll" / f"{voice}.json").write_text(json.dumps(entry, indent=1) + "\n")
    return dict(entry)


def main(source: Path = SOURCE, target: Path = TARGET) -> None:
    manifest = json.loads((source / "manifest.json").read_text())
    for folder in ("conversations", "enroll"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    conversations = [cut_conversation(source, target, c, n) for c, n in EXCERPTS.items()]
    enrollment = [cut_enrollment(source, target, v) for v in ENROLLED]
    heard = sorted({s for c in conversations for s in c["speakers"]})
    # Recurring and one-off as the evaluation defines them, within this small split.
    one_off = [v for v in heard if v not in ENROLLED]
    excerpt = {
        "split": "dev-excerpts",
        "source": "../shared/corpus/dev (cut by tests/data/make_dev_excerpts.py)",
        **{k: manifest[k] for k in ("seed", "generator", "tts", "rttm_format", "rttm_variants")},
        "audio_format": "FLAC, 16 kHz, mono, 16-bit (lossless: the corpus's samples)",
        "conversations": conversations,
        "speakers": {
            "recurring": ENROLLED, "one_off": one_off,
            # Who each voice is; the corpus's counts (turns, seconds) would be wrong here.
            "details": {v: {k: manifest["speakers"]["details"][v][k]
                            for k in ("gender", "accent", "kokoro_grade", "speed")}
                        for v in heard},
        },
        "enrollment": enrollment,
    }
    (target / "manifest.json").write_text(json.dumps(excerpt, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
