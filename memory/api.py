"""`SpeakerMemory`: the memory layer's one public entry point (a facade over the store).

CONTRACT — signatures here are what tools/ and scripts/ code against. Every method that
changes identity runs in one transaction and records an identity event that undo can reverse
(delete_conversation, which is final, records none).
Speaker arguments take an id (int, or a decimal string) or a name (case-insensitive), or an
'Unknown N' label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
import sqlean
from sqlalchemy import select, update
from sqlalchemy.exc import ArgumentError, DBAPIError

from memory import (
    backup,
    conversations,
    deletion,
    events,
    identity,
    job_progress,
    live,
    profiles,
    queries,
    store_copy,
)
from memory.db import Database, Store, Tx
from memory.errors import InvalidOperation, ModelMismatch, StoreError
from memory.events import Change
from memory.identity import Ctx
from memory.job_progress import JobProgress
from memory.limits import MAX_TITLE_LENGTH, bounded
from memory.migrations import latest_version, migrate
from memory.pg import PgDatabase, display_url, is_postgresql
from memory.pg_index import PgSearchIndex
from memory.search_index import SearchIndex
from memory.speakers import SELECT_SPEAKER, SavedSpeaker, get_info, info, infos, resolve_row
from memory.store_copy import CopyReport
from memory.tables import (
    conversation,
    identity_event,
    meta,
    segment,
    segment_voice,
    speaker_centroid,
    voice_model,
)
from memory.tables import speaker as speaker_table
from memory.timeutil import from_db_required
from memory.types import (
    ConversationDetail,
    ConversationInfo,
    ConversationStatus,
    ConversationSummary,
    DeletedConversation,
    EnrolledVoice,
    EnrollResult,
    IdentifyResult,
    IdentityChange,
    IdentityEventView,
    IngestResult,
    MatchConfig,
    MatchDecision,
    Page,
    PipelineResultLike,
    ProfileAudio,
    RebuiltVoice,
    SearchFilters,
    SearchHit,
    SegmentView,
    SpeakerInfo,
    SpeakerKind,
    SpeakerSummary,
    SpeakerTally,
    Suggestion,
    Vector,
)
from memory.vector_index import SqliteSearchIndex
from memory.vectors import from_blob, mean_direction, normalize, stack
from memory.voiceprints import CentroidCache, decide, score_speakers
from memory.wording import counted, segments_in_conversations

log = logging.getLogger(__name__)

SpeakerRef = int | str
RRF_K = 60
MAX_PAGE = 500
"""Most items one call returns (conversations, segments, hits): the one page limit."""


def _page(limit: int, offset: int) -> tuple[int, int]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidOperation(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}; page "
                               "through more with offset")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidOperation(f"offset must be 0 or more, got {offset!r}")
    return limit, offset


class SpeakerMemory:
    def __init__(
        self, db_path: Path, match: MatchConfig | None = None, *, database_url: str | None = None
    ) -> None:
        """Open (creating and migrating as needed) the store: the SQLite file at `db_path`, or
        the PostgreSQL database at `database_url` (postgresql+psycopg://...; several
        processes may share it). Thread-safe: one instance is shared by the server's threads."""
        self.db_path = Path(db_path)
        self.config = match or MatchConfig()
        self._db: Store
        where = self.db_path if database_url is None else display_url(database_url)
        if database_url is not None and not is_postgresql(database_url):
            raise StoreError(
                f"the database URL {where} is not a PostgreSQL one; give "
                "postgresql+psycopg://user:password@host/database, or none for the SQLite file"
            )
        try:
            if database_url is not None:
                self._db = PgDatabase(database_url)
            else:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
                self._db = Database(self.db_path)
            self._schema_version = migrate(self._db)
        except StoreError:
            raise
        except (OSError, sqlean.Error, DBAPIError, ArgumentError) as exc:
            raise StoreError(f"cannot open the store at {where}: {exc}") from exc
        self._centroids = CentroidCache()
        # The search indexes of the store's backend, picked once: callers never branch.
        self._index: SearchIndex = (
            PgSearchIndex() if self._db.dialect == "postgresql" else SqliteSearchIndex()
        )
        self._speaker_lists: dict[tuple[str | None, str], list[SpeakerSummary]] = {}

    def close(self) -> None:
        self._db.dispose()

    def warm_up(self) -> None:
        """Load the in-RAM search structures now (voice centroids, quantised text vectors)
        instead of on the first match or search: ~2 s at 1M segments. Optional; a server
        may call it in a background thread at start."""
        # A read, like match_voice: warming a cache is no write (a write would also count as
        # one and invalidate every process's caches).
        with self._db.write_lock, self._db.read() as tx:
            self._centroids.check(tx)
            for row in tx.rows(select(voice_model.c.model_id)):
                self._centroids.warm(tx, str(row.model_id))
        with self._db.read() as tx:
            self._index.warm(tx)

    def __enter__(self) -> SpeakerMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ transactions
    @contextmanager
    def _write(self) -> Iterator[Ctx]:
        """One write transaction; RAM mirrors are dropped if it rolls back."""
        with self._db.write_lock:
            try:
                with self._db.write() as tx:
                    generation = self._centroids.begin(tx)
                    yield Ctx(tx, self._centroids, self.config)
            except BaseException:
                self._centroids.clear()
                raise
            self._centroids.committed(generation)

    # ------------------------------------------------------------ conversations
    def create_conversation(
        self,
        *,
        title: str,
        source_name: str | None = None,
        sha256: str | None = None,
        recorded_at: datetime | None = None,
        audio_path: str | None = None,
    ) -> ConversationInfo:
        """A new conversation in status 'queued'. Raises DuplicateAudio (with the existing id)
        when a conversation with the same sha256 exists."""
        with self._write() as ctx:
            cid = conversations.create(
                ctx.tx, title=title, source_name=source_name, sha256=sha256,
                recorded_at=recorded_at, audio_path=audio_path,
            )
            return conversations.conversation_info(
                conversations.get_conversation_row(ctx.tx, cid)
            )

    def find_conversation_by_sha256(self, sha256: str) -> ConversationInfo | None:
        with self._db.read() as tx:
            row = conversations.find_by_sha256(tx, sha256)
            return None if row is None else conversations.conversation_info(row)

    def save_job_progress(self, progress: JobProgress) -> None:
        """Record where a worker's job on this conversation stands (memory.job_progress)."""
        with self._write() as ctx:
            job_progress.save(ctx.tx, progress)

    def job_progress(self, conversation_id: int) -> JobProgress | None:
        """Where a worker's job on this conversation stands; None when no worker's job was
        queued for it."""
        with self._db.read() as tx:
            return job_progress.load(tx, conversation_id)

    def set_conversation_status(
        self, conversation_id: int, status: ConversationStatus, error: str | None = None
    ) -> ConversationInfo:
        with self._write() as ctx:
            conversations.set_status(ctx.tx, conversation_id, status, error)
            return conversations.conversation_info(
                conversations.get_conversation_row(ctx.tx, conversation_id)
            )

    def retry_conversation(self, conversation_id: int, audio_path: str | None) -> ConversationInfo:
        """Queue a failed or interrupted conversation again, made from the audio as given now
        (a failed upload's stored copy may be gone; the retry brings the bytes again)."""
        with self._write() as ctx:
            conversations.set_status(ctx.tx, conversation_id, "queued", None)
            ctx.tx.execute(update(conversation).where(conversation.c.id == conversation_id)
                           .values(audio_path=audio_path))
            return conversations.conversation_info(
                conversations.get_conversation_row(ctx.tx, conversation_id)
            )

    def update_conversation_title(self, conversation_id: int, title: str) -> ConversationInfo:
        bounded(title, "title", MAX_TITLE_LENGTH)
        with self._write() as ctx:
            conversations.get_conversation_row(ctx.tx, conversation_id)
            ctx.tx.execute(update(conversation).where(conversation.c.id == conversation_id)
                           .values(title=title))
            return conversations.conversation_info(
                conversations.get_conversation_row(ctx.tx, conversation_id)
            )

    def delete_conversation(self, conversation_id: int) -> DeletedConversation:
        """Delete a conversation for good, in one transaction: its segments and what hangs off
        them, the voice samples learnt from it (its speakers' centroids are recomputed), and
        the unknown speakers heard only there. Final: not an identity event, nothing restores
        it; undoing an earlier event that needs its rows raises UndoConflict. The audio file
        is the caller's to remove (audio_path of the result)."""
        with self._write() as ctx:
            removed = deletion.delete_conversation(ctx, self._index, conversation_id)
            changed = infos(ctx.tx, removed.speakers_changed)
        return DeletedConversation(
            conversation=removed.conversation, segments=removed.segments,
            voiceprints=removed.voiceprints,
            speakers_removed=[info(row) for row in removed.speakers_removed],
            speakers_changed=[changed[k] for k in sorted(changed)],
        )

    def ingest(self, conversation_id: int, result: PipelineResultLike) -> IngestResult:
        """Store the pipeline's segments and match its per-recording speakers against stored
        voices (one transaction). Sets duration/language/model ids and status 'done'."""
        with self._write() as ctx:
            done = conversations.ingest(ctx, self._index, conversation_id, result)
            return self._ingested(ctx, conversation_id, done)

    def _ingested(self, ctx: Ctx, conversation_id: int,
                  done: conversations.Ingested) -> IngestResult:
        """Inside an ingest's transaction: publish its text codes, describe its decisions."""
        generation = self._index.generation(ctx.tx)
        speakers = infos(ctx.tx, [d.speaker_id for d in done.decisions])
        suggested = infos(ctx.tx, [d.suggested.speaker_id for d in done.decisions
                                   if d.suggested is not None])
        if done.text_codes:
            self._index.publish(generation, done.text_codes)
        return IngestResult(
            conversation_id=conversation_id,
            segment_ids=done.segment_ids,
            decisions=[
                MatchDecision(
                    d.label, speakers[d.speaker_id], d.score, d.created,
                    Suggestion(suggested[d.suggested.speaker_id], d.suggested.score)
                    if d.suggested is not None else None,
                )
                for d in done.decisions
            ],
        )

    # ------------------------------------------------------------ live sessions
    def start_live(self, *, title: str, audio_path: str, source_name: str) -> ConversationInfo:
        """A conversation that is being listened to: its segments come as they are
        confirmed (add_live_segment) until finalise_live replaces them."""
        with self._write() as ctx:
            cid = live.start(ctx.tx, title, audio_path, source_name)
            return conversations.conversation_info(
                conversations.get_conversation_row(ctx.tx, cid))

    def live_sessions(self) -> list[live.OpenSession]:
        """Live sessions not finalised (those of a process that died included)."""
        with self._db.read() as tx:
            return live.open_sessions(tx)

    def add_live_segment(
        self, conversation_id: int, segment: live.LiveSegmentIn
    ) -> tuple[int, SpeakerInfo]:
        """Store one confirmed live segment (one transaction); returns its id and speaker."""
        with self._write() as ctx:
            segment_id, speaker_id, codes = live.add_segment(
                ctx, self._index, conversation_id, segment)
            generation = self._index.generation(ctx.tx)
            speaker = infos(ctx.tx, [speaker_id])[speaker_id]
        if codes:
            self._index.publish(generation, codes)
        return segment_id, speaker

    def extend_live_segment(
        self, conversation_id: int, segment_id: int, segment: live.LiveSegmentIn
    ) -> SpeakerInfo | None:
        """A stored live segment that was still open got more confirmed words (one
        transaction); returns its speaker now."""
        with self._write() as ctx:
            speaker_id, codes = live.extend_segment(
                ctx, self._index, conversation_id, segment_id, segment)
            generation = self._index.generation(ctx.tx)
            speaker = None if speaker_id is None else infos(ctx.tx, [speaker_id])[speaker_id]
        if codes:
            self._index.publish(generation, codes)
        return speaker

    def record_live_seconds(self, conversation_id: int, seconds: float) -> None:
        with self._write() as ctx:
            live.record_seconds(ctx.tx, conversation_id, seconds)

    def segment_speakers(self, conversation_id: int) -> dict[int, SpeakerInfo]:
        """segment id -> its speaker now, for the conversation's labelled segments."""
        with self._db.read() as tx:
            owners = live.segment_speakers(tx, conversation_id)
            speakers = infos(tx, {s for s in owners.values() if s is not None})
        return {seg: speakers[s] for seg, s in owners.items() if s is not None and s in speakers}

    def move_live_voice(self, conversation_id: int, voice: int, speaker_id: int) -> list[int]:
        """A live voice first stored as a new unknown turned out to be `speaker_id`."""
        with self._write() as ctx:
            moved = live.move_voice(ctx.tx, conversation_id, voice, speaker_id)
            ctx.cache.refresh(ctx.tx, [speaker_id])
            return moved

    def finalise_live(self, conversation_id: int, result: PipelineResultLike) -> IngestResult:
        """Replace a live session's segments by the offline result of its whole recording, in
        one transaction, keeping seen segment ids and manual labels (memory.live)."""
        with self._write() as ctx:
            done = live.finalise(ctx, self._index, conversation_id, result)
            return self._ingested(ctx, conversation_id, done)

    def recognise_voice(self, vectors: Sequence[Vector], model_id: str) -> Suggestion | None:
        """The stored speaker these vectors (one voice) are, as ingest decides it: best score
        above its threshold and ahead of the runner-up by the margin; None otherwise."""
        if len(vectors) == 0:
            raise ModelMismatch("matching a voice needs at least one voice vector")
        query = mean_direction(stack(list(vectors), "voice vectors"))
        with self._db.write_lock, self._db.read() as tx:
            self._centroids.check(tx)
            best = decide(score_speakers(tx, self._centroids, model_id, query, self.config),
                          self.config, model_id)
            if best is None:
                return None
            return Suggestion(infos(tx, [best.speaker_id])[best.speaker_id], best.score)

    def reprocess(self, conversation_id: int) -> IngestResult:
        """Re-run matching of the conversation's stored clusters against current profiles.
        Segments with assignment 'manual' keep their speaker; segment ids survive."""
        with self._write() as ctx:
            change = Change()
            decisions = conversations.reprocess(ctx, change, conversation_id)
            # Recorded even when nothing moved: every reprocess is one undoable event.
            events.record(ctx.tx, "reprocess", f"Re-matched conversation {conversation_id}", change)
            speakers = infos(ctx.tx, [d.speaker_id for d in decisions])
            segment_ids = [int(segment_id) for (segment_id,) in ctx.tx.stream(
                select(segment.c.id).where(segment.c.conversation_id == conversation_id)
                .order_by(segment.c.id)
            )]
        return IngestResult(
            conversation_id=conversation_id,
            segment_ids=segment_ids,
            decisions=[MatchDecision(d.label, speakers[d.speaker_id], d.score, d.created)
                       for d in decisions],
        )

    # ------------------------------------------------------------ identity
    def resolve_speaker(self, ref: SpeakerRef) -> SpeakerInfo:
        with self._db.read() as tx:
            return info(resolve_row(tx, ref))

    def enroll(
        self, name: str, vectors: Sequence[Vector], model_id: str, source: str,
        speech_seconds: float = 0.0,
        channel_vectors: Mapping[str, Sequence[Vector]] | None = None,
        clip_path: str | None = None, clip_sha256: str | None = None,
    ) -> EnrollResult:
        """One identity event: the voice's vectors, plus the same clip as other channels carry
        it (`channel_vectors`: model id → vectors, e.g. its telephone-band profile). With
        `clip_path`, the clip as kept on disk is recorded for the speaker (undo forgets it;
        merges move it), so a later voice model can rebuild the profile from it."""
        with self._write() as ctx:
            change = Change()
            speaker_id, created, added, summary = identity.enroll(
                ctx, change, name, list(vectors), model_id, source, speech_seconds,
                channel_vectors, None if clip_path is None else (clip_path, clip_sha256),
            )
            event_id = events.record(ctx.tx, "enroll", summary, change)
            ctx.cache.refresh(ctx.tx, [speaker_id])
            return EnrollResult(get_info(ctx.tx, speaker_id), created, added, event_id)

    def identify(
        self, name: str, *, segment_id: int | None = None, speaker: SpeakerRef | None = None
    ) -> IdentifyResult:
        """"That was my colleague Sarah": name the voice of a segment (or a speaker)."""
        with self._write() as ctx:
            change = Change()
            outcome = identity.identify(ctx, change, name, segment_id, speaker)
            event_id = 0
            if not change.empty:
                event_id = events.record(ctx.tx, "identify", outcome.summary, change)
            relabel = outcome.relabel
            suggested = infos(ctx.tx, [sid for sid, _ in relabel.suggestions])
            merged_rows = change.speakers_before
            return IdentifyResult(
                event_id=event_id,
                speaker=get_info(ctx.tx, outcome.target),
                segments_relabelled=relabel.segments,
                conversations_relabelled=relabel.conversations,
                speakers_merged=[info(SavedSpeaker.of(merged_rows[sid]))
                                 for sid, _ in relabel.merged],
                suggestions=[Suggestion(suggested[sid], score)
                             for sid, score in relabel.suggestions if sid in suggested],
                changed=not change.empty,
                speakers_removed=list(relabel.removed),
            )

    def rename(self, speaker: SpeakerRef, new_name: str) -> IdentityChange:
        with self._write() as ctx:
            change = Change()
            sid, summary, segments, convs = identity.rename(ctx, change, speaker, new_name)
            event_id = events.record(ctx.tx, "rename", summary, change)
            ctx.cache.refresh(ctx.tx, [sid])
            message = f"{summary}; {segments_in_conversations(segments, convs)} now show the name"
            return IdentityChange(event_id, "rename", [get_info(ctx.tx, sid)], segments, convs,
                                  message)

    def merge(self, source: SpeakerRef, target: SpeakerRef) -> IdentityChange:
        with self._write() as ctx:
            change = Change()
            tid, summary, segments, convs = identity.merge(ctx, change, source, target)
            event_id = events.record(ctx.tx, "merge", summary, change)
            ctx.cache.refresh(ctx.tx, change.touched)
            return IdentityChange(event_id, "merge", [get_info(ctx.tx, tid)], segments, convs,
                                  summary)

    def mark_misidentified(
        self, segment_id: int, correct_speaker: SpeakerRef | None = None
    ) -> IdentityChange:
        with self._write() as ctx:
            change = Change()
            new, summary = identity.mark_misidentified(ctx, change, segment_id, correct_speaker)
            event_id = events.record(ctx.tx, "misidentify", summary, change)
            ctx.cache.refresh(ctx.tx, change.touched)
            affected = infos(ctx.tx, change.touched)
            ordered = [affected[new]] + [v for k, v in sorted(affected.items()) if k != new]
            return IdentityChange(event_id, "misidentify", ordered, 1, 1, summary)

    def delete_speaker(self, speaker: SpeakerRef) -> IdentityChange:
        with self._write() as ctx:
            change = Change()
            row = resolve_row(ctx.tx, speaker)
            before = info(row)
            segments, convs = identity.delete_speaker(ctx, change, int(row.id))
            summary = (f"Deleted {before.label}; {segments_in_conversations(segments, convs)} "
                       "kept, now without a speaker")
            event_id = events.record(ctx.tx, "delete", summary, change)
            ctx.cache.refresh(ctx.tx, change.touched)
            return IdentityChange(event_id, "delete", [before], segments, convs, summary)

    def delete_unknown_speakers(self) -> IdentityChange:
        with self._write() as ctx:
            change = Change()
            rows = ctx.tx.rows(
                SELECT_SPEAKER.where(speaker_table.c.kind == "unknown").order_by(speaker_table.c.id)
            )
            if not rows:
                return IdentityChange(0, "delete_unknown", [], 0, 0,
                                      "There were no unknown speakers to delete.")
            segments = 0
            for row in rows:
                segments += identity.delete_speaker(ctx, change, int(row.id))[0]
            # The segments' conversations, as collected while moving them.
            conversations = len(change.conversations)
            summary = (f"Deleted {counted(len(rows), 'unknown speaker')}; "
                       f"{segments_in_conversations(segments, conversations)} kept, now "
                       "without a speaker")
            event_id = events.record(ctx.tx, "delete_unknown", summary, change)
            ctx.cache.refresh(ctx.tx, change.touched)
            return IdentityChange(event_id, "delete_unknown", [info(r) for r in rows], segments,
                                  conversations, summary)

    def undo(self, event_id: int | None = None) -> IdentityChange:
        with self._write() as ctx:
            undone = events.undo(ctx.tx, event_id)
            ctx.cache.refresh(ctx.tx, undone.speakers)
            affected = infos(ctx.tx, undone.speakers)
            counts = segments_in_conversations(undone.segments_changed,
                                               undone.conversations_changed)
            return IdentityChange(
                undone.event_id, "undo", [affected[k] for k in sorted(affected)],
                undone.segments_changed, undone.conversations_changed,
                f"Undid event {undone.event_id} ({undone.action}): {counts} show their earlier "
                f"speaker again. The change was: {undone.summary}",
            )

    def identity_history(self, limit: int = 20) -> list[IdentityEventView]:
        limit, _ = _page(limit, 0)
        with self._db.read() as tx:
            rows = tx.rows(
                select(identity_event.c.id, identity_event.c.action, identity_event.c.created_at,
                       identity_event.c.summary, identity_event.c.undone_at)
                .order_by(identity_event.c.id.desc()).limit(limit)
            )
        return [IdentityEventView(int(r.id), r.action, from_db_required(r.created_at), r.summary,
                                  r.undone_at is not None)
                for r in rows]

    def enrolled_voices(self, model_id: str) -> list[EnrolledVoice]:
        """Centroids of named speakers for one model (for memory-informed diarization)."""
        with self._db.read() as tx:
            rows = tx.rows(
                select(speaker_centroid.c.speaker_id, speaker_centroid.c.total)
                .join(speaker_table, speaker_table.c.id == speaker_centroid.c.speaker_id)
                .where(speaker_centroid.c.model_id == model_id, speaker_centroid.c.count > 0,
                       speaker_table.c.kind == "enrolled")
                .order_by(speaker_table.c.id)
            )
            speakers = infos(tx, [r.speaker_id for r in rows])
        voices: list[EnrolledVoice] = []
        for row in rows:
            found = speakers[int(row.speaker_id)]
            centroid = normalize(np.frombuffer(row.total, dtype=np.float64).astype(np.float32))
            threshold = (self.config.for_model(model_id).threshold
                         if found.match_threshold is None else found.match_threshold)
            voices.append(EnrolledVoice(found, centroid, threshold))
        return voices

    def match_voice(self, vectors: Sequence[Vector], model_id: str) -> list[Suggestion]:
        """Stored speakers ranked by how well these voice vectors (one voice, one model)
        match, best first (at most 16). Read-only. The first is what ingest would choose when
        its score clears its threshold and beats the runner-up by the margin."""
        if len(vectors) == 0:
            raise ModelMismatch("matching a voice needs at least one voice vector")
        query = mean_direction(stack(list(vectors), "voice vectors"))
        with self._db.write_lock, self._db.read() as tx:
            self._centroids.check(tx)
            scored = score_speakers(tx, self._centroids, model_id, query, self.config)
            speakers = infos(tx, [s.speaker_id for s in scored])
        return [Suggestion(speakers[s.speaker_id], s.score) for s in scored]

    # ------------------------------------------------------------ profiles across voice models
    def speakers_needing_profile(self, model_id: str) -> list[SpeakerInfo]:
        """Speakers whose voiceprints are all of other models: none of `model_id` or of its
        channels (memory.types.with_channel). A recording embedded with `model_id` can match
        none of them until their profile is rebuilt (add_rebuilt_profile)."""
        with self._db.read() as tx:
            ids = profiles.speakers_needing_profile(tx, model_id)
            found = infos(tx, ids)
        return [found[i] for i in ids if i in found]

    def profile_audio(self, speaker: SpeakerRef) -> ProfileAudio:
        """The stored audio a speaker's profile can be rebuilt from: its enrollment clips and
        its segments (not excluded from the profile) in conversations with a stored audio path.
        Whether the files still exist is the caller's to check."""
        with self._db.read() as tx:
            return profiles.profile_audio(tx, int(resolve_row(tx, speaker).id))

    def add_rebuilt_profile(
        self, speaker_id: int, model_id: str, voices: Sequence[RebuiltVoice]
    ) -> int:
        """Store a speaker's profile of `model_id` (and its channels), computed again from
        stored audio, in one transaction; returns the voiceprints added. Adds nothing (0) when
        the speaker is gone or already has a profile of that model (idempotent). Not an
        identity event: labels do not change; undoing an earlier change that moved this
        speaker's audio drops these prints again."""
        with self._write() as ctx:
            added = profiles.add_rebuilt(ctx.tx, speaker_id, model_id, voices)
            if not added:
                return 0
            ctx.cache.refresh(ctx.tx, [speaker_id])
            return len(added)

    def set_match_threshold(self, speaker: SpeakerRef, threshold: float | None) -> SpeakerInfo:
        """Per-speaker override of the match threshold (None: back to the default)."""
        if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
            raise InvalidOperation(f"a threshold is a cosine in [-1, 1], got {threshold}")
        with self._write() as ctx:
            row = resolve_row(ctx.tx, speaker)
            ctx.tx.execute(update(speaker_table).where(speaker_table.c.id == row.id).values(
                match_threshold=None if threshold is None else float(threshold)
            ))
            return get_info(ctx.tx, int(row.id))

    # ------------------------------------------------------------ queries
    def list_speakers(self, kind: SpeakerKind | None = None) -> list[SpeakerSummary]:
        if kind not in (None, "enrolled", "unknown"):
            raise InvalidOperation(f"kind must be 'enrolled' or 'unknown', got {kind!r}")
        with self._db.read() as tx:
            # Statistics scan every segment (~0.3 s CPU at 1M): reuse them until a write.
            generation = tx.value(
                select(meta.c.value).where(meta.c.key == CentroidCache.GENERATION_KEY)
            )
            key = (kind, str(generation))
            cached = self._speaker_lists.get(key)
            if cached is not None:
                return list(cached)
            summaries = queries.list_speakers(tx, kind)
        self._speaker_lists = {key: summaries}
        return list(summaries)

    def list_conversations(
        self, *, limit: int = 20, offset: int = 0, speaker: SpeakerRef | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> Page[ConversationSummary]:
        limit, offset = _page(limit, offset)
        with self._db.read() as tx:
            speaker_id = None if speaker is None else int(resolve_row(tx, speaker).id)
            return queries.list_conversations(
                tx, limit=limit, offset=offset, speaker_id=speaker_id, since=since, until=until
            )

    def conversation_titles(self) -> list[tuple[int, str]]:
        """(id, title) of every conversation, newest first."""
        with self._db.read() as tx:
            return queries.conversation_titles(tx)

    def get_conversation(self, conversation_id: int) -> ConversationDetail:
        with self._db.read() as tx:
            return queries.get_conversation(tx, conversation_id)

    def speaker_tallies(self, conversation_id: int) -> list[SpeakerTally]:
        """Who speaks in a conversation: segment counts and an example segment each."""
        with self._db.read() as tx:
            return queries.speaker_tallies(tx, conversation_id)

    def speaker_example(self, speaker: SpeakerRef) -> SegmentView | None:
        """The segment that shows a speaker's voice best (None when it has no segment left)."""
        with self._db.read() as tx:
            return queries.speaker_example(tx, int(resolve_row(tx, speaker).id))

    def get_conversation_info(self, conversation_id: int) -> ConversationInfo:
        with self._db.read() as tx:
            return conversations.conversation_info(
                conversations.get_conversation_row(tx, conversation_id)
            )

    def get_segment(self, segment_id: int) -> SegmentView:
        with self._db.read() as tx:
            return queries.get_segment(tx, segment_id)

    def latest_segments(
        self, limit: int = 20, conversation_id: int | None = None
    ) -> list[SegmentView]:
        limit, _ = _page(limit, 0)
        with self._db.read() as tx:
            return queries.latest_segments(tx, limit, conversation_id)

    def conversations_by_speaker(
        self, speaker: SpeakerRef, *, limit: int = 20, offset: int = 0
    ) -> Page[ConversationSummary]:
        return self.list_conversations(limit=limit, offset=offset, speaker=speaker)

    def search_keyword(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 20, offset: int = 0
    ) -> list[SearchHit]:
        """Every word of `query` must occur (any text is valid: operators and quotes are taken
        literally). Best bm25 first, among the newest 1000 matches (keeps very common words
        fast at millions of segments). Hits carry the conversation's time (recorded_at, else
        created_at)."""
        limit, offset = _page(limit, offset)
        with self._db.read() as tx:
            self._check_filters(tx, filters)
            scored = self._index.keyword_search(tx, query, filters, offset + limit)
            return queries.hits(tx, scored[offset:])

    def search_semantic(
        self, query_vector: Vector, text_model_id: str, filters: SearchFilters | None = None,
        *, limit: int = 20, offset: int = 0,
    ) -> list[SearchHit]:
        """Nearest segments by cosine of their text vectors (same text model only); score is
        the cosine. A store without vectors of that model gives no hits."""
        limit, offset = _page(limit, offset)
        with self._db.read() as tx:
            self._check_filters(tx, filters)
            scored = self._index.semantic_search(
                tx, query_vector, text_model_id, filters, offset + limit
            )
            return queries.hits(tx, scored[offset:])

    def search_hybrid(
        self, query: str, query_vector: Vector, text_model_id: str,
        filters: SearchFilters | None = None, *, limit: int = 20, offset: int = 0,
    ) -> list[SearchHit]:
        """Reciprocal-rank fusion of keyword and semantic hits."""
        limit, offset = _page(limit, offset)
        wanted = max(50, 2 * (offset + limit))
        with self._db.read() as tx:
            self._check_filters(tx, filters)
            keyword = self._index.keyword_search(tx, query, filters, wanted)
            semantic = self._index.semantic_search(tx, query_vector, text_model_id, filters, wanted)
            fused: dict[int, float] = {}
            for ranked in (keyword, semantic):
                for rank, (sid, _) in enumerate(ranked):
                    fused[sid] = fused.get(sid, 0.0) + 1.0 / (RRF_K + rank + 1)
            order = sorted(fused.items(), key=lambda kv: (-kv[1], -kv[0]))
            return queries.hits(tx, order[offset:offset + limit])

    @staticmethod
    def _check_filters(tx: Tx, filters: SearchFilters | None) -> None:
        """Unknown ids in a filter are errors, not silently empty results."""
        if filters is None:
            return
        if filters.speaker_id is not None:
            get_info(tx, filters.speaker_id)
        if filters.conversation_id is not None:
            conversations.get_conversation_row(tx, filters.conversation_id)
        if filters.since and filters.until and filters.since > filters.until:
            raise InvalidOperation("the time range is empty: 'since' is after 'until'")

    def segment_vectors(self, conversation_id: int) -> dict[int, Vector]:
        """Stored voice vectors of a conversation's segments, by segment id."""
        with self._db.read() as tx:
            conversations.get_conversation_row(tx, conversation_id)
            rows = tx.rows(
                select(segment_voice.c.segment_id, segment_voice.c.vector)
                .join(segment, segment.c.id == segment_voice.c.segment_id)
                .where(segment.c.conversation_id == conversation_id)
                .order_by(segment_voice.c.segment_id)
            )
        return {int(r.segment_id): from_blob(r.vector) for r in rows}

    # ------------------------------------------------------------ backup
    def export_json(self, path: Path) -> None:
        with self._db.read() as tx:
            backup.export(tx, Path(path), self._schema_version)

    def import_json(self, path: Path) -> None:
        """Into an empty store only (ImportNotEmpty otherwise); reproduces every row."""
        tables = backup.read(Path(path), latest_version())
        with self._write() as ctx:
            backup.restore(ctx.tx, self._index, tables)
        self._centroids.clear()
        self._index.clear()

    def index_pending(self) -> None:
        """Finish now what search indexing does in the background (PostgreSQL: text vectors
        waiting for the HNSW graph; searches find them meanwhile; nothing on SQLite). For
        benchmarks that measure a steady state."""
        self._db.index_pending()

    def copy_to(self, target: SpeakerMemory) -> CopyReport:
        """Copy every row of this SQLite store into `target`, an empty PostgreSQL store
        (StoreNotEmpty otherwise), in one transaction there, verified before it commits
        (memory.store_copy). This store is read from one snapshot and left unchanged."""
        if target._schema_version != self._schema_version:
            raise StoreError(
                f"the PostgreSQL store is at schema version {target._schema_version}, this "
                f"one at {self._schema_version}"
            )
        with self._db.read() as source, target._write() as ctx:
            report = store_copy.copy_store(source, ctx.tx)
        target._centroids.clear()
        target._index.clear()
        return report


__all__ = ["SpeakerMemory", "SpeakerRef"]
