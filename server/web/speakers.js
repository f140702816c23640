// Speakers: named and unknown voices with what was heard of them, a sample to play, rename,
// merge, delete (one or every unknown voice), and enrollment from a file or the microphone.
import * as actions from "./actions.js";
import { api, playIn } from "./api.js";
import { speakerColour } from "./colors.js";
import { date, duration, el, notice } from "./dom.js";
import { record } from "./recorder.js";

export async function render(main) {
  const sample = el("audio", { id: "sample-player", class: "clip-player", "aria-label": "Speaker sample" });
  const table = el("div", { class: "scroll" });
  let urls = [];

  async function changed(work) {
    if (await work()) await load();
  }

  function play(speaker) {
    return playIn(sample, `/speakers/${speaker.id}/sample`, urls);
  }

  async function load() {
    const { speakers } = await api("/speakers");
    const rows = speakers.map((speaker) => {
      const label = el("span", { class: "speaker", text: speaker.label });
      label.style.color = speakerColour(speaker);
      const others = speakers.filter((o) => o.id !== speaker.id);
      return el("tr", { "data-speaker-id": speaker.id },
        el("th", { scope: "row" }, label),
        el("td", { text: speaker.kind === "enrolled" ? "named" : "unknown" }),
        el("td", { text: speaker.segment_count }),
        el("td", { text: speaker.conversation_count }),
        el("td", { text: duration(speaker.speech_seconds) }),
        el("td", { text: date(speaker.last_heard) }),
        el("td", { class: "row-actions" },
          el("button", { type: "button", class: "small", text: "Play", "aria-label": `Play a sample of ${speaker.label}`,
            disabled: !speaker.segment_count, onclick: () => play(speaker) }),
          el("button", { type: "button", class: "small secondary", text: "Rename", "aria-label": `Rename ${speaker.label}`,
            onclick: () => changed(() => actions.renameSpeaker(speaker)) }),
          el("button", { type: "button", class: "small secondary", text: "Merge…", "aria-label": `Merge ${speaker.label} into another speaker`,
            disabled: !others.length, onclick: () => changed(() => actions.mergeSpeaker(speaker, others)) }),
          el("button", { type: "button", class: "small danger", text: "Delete", "aria-label": `Delete ${speaker.label}`,
            onclick: () => changed(() => actions.deleteSpeaker(speaker)) })));
    });
    const last = await actions.lastChange();
    table.replaceChildren(
      el("div", { class: "toolbar" },
        el("button", { type: "button", class: "danger", text: "Delete all unknown", disabled: !speakers.some((s) => s.kind === "unknown"),
          onclick: () => changed(actions.deleteUnknown) }),
        el("button", { type: "button", id: "undo", class: "secondary", disabled: !last,
          text: last ? `Undo: ${last.summary}` : "Nothing to undo", onclick: () => changed(() => actions.undo(last)) })),
      speakers.length
        ? el("table", { class: "list speakers" },
          el("caption", { text: `${speakers.length} voice${speakers.length === 1 ? "" : "s"}` }),
          el("thead", {}, el("tr", {}, ["Speaker", "Kind", "Segments", "Conversations", "Heard", "Last heard", "Actions"].map(
            (h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, rows))
        : el("p", { class: "empty", text: "No voices yet." }));
  }

  main.append(el("h2", { text: "Speakers" }), table, sample, enrollForm(() => load()));
  await load();
  return () => { for (const url of urls) URL.revokeObjectURL(url); urls = []; };
}

function enrollForm(reload) {
  let recorded = null;
  let recording = null;
  const status = el("p", { class: "hint", role: "status" });
  const file = el("input", { id: "enroll-file", name: "file", type: "file", accept: "audio/*" });
  const recordButton = el("button", { type: "button", class: "secondary", text: "Record from microphone" });
  recordButton.addEventListener("click", async () => {
    try {
      if (recording) {
        recorded = await recording.stop();
        recording = null;
        recordButton.textContent = "Record again";
        status.textContent = `Recorded ${Math.round(recorded.size / 1024)} KB; enroll it with the name above.`;
        return;
      }
      recording = await record();
      recorded = null;
      recordButton.textContent = "Stop recording";
      status.textContent = "Recording: speak alone for 10–30 seconds.";
    } catch (error) {
      notice(error.message, "error");
    }
  });
  const form = el("form", { class: "card enroll" },
    el("h3", { text: "Enroll a voice" }),
    el("p", { class: "hint", text: "10–30 seconds of one person speaking alone." }),
    el("div", { class: "field" }, el("label", { for: "enroll-name", text: "Name" }),
      el("input", { id: "enroll-name", name: "name", required: true, autocomplete: "off" })),
    el("div", { class: "field" }, el("label", { for: "enroll-file", text: "Audio file" }), file),
    el("div", { class: "buttons" }, recordButton, el("button", { type: "submit", text: "Enroll" })),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData();
    data.set("name", form.elements.name.value);
    if (recorded) data.set("file", recorded, "recording.webm");
    else if (file.files[0]) data.set("file", file.files[0]);
    else {
      notice("Choose a file or record the voice first.", "error");
      return;
    }
    status.textContent = "Learning the voice…";
    try {
      const result = await api("/speakers", { method: "POST", form: data });
      notice(result.message || result.error);  // 202 + error: still learning, in the background
      status.textContent = "";
      form.reset();
      recorded = null;
      await reload();
    } catch (error) {
      status.textContent = "";
      notice(error.message, "error");
    }
  });
  return form;
}
