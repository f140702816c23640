// Identity changes shared by the conversation and speakers pages. Each resolves to true when
// something changed (the caller then reloads what it shows), and tells the server's message.
import { api } from "./api.js";
import { ask, confirmAction } from "./dialogs.js";
import { notice } from "./dom.js";

async function attempt(work) {
  try {
    const result = await work();
    if (result === null) return false;
    notice(result.message);
    return true;
  } catch (error) {
    notice(error.message, "error");
    return false;
  }
}

export function renameSpeaker(speaker) {
  return attempt(async () => {
    const name = await ask({ title: `Rename ${speaker.label}`, label: "New name", value: speaker.name || "", submit: "Rename" });
    if (!name) return null;
    return api(`/speakers/${speaker.id}`, { method: "PATCH", json: { name } });
  });
}

export function mergeSpeaker(speaker, others) {
  return attempt(async () => {
    const target = await ask({
      title: `Merge ${speaker.label}`, label: `${speaker.label} is the same person as`, select: true,
      choices: others.map((o) => ({ value: o.id, label: o.label })), submit: "Merge",
    });
    if (!target) return null;
    return api(`/speakers/${speaker.id}/merge`, { method: "POST", json: { into: Number(target) } });
  });
}

export function deleteSpeaker(speaker) {
  return attempt(async () => {
    const sure = await confirmAction(`Delete ${speaker.label}?`, "Its segments stay, without a speaker; its voice profile is removed. Undo brings it back.", "Delete");
    if (!sure) return null;
    return api(`/speakers/${speaker.id}`, { method: "DELETE" });
  });
}

export function deleteUnknown() {
  return attempt(async () => {
    const sure = await confirmAction("Delete every unknown voice?", "Their segments stay, without a speaker. Undo brings them back.", "Delete all unknown");
    if (!sure) return null;
    return api("/speakers", { method: "DELETE", query: { kind: "unknown" } });
  });
}

/** Undo one change (the one the page showed, by its id). */
export function undo(event) {
  return attempt(() => api("/undo", { method: "POST", json: { event_id: event.id } }));
}

/** The latest change that undo would reverse, or null. */
export async function lastChange() {
  const history = await api("/history", { query: { limit: 20 } });
  return history.events.find((event) => !event.undone) || null;
}
