#!/usr/bin/env python
"""Benchmark of the memory layer at scale, through its public API only (issue 2, section 4).

Builds synthetic stores (deterministic seeded random unit vectors: 256-d voices, 384-d text;
short texts drawn from a Zipf-distributed vocabulary so that FTS5 sees realistic term
frequencies), then measures, for each operation, the median latency and the ratio against a
numpy brute-force in-RAM baseline measured in the same run:

1. match one cluster        - `match_voice` (the matching ingest runs per cluster), and the whole
                              ingest of a tiny conversation with one cluster of a stored voice
                              (an upper bound: it also stores 2 segments and commits)
2. keyword search           - `search_keyword`, mid-frequency words and two-word queries
3. semantic search          - `search_semantic`, kNN over the 384-d segment text vectors
4. identify + propagation   - `identify` of the 'owner' voice, heard in every conversation
                              (about 10% of all segments, i.e. 100k at 1M), then `undo`: once
                              with a new name, once with the name of an enrolled speaker (a
                              merge that moves every one of those segments)
5. ingest one hour          - `ingest` of a new 900-segment conversation

How a store is built: conversations of --conv-segments segments (900 = one hour of 4 s
segments) are ingested through `SpeakerMemory.ingest`, exactly as the pipeline would. Every
conversation has the owner voice (10% of its segments), the voices it introduces for the first
time (so that the store ends with the requested number of speakers) and a few recurring
voices. The built store is kept under --workdir as a pristine file; each run measures on a copy,
so --reuse gives the same starting state every time (the header says when the cached store was
built by other memory/ code). BLAS runs on one thread, for the store and the baseline alike.
The baseline's "ingest" is matching every cluster by brute force plus stacking the new rows.

    .venv/bin/python scripts/bench_memory.py --quick                 # seconds; used by a test
    .venv/bin/python scripts/bench_memory.py --workdir /tmp/bench --reuse   # 100k and 1M
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One BLAS thread for the store and the baseline alike: on a shared 2-core machine a threaded
# BLAS spins against other processes and turns a 0.1 ms product into 10 ms of noise.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.types import LocalSpeaker, PipelineResult, PipelineSegment, Word  # noqa: E402
from memory.api import SpeakerMemory  # noqa: E402
from memory.types import SearchHit  # noqa: E402

log = logging.getLogger("bench_memory")

VOICE_DIM = 256
TEXT_DIM = 384
VOICE_MODEL = "bench-voice-256-v1"
TEXT_MODEL = "bench-text-384-v1"
SEGMENT_SECONDS = 4.0
OWNER_SHARE = 0.10
VOICE_NOISE = 0.02  # per dimension: cos(sample, voice) ~ 0.95, two samples ~ 0.90
VOICEPRINTS_PER_CLUSTER = 8
RECURRING_PER_CONVERSATION = 2
TOPICS = 64
VOCABULARY = 20_000
FORMAT_VERSION = 1  # bump when the synthetic data changes, so --reuse rebuilds

Vec = npt.NDArray[np.float32]


# ------------------------------------------------------------------ deterministic data


def _unit_rows(m: npt.NDArray[np.float64]) -> Vec:
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    return m.astype(np.float32)


def _vocabulary(seed: int) -> list[str]:
    """Pronounceable, distinct pseudo-words (no word list ships on this machine)."""
    rng = np.random.default_rng([seed, 7])
    onsets = [
        "b",
        "br",
        "c",
        "ch",
        "d",
        "dr",
        "f",
        "g",
        "gr",
        "h",
        "j",
        "k",
        "l",
        "m",
        "n",
        "p",
        "pl",
        "r",
        "s",
        "sh",
        "st",
        "t",
        "th",
        "tr",
        "v",
        "w",
        "z",
    ]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "oo", "ie"]
    codas = ["", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng"]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY:
        n_syll = int(rng.integers(1, 4))
        w = "".join(
            onsets[rng.integers(len(onsets))]
            + vowels[rng.integers(len(vowels))]
            + codas[rng.integers(len(codas))]
            for _ in range(n_syll)
        )
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


@dataclass
class Spec:
    """One synthetic store: sizes and the derived layout of conversations."""

    speakers: int
    segments: int
    conv_segments: int
    seed: int = 20261123

    @property
    def conversations(self) -> int:
        return math.ceil(self.segments / self.conv_segments)

    @property
    def name(self) -> str:
        return f"s{self.speakers}-n{self.segments}-c{self.conv_segments}-v{FORMAT_VERSION}"

    def new_voices(self, c: int) -> range:
        """Voices introduced by conversation c (voice 0 is the owner, in every conversation)."""
        others = self.speakers - 1
        lo = 1 + c * others // self.conversations
        hi = 1 + (c + 1) * others // self.conversations
        return range(lo, hi)

    def segments_in(self, c: int) -> int:
        return min(self.conv_segments, self.segments - c * self.conv_segments)


class Synth:
    """Deterministic generator: the same spec gives the same conversations, vectors and texts."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        rng = np.random.default_rng([spec.seed, 1])
        self.voices = _unit_rows(rng.standard_normal((spec.speakers, VOICE_DIM)))
        self.topics = _unit_rows(rng.standard_normal((TOPICS, TEXT_DIM)))
        self.words = _vocabulary(spec.seed)
        ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
        zipf = 1.0 / ranks
        self.word_cdf = np.cumsum(zipf / zipf.sum())

    def voice_samples(self, rng: np.random.Generator, voice: int, n: int) -> Vec:
        noisy = self.voices[voice][None, :] + rng.standard_normal((n, VOICE_DIM)) * VOICE_NOISE
        return _unit_rows(noisy)

    def text_vectors(self, rng: np.random.Generator, n: int) -> Vec:
        topic = rng.integers(TOPICS, size=n)
        return _unit_rows(self.topics[topic] + rng.standard_normal((n, TEXT_DIM)) * 0.06)

    def texts(self, rng: np.random.Generator, n: int) -> list[list[str]]:
        lengths = rng.integers(6, 17, size=n)
        idx = np.searchsorted(self.word_cdf, rng.random(int(lengths.sum())))
        idx = np.minimum(idx, VOCABULARY - 1)
        out: list[list[str]] = []
        pos = 0
        for length in lengths:
            out.append([self.words[i] for i in idx[pos : pos + length]])
            pos += int(length)
        return out

    def conversation(
        self,
        c: int,
        *,
        n_segments: int | None = None,
        voices: Sequence[int] | None = None,
        salt: int = 0,
    ) -> tuple[PipelineResult, npt.NDArray[np.int32]]:
        """Conversation c (or a bench-only one when salt != 0): the result to ingest and the true
        voice of each segment."""
        spec = self.spec
        rng = np.random.default_rng([spec.seed, 2, c, salt])
        n = spec.segments_in(c) if n_segments is None else n_segments
        if voices is None:
            fresh = list(spec.new_voices(c))
            introduced = spec.new_voices(c).start - 1  # voices 1..introduced exist before c
            k = min(RECURRING_PER_CONVERSATION, introduced)
            recurring = [int(v) for v in 1 + rng.choice(introduced, size=k, replace=False)]
            voices = [0, *fresh, *[v for v in recurring if v not in fresh]]
        voices = list(voices)
        n_owner = max(1, round(n * OWNER_SHARE)) if voices[0] == 0 else 0
        others = voices[1:] if n_owner else voices
        owner_voice = np.zeros(n, dtype=bool)
        if n_owner:
            owner_voice[rng.choice(n, size=n_owner, replace=False)] = True
        true_voice = np.empty(n, dtype=np.int32)
        true_voice[owner_voice] = 0
        rest = np.flatnonzero(~owner_voice)
        if others:
            # every other voice gets at least one segment, the rest at random
            assign = np.concatenate(
                [
                    np.arange(len(others)),
                    rng.integers(len(others), size=max(0, len(rest) - len(others))),
                ]
            )
            rng.shuffle(assign)
            true_voice[rest] = np.asarray(others, dtype=np.int32)[assign[: len(rest)]]
        else:
            true_voice[rest] = 0
        present = set(true_voice.tolist())
        label_of = {v: f"SPEAKER_{i:02d}" for i, v in enumerate(x for x in voices if x in present)}
        voice_vecs = np.empty((n, VOICE_DIM), dtype=np.float32)
        for v in label_of:
            mask = true_voice == v
            voice_vecs[mask] = self.voice_samples(rng, v, int(mask.sum()))
        text_vecs = self.text_vectors(rng, n)
        texts = self.texts(rng, n)
        segments: list[PipelineSegment] = []
        for i in range(n):
            start = i * SEGMENT_SECONDS
            step = (SEGMENT_SECONDS - 0.2) / len(texts[i])
            words = [
                Word(w, round(start + j * step, 2), round(start + (j + 1) * step, 2), 0.9)
                for j, w in enumerate(texts[i])
            ]
            segments.append(
                PipelineSegment(
                    start=start,
                    end=start + SEGMENT_SECONDS - 0.2,
                    text=" ".join(texts[i]),
                    words=words,
                    local_speaker=label_of[int(true_voice[i])],
                    voice_vector=voice_vecs[i],
                    text_vector=text_vecs[i],
                )
            )
        local: list[LocalSpeaker] = []
        for v, label in label_of.items():
            rows = np.flatnonzero(true_voice == v)
            vecs = [voice_vecs[r] for r in rows[:VOICEPRINTS_PER_CLUSTER]]
            local.append(LocalSpeaker(label, vecs, len(rows) * (SEGMENT_SECONDS - 0.2)))
        result = PipelineResult(
            segments, local, voice_model_id=VOICE_MODEL, text_model_id=TEXT_MODEL,
            language="en", duration=n * SEGMENT_SECONDS, asr_model_id="bench-asr",
        )
        return result, true_voice


# ------------------------------------------------------------------ in-RAM baseline


@dataclass
class Baseline:
    """What a numpy brute force over the same data holds in RAM."""

    voiceprints: Vec  # every cluster vector ingested (what the store keeps as voiceprints)
    voiceprint_owner: npt.NDArray[np.int32]  # true voice of each voiceprint
    text_vectors: Vec
    texts: list[str]
    segment_voice: npt.NDArray[np.int32]
    centroids: Vec = field(init=False)

    def __post_init__(self) -> None:
        n_voices = int(self.voiceprint_owner.max()) + 1
        sums = np.zeros((n_voices, VOICE_DIM), dtype=np.float64)
        np.add.at(sums, self.voiceprint_owner, self.voiceprints)
        self.centroids = _unit_rows(sums + 1e-9)

    def match(self, cluster: Vec, top_k: int = 64) -> int:
        """Nearest `top_k` voiceprints per cluster vector, best score per speaker, best speaker."""
        scores = self.voiceprints @ cluster.T  # (voiceprints, cluster vectors)
        k = min(top_k, len(scores) - 1)
        top = np.argpartition(-scores, k, axis=0)[:k]  # (k, cluster vectors)
        values = np.take_along_axis(scores, top, axis=0).ravel()
        speakers, group = np.unique(self.voiceprint_owner[top.ravel()], return_inverse=True)
        best = np.full(len(speakers), -np.inf)
        np.maximum.at(best, group, values)
        return int(speakers[int(np.argmax(best))])

    def keyword(self, query: str, limit: int = 20) -> list[int]:
        terms = query.lower().split()
        hits = [i for i, t in enumerate(self.texts) if all(f" {w} " in f" {t} " for w in terms)]
        hits.sort(key=lambda i: -sum(self.texts[i].count(w) for w in terms))
        return hits[:limit]

    def semantic(self, q: Vec, limit: int = 20) -> list[int]:
        scores = self.text_vectors @ q
        top = np.argpartition(-scores, limit)[:limit]
        return [int(i) for i in top[np.argsort(-scores[top])]]

    def identify(self, voice: int, named: int, threshold: float = 0.82) -> tuple[int, int]:
        """Relabel every segment of `voice`, then find the centroids close enough to merge
        (propagation); returns (segments relabelled, voices that would be merged)."""
        labels = self.segment_voice.copy()
        mask = labels == voice
        labels[mask] = named
        sims = self.centroids @ self.centroids[voice]
        propagated = int(np.count_nonzero(sims >= threshold)) - 1
        return int(mask.sum()), propagated

    def ingest(self, result: PipelineResult) -> list[int]:
        """Match every cluster, then gather the new rows (appending to growable arrays is
        amortised O(rows))."""
        matched = [self.match(np.stack(spk.vectors)) for spk in result.local_speakers]
        _voice = np.stack([s.voice_vector for s in result.segments if s.voice_vector is not None])
        _text = np.stack([s.text_vector for s in result.segments if s.text_vector is not None])
        _texts = [s.text for s in result.segments]
        return matched


# ------------------------------------------------------------------ building and caching


def build_store(
    spec: Spec, synth: Synth, path: Path, database_url: str | None = None
) -> dict[str, Any]:
    """Ingest every conversation of the spec through the public API (into the SQLite file at
    `path`, or the empty PostgreSQL schema `database_url` points at); returns metadata."""
    if path.exists():
        path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    mem = SpeakerMemory(path, database_url=database_url)
    t0 = time.perf_counter()
    ingest_ms: list[float] = []
    owner_speaker: int | None = None
    try:
        for c in range(spec.conversations):
            result, _ = synth.conversation(c)
            conv = mem.create_conversation(
                title=f"bench conversation {c}",
                source_name=f"bench-{c}.wav",
                sha256=f"bench-{spec.name}-{c}",
            )
            t = time.perf_counter()
            res = mem.ingest(conv.id, result)
            ingest_ms.append((time.perf_counter() - t) * 1000)
            if owner_speaker is None:
                owner_speaker = next(
                    d.speaker.id for d in res.decisions if d.local_label == "SPEAKER_00"
                )
            if c % max(1, spec.conversations // 20) == 0 or c == spec.conversations - 1:
                done = (c + 1) / spec.conversations
                elapsed = time.perf_counter() - t0
                log.warning(
                    "build %s: %d/%d conversations, %.0f s elapsed, ~%.0f s left, "
                    "last ingest %.0f ms",
                    spec.name,
                    c + 1,
                    spec.conversations,
                    elapsed,
                    elapsed / done - elapsed,
                    ingest_ms[-1],
                )
        # PostgreSQL indexes new text vectors in the background: measure from a steady state,
        # and say how long the indexer needed beyond the last ingest.
        t = time.perf_counter()
        mem.index_pending()
        pending_seconds = time.perf_counter() - t
    finally:
        mem.close()
    return {
        "pending_index_seconds": round(pending_seconds, 1),
        "spec": spec.name,
        "format": FORMAT_VERSION,
        "owner_speaker": owner_speaker,
        "memory_code": memory_code_hash(),
        "build_seconds": round(time.perf_counter() - t0, 1),
        "build_ingest_ms_median": round(statistics.median(ingest_ms), 1),
        "build_ingest_ms_last10_median": round(statistics.median(ingest_ms[-10:]), 1),
    }


def memory_code_hash() -> str:
    """Fingerprint of memory/*.py: a store built by other code may not show current behaviour."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parents[1] / "memory").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def pristine_store(
    spec: Spec, synth: Synth, workdir: Path, reuse: bool
) -> tuple[Path, dict[str, Any]]:
    path = workdir / f"{spec.name}.sqlite"
    meta_path = workdir / f"{spec.name}.json"
    if reuse and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == FORMAT_VERSION:
            log.warning("reusing %s (built in %s s)", path, meta["build_seconds"])
            if meta.get("memory_code") != memory_code_hash():
                log.warning(
                    "%s was built by other memory/ code (%s, now %s): rebuild without --reuse "
                    "for figures of the current ingest",
                    path, meta.get("memory_code"), memory_code_hash(),
                )
            return path, meta
    log.warning(
        "building %s: %d conversations of %d segments",
        spec.name,
        spec.conversations,
        spec.conv_segments,
    )
    meta_path.unlink(missing_ok=True)
    meta = build_store(spec, synth, path)
    meta_path.write_text(json.dumps(meta, indent=2))
    return path, meta


def working_copy(pristine: Path, workdir: Path) -> Path:
    run = workdir / (pristine.stem + ".run.sqlite")
    for suffix in ("", "-wal", "-shm"):
        Path(str(run) + suffix).unlink(missing_ok=True)
    shutil.copyfile(pristine, run)
    return run


def cached_baseline(spec: Spec, synth: Synth, workdir: Path, reuse: bool) -> Baseline:
    """The baseline's arrays, regenerated from the seeds or (--reuse) read back from workdir."""
    arrays = workdir / f"{spec.name}.baseline.npz"
    texts = workdir / f"{spec.name}.baseline.txt"
    if reuse and arrays.exists() and texts.exists():
        with np.load(arrays) as z:
            return Baseline(
                z["voiceprints"], z["voiceprint_owner"], z["text_vectors"],
                texts.read_text(encoding="utf-8").split("\n"), z["segment_voice"],
            )
    base = baseline_for(spec, synth)
    np.savez(
        arrays, voiceprints=base.voiceprints, voiceprint_owner=base.voiceprint_owner,
        text_vectors=base.text_vectors, segment_voice=base.segment_voice,
    )
    texts.write_text("\n".join(base.texts), encoding="utf-8")
    return base


def baseline_for(spec: Spec, synth: Synth) -> Baseline:
    vps: list[Vec] = []
    vp_owner: list[npt.NDArray[np.int32]] = []
    tvs: list[Vec] = []
    texts: list[str] = []
    seg_voice: list[npt.NDArray[np.int32]] = []
    for c in range(spec.conversations):
        result, true_voice = synth.conversation(c)
        for spk in result.local_speakers:
            voice = int(
                true_voice[
                    next(i for i, s in enumerate(result.segments) if s.local_speaker == spk.label)
                ]
            )
            vps.append(np.stack(spk.vectors))
            vp_owner.append(np.full(len(spk.vectors), voice, dtype=np.int32))
        tvs.append(np.stack([s.text_vector for s in result.segments if s.text_vector is not None]))
        texts.extend(s.text for s in result.segments)
        seg_voice.append(true_voice)
    return Baseline(
        np.concatenate(vps),
        np.concatenate(vp_owner),
        np.concatenate(tvs),
        texts,
        np.concatenate(seg_voice),
    )


# ------------------------------------------------------------------ measuring


@dataclass
class Row:
    operation: str
    size: str
    median_ms: float
    baseline_ms: float | None
    target_ms: float | None
    note: str = ""

    def cells(self) -> list[str]:
        ratio = f"{self.median_ms / self.baseline_ms:.1f}x" if self.baseline_ms else "-"
        base = f"{self.baseline_ms:.2f}" if self.baseline_ms is not None else "-"
        target = f"<= {self.target_ms:g}" if self.target_ms is not None else "-"
        met = (
            "-" if self.target_ms is None else ("yes" if self.median_ms <= self.target_ms else "NO")
        )
        return [
            self.operation,
            self.size,
            f"{self.median_ms:.2f}",
            base,
            ratio,
            target,
            met,
            self.note,
        ]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def keyword_queries(synth: Synth, n: int) -> list[str]:
    """Mid-frequency single words (rank 50-3000) and two-word queries, as a user would type."""
    rng = np.random.default_rng([synth.spec.seed, 3])
    ranks = rng.integers(50, 3000, size=2 * n)
    singles = [synth.words[r] for r in ranks[: n // 2]]
    pairs = [
        f"{synth.words[a]} {synth.words[b]}"
        for a, b in zip(ranks[n // 2 : n], rng.integers(5, 200, size=n - n // 2), strict=True)
    ]
    return singles + pairs


def measure(
    spec: Spec,
    synth: Synth,
    path: Path,
    meta: dict[str, Any],
    base: Baseline,
    repeats: int,
    targets: bool,
    database_url: str | None = None,
) -> list[Row]:
    size = (
        f"{spec.speakers // 1000}k spk / {spec.segments / 1e6:g}M seg"
        if spec.speakers >= 1000
        else f"{spec.speakers} spk / {spec.segments} seg"
    )
    rows: list[Row] = []
    tgt: Callable[[float], float | None] = (lambda ms: ms) if targets else (lambda ms: None)
    mem = SpeakerMemory(path, database_url=database_url)
    try:
        speakers = mem.list_speakers()
        n_seg = sum(s.segment_count for s in speakers)
        log.warning(
            "%s: %d speakers, %d segments assigned in the store", size, len(speakers), n_seg
        )
        bench_conv = [0]

        def new_conversation(tag: str) -> int:
            bench_conv[0] += 1
            return mem.create_conversation(title=f"bench {tag} {bench_conv[0]}").id

        # 1. match one cluster: a tiny conversation whose one cluster is a stored voice; a
        #    random recurring voice (a few voiceprints), then the owner (heard everywhere, the
        #    most voiceprints). Its ingest also stores 2 segments: an upper bound of matching.
        voices = np.random.default_rng([spec.seed, 4]).integers(1, spec.speakers, size=repeats + 1)
        for who, picked, salt in (("recurring voice", voices, 100), ("owner voice", None, 300)):
            tiny = [
                synth.conversation(
                    0, n_segments=2, voices=[0 if picked is None else int(picked[i])],
                    salt=salt + i,
                )[0]
                for i in range(repeats + 1)
            ]
            match_ms: list[float] = []
            created = 0
            for i, result in enumerate(tiny):
                cid = new_conversation("match")
                ms, res = timed(partial(mem.ingest, cid, result))
                created += sum(d.created for d in res.decisions)
                if i:
                    match_ms.append(ms)
            cluster = np.stack(tiny[0].local_speakers[0].vectors)
            base_match = median_ms(partial(base.match, cluster), repeats)
            rows.append(
                Row(
                    f"match one cluster, {who} (whole ingest of 1 cluster, 2 segments)",
                    size,
                    statistics.median(match_ms),
                    base_match,
                    tgt(5),
                    f"{created}/{len(tiny)} clusters created a new speaker (expected 0); "
                    "upper bound: includes storing 2 segments and the commit",
                )
            )
            alone = match_alone_ms(mem, cluster, repeats)
            if alone is not None:
                rows.append(
                    Row(
                        f"match one cluster, {who}: the matching alone (match_voice)",
                        size,
                        alone[0],
                        base_match,
                        tgt(5),
                        f"SpeakerMemory.match_voice, what ingest runs per cluster; {alone[1]}",
                    )
                )

        # 2. keyword search
        queries = keyword_queries(synth, 30)
        hits: list[int] = []

        def kw_all() -> list[float]:
            out = []
            for q in queries:
                ms, res = timed(partial(mem.search_keyword, q, limit=20))
                out.append(ms)
                hits.append(len(res))
            return out

        kw_all()  # warm-up
        hits.clear()
        kw = [
            statistics.median(x)
            for x in zip(*(kw_all() for _ in range(max(1, repeats // 3))), strict=True)
        ]
        base_kw = statistics.median(
            timed(partial(base.keyword, q))[0] for q in queries[:5] + queries[-5:]
        )
        rows.append(
            Row(
                "keyword search (30 queries, limit 20)",
                size,
                statistics.median(kw),
                base_kw,
                tgt(20),
                f"p90 {np.percentile(kw, 90):.1f} ms, max {max(kw):.1f} ms; "
                f"median hits {statistics.median(hits):g}",
            )
        )
        common = synth.words[1]
        common_ms = median_ms(lambda: mem.search_keyword(common, limit=20), repeats)
        rows.append(
            Row(
                f"keyword search, very common word '{common}' (info)",
                size,
                common_ms,
                statistics.median(timed(lambda: base.keyword(common))[0] for _ in range(3)),
                None,
                "rank-2 word of the Zipf vocabulary",
            )
        )

        # 3. semantic search
        qrng = np.random.default_rng([spec.seed, 5])
        qvecs = synth.text_vectors(qrng, 20)
        sem: list[float] = []
        overlap: list[float] = []
        # Warm-up on other queries: the index's upper layers cached, as in a serving store.
        for q in synth.text_vectors(np.random.default_rng([spec.seed, 8]), 20):
            mem.search_semantic(q, TEXT_MODEL, limit=20)
        for q in qvecs:
            ms, res = timed(partial(mem.search_semantic, q, TEXT_MODEL, limit=20))
            sem.append(ms)
            exact = set(base.semantic(q))
            found = {_baseline_row(spec, h) for h in res}
            overlap.append(len(exact & found) / len(exact))
        base_sem = median_ms(lambda: base.semantic(qvecs[0]), repeats)
        rows.append(
            Row(
                "semantic search (kNN 384-d, limit 20)",
                size,
                statistics.median(sem),
                base_sem,
                tgt(100),
                f"p90 {np.percentile(sem, 90):.1f} ms; recall@20 vs exact "
                f"{statistics.mean(overlap):.2f}",
            )
        )

        # 5. ingest one hour (900 segments) - before identify, which changes the owner's kind
        hour_ms: list[float] = []
        new_spk: list[int] = []
        indexing_s: list[float] = []
        for i in range(max(2, repeats // 2) + 1):
            c = i % spec.conversations
            result, _ = synth.conversation(c, n_segments=900, salt=200 + i)
            cid = new_conversation("hour")
            ms, res = timed(partial(mem.ingest, cid, result))
            # PostgreSQL's indexer puts the hour's text vectors into the HNSW graph in the
            # background: let it finish before the next ingest is timed (on 2 cores it would
            # share them with it), and report its time apart.
            indexing_s.append(timed(mem.index_pending)[0] / 1000)
            if i:
                hour_ms.append(ms)
                new_spk.append(sum(d.created for d in res.decisions))
            last_hour = result
        base_ing = median_ms(lambda: base.ingest(last_hour), max(1, repeats // 2))
        rows.append(
            Row(
                "ingest one hour (900 segments)",
                size,
                statistics.median(hour_ms),
                base_ing,
                tgt(200),
                f"clusters per hour {len(last_hour.local_speakers)}, "
                f"new speakers per run {new_spk}; background indexing after each "
                f"{statistics.median(indexing_s):.1f} s",
            )
        )

        # 4. identify with propagation: the owner voice (10% of all segments)
        owner = int(meta["owner_speaker"])
        owner_info = next(s for s in mem.list_speakers() if s.speaker.id == owner)
        id_ms: list[float] = []
        undo_ms: list[float] = []
        relabelled: list[int] = []
        for i in range(max(2, repeats // 3)):
            ms, res = timed(partial(mem.identify, f"Owner {i}", speaker=owner))
            id_ms.append(ms)
            relabelled.append(res.segments_relabelled)
            ms, _ = timed(lambda: mem.undo())
            undo_ms.append(ms)
        base_id = median_ms(lambda: base.identify(0, spec.speakers), repeats)
        rows.append(
            Row(
                "identify new name (owner voice) + propagation",
                size,
                statistics.median(id_ms),
                base_id,
                tgt(1000),
                f"relabelled {relabelled[0]} segments (owner has {owner_info.segment_count})",
            )
        )
        rows.append(
            Row("  undo of that identify (info)", size, statistics.median(undo_ms), None, None)
        )

        # the heavier path: the name already belongs to an enrolled speaker -> merge of 100k rows
        erng = np.random.default_rng([spec.seed, 6])
        mem.enroll("Owner Enrolled", list(synth.voice_samples(erng, 0, 4)), VOICE_MODEL, "bench")
        mid_ms: list[float] = []
        mundo_ms: list[float] = []
        merged: list[int] = []
        for _ in range(max(2, repeats // 3)):
            ms, res = timed(lambda: mem.identify("Owner Enrolled", speaker=owner))
            mid_ms.append(ms)
            merged.append(res.segments_relabelled)
            ms, _ = timed(lambda: mem.undo())
            mundo_ms.append(ms)
        rows.append(
            Row(
                "identify existing name (merge owner into enrolled) + propagation",
                size,
                statistics.median(mid_ms),
                base_id,
                tgt(1000),
                f"relabelled {merged[0]} segments",
            )
        )
        rows.append(
            Row("  undo of that merge (info)", size, statistics.median(mundo_ms), None, None)
        )
    finally:
        mem.close()
    return rows


def match_alone_ms(mem: SpeakerMemory, cluster: Vec, repeats: int) -> tuple[float, str] | None:
    """`SpeakerMemory.match_voice`: the matching ingest runs per cluster, read-only (skipped
    when the store has no such method)."""
    match_voice = getattr(mem, "match_voice", None)
    if match_voice is None:
        log.warning("SpeakerMemory.match_voice missing: matching alone not measured")
        return None
    ranked = match_voice(list(cluster), VOICE_MODEL)
    best = f"best {ranked[0].speaker.label} at {ranked[0].score:.2f}" if ranked else "no match"
    return median_ms(partial(match_voice, list(cluster), VOICE_MODEL), repeats), best


def _baseline_row(spec: Spec, hit: SearchHit) -> int:
    """Row of a hit in the baseline arrays (built conversations are titled by their index)."""
    title = hit.conversation_title
    if not title.startswith("bench conversation "):
        return -1
    c = int(title.rsplit(" ", 1)[1])
    return c * spec.conv_segments + round(hit.segment.start / SEGMENT_SECONDS)


def print_table(rows: list[Row]) -> None:
    head = ["operation", "size", "median ms", "baseline ms", "ratio", "target ms", "met?", "notes"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r.cells()) + " |")
    sys.stdout.flush()


def fresh_schema(database_url: str, spec: Spec, reuse: bool = False) -> str:
    """A new, empty schema for one size's store in the PostgreSQL database at `database_url`
    (an older one of the same name is dropped; with `reuse`, kept as it is); returns the URL
    that works inside it."""
    import psycopg
    from sqlalchemy.engine import make_url

    schema = "bench_" + "".join(ch if ch.isalnum() else "_" for ch in spec.name.lower())
    url = make_url(database_url)
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"{schema}.segment",)).fetchone()
        if reuse and (found is None or found[0] is None):
            raise SystemExit(f"--pg-reuse: no store in schema {schema}; run without it first")
        if not reuse:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
    inside = url.update_query_dict({"options": f"-csearch_path={schema},public"})
    return inside.render_as_string(hide_password=False)


def copy_store(pristine: Path, workdir: Path, database_url: str,
               meta: dict[str, Any]) -> dict[str, Any]:
    """The PostgreSQL store as `speaker-memory migrate-store` makes it from the SQLite one
    (the same rows and ids, so the SQLite build's metadata holds for it)."""
    source_path = working_copy(pristine, workdir)
    source = SpeakerMemory(source_path)
    target = SpeakerMemory(workdir / "unused", database_url=database_url)
    try:
        report = source.copy_to(target)
    finally:
        target.close()
        source.close()
    log.warning("migrate-store copied %d rows in %.1f s", report.rows, report.seconds)
    return {**meta, "copy_seconds": round(report.seconds, 1)}


def print_side_by_side(sqlite: list[Row], postgresql: list[Row]) -> None:
    """The two backends' medians per operation, in one table."""
    head = ["operation", "size", "SQLite ms", "PostgreSQL ms", "PG / SQLite", "target ms",
            "PG met?"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for a, b in zip(sqlite, postgresql, strict=True):
        target = f"<= {b.target_ms:g}" if b.target_ms is not None else "-"
        met = "-" if b.target_ms is None else ("yes" if b.median_ms <= b.target_ms else "NO")
        print(f"| {a.operation} | {a.size} | {a.median_ms:.2f} | {b.median_ms:.2f} |"
              f" {b.median_ms / a.median_ms:.1f}x | {target} | {met} |")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="200 speakers / 5k segments only (seconds)")
    p.add_argument(
        "--sizes",
        default="1000x100000,10000x1000000",
        help="comma-separated SPEAKERSxSEGMENTS (ignored with --quick)",
    )
    p.add_argument(
        "--conv-segments",
        type=int,
        default=900,
        help="segments per built conversation (900 = one hour)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="where built stores are cached")
    p.add_argument(
        "--reuse", action="store_true", help="reuse a cached store built by a previous run"
    )
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument(
        "--database-url",
        default=None,
        help="also build and measure each size on this PostgreSQL database (a schema "
        "bench_<size> is made in it, replacing an older one), side by side with SQLite",
    )
    p.add_argument(
        "--pg-copy",
        action="store_true",
        help="with --database-url: make the PostgreSQL store by migrate-store from the SQLite "
        "one (the same rows; minutes instead of an ingest-by-ingest build)",
    )
    p.add_argument(
        "--pg-reuse",
        action="store_true",
        help="with --database-url: measure again on the bench_<size> schema an earlier run "
        "made (a copy of a 1M store takes long; the few conversations that run's measurements "
        "ingested stay in it)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)

    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="bench_memory_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.quick:
        specs = [Spec(200, 5000, 250)]
    else:
        specs = []
        for item in args.sizes.split(","):
            s, n = item.lower().split("x")
            specs.append(Spec(int(s), int(n), args.conv_segments))
    all_rows: list[Row] = []
    for spec in specs:
        synth = Synth(spec)
        pristine, meta = pristine_store(spec, synth, workdir, args.reuse)
        t = time.perf_counter()
        base = cached_baseline(spec, synth, workdir, args.reuse)
        log.warning("baseline arrays for %s ready in %.1f s", spec.name, time.perf_counter() - t)
        run = working_copy(pristine, workdir)
        targets = spec.speakers >= 10_000 and spec.segments >= 1_000_000
        rows = measure(spec, synth, run, meta, base, args.repeats, targets)
        all_rows.extend(rows)
        print(
            f"\n## {spec.name}: built in {meta['build_seconds']} s through SpeakerMemory.ingest "
            f"({spec.conversations} conversations; median build ingest "
            f"{meta['build_ingest_ms_median']} ms, "
            f"last 10 {meta['build_ingest_ms_last10_median']} ms); "
            f"store file {pristine.stat().st_size / 1e6:.0f} MB; built by memory/ code "
            f"{meta.get('memory_code', '?')}, measured with {memory_code_hash()}\n"
        )
        print_table(rows)
        if args.database_url:
            url = fresh_schema(args.database_url, spec, reuse=args.pg_reuse)
            if args.pg_reuse:
                pg_meta = meta
                built = "the store an earlier run copied (--pg-reuse)"
            elif args.pg_copy:
                pg_meta = copy_store(pristine, workdir, url, meta)
                built = (f"copied from the SQLite store by migrate-store in "
                         f"{pg_meta['copy_seconds']} s")
            else:
                pg_meta = build_store(spec, synth, workdir / f"{spec.name}.unused.sqlite", url)
                built = (f"built in {pg_meta['build_seconds']} s (median build ingest "
                         f"{pg_meta['build_ingest_ms_median']} ms, last 10 "
                         f"{pg_meta['build_ingest_ms_last10_median']} ms; the background "
                         f"indexer finished {pg_meta['pending_index_seconds']} s after the "
                         "last ingest)")
            pg_rows = measure(spec, synth, workdir / f"{spec.name}.unused.sqlite", pg_meta, base,
                              args.repeats, targets, database_url=url)
            print(f"\n## {spec.name} on PostgreSQL: {built}\n")
            print_table(pg_rows)
            print(f"\n## {spec.name}: SQLite and PostgreSQL side by side\n")
            print_side_by_side(rows, pg_rows)
        del base
    if len(specs) > 1:
        print("\n## all sizes\n")
        print_table(all_rows)
    print(f"\nLoad average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")
    print(
        "\nTargets apply at 10k speakers / 1M segments; baseline = numpy brute force in RAM "
        "over the same synthetic data, measured in this run."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
