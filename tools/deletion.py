"""Deleting a conversation for good: the store's rows (memory.deletion) and the server's own
copy of its audio. Final: nothing restores it, and the result says so."""

from __future__ import annotations

from memory.errors import ConversationNotReady
from memory.wording import counted
from tools.context import App
from tools.inputs import discard_stored_copy, require_id
from tools.models import ConversationDeletedOut, speaker_ref
from tools.queues import processing_queue


def delete_conversation(app: App, conversation_id: int) -> ConversationDeletedOut:
    require_id(conversation_id, "conversation_id")
    if app.live.get(conversation_id) is not None:
        raise ConversationNotReady(
            f"conversation {conversation_id} is being listened to; stop_listening first, "
            "then delete it once it is finalised.")
    job = processing_queue(app).get(conversation_id)
    if job is not None and not job.state().done:
        # Its job would go on writing into a conversation that is gone.
        raise ConversationNotReady(
            f"conversation {conversation_id} is still being processed, so it cannot be deleted "
            "now; call get_processing_status until it is done or failed, then delete it."
        )
    deleted = app.memory.delete_conversation(conversation_id)
    info = deleted.conversation
    # After the commit: a file deleted before a rollback could not come back.
    audio_deleted = discard_stored_copy(app, info.audio_path)
    parts = [counted(deleted.segments, "segment"),
             counted(deleted.voiceprints, "voice sample")]
    if deleted.speakers_removed:
        parts.append(", ".join(s.label for s in deleted.speakers_removed)
                     + " (heard only there)")
    if audio_deleted:
        audio = "; its uploaded audio was deleted too"
    elif info.audio_path:
        audio = f"; the audio file {info.audio_path} was left where it is"
    else:
        audio = ""
    return ConversationDeletedOut(
        conversation_id=info.id, title=info.title, segments_deleted=deleted.segments,
        voiceprints_deleted=deleted.voiceprints,
        speakers_removed=[speaker_ref(s) for s in deleted.speakers_removed],
        audio_deleted=audio_deleted,
        message=f"Deleted conversation {info.id} ('{info.title}') with "
        + ", ".join(parts) + audio + ". This is final: undo_identity_change cannot bring "
        "it back.",
    )
