// One conversation: a speaker timeline, the transcript coloured by speaker with a clip per
// segment, the recording following along, and every change a person makes to who is who.
import * as actions from "./actions.js";
import { api, download, mediaUrl, playIn } from "./api.js";
import { speakerColour } from "./colors.js";
import { ask } from "./dialogs.js";
import { clock, date, duration, el, notice } from "./dom.js";

const POLL_MS = 2000;

export async function render(main, { id, query, info }) {
  const state = { conversation: null, segments: [], speakers: [], last: null };
  const view = el("article", { class: "conversation", "aria-labelledby": "conversation-title" });
  main.append(view);

  const recording = el("audio", { id: "recording", controls: true, preload: "metadata", "aria-label": "Recording" });
  const clip = el("audio", { id: "clip-player", class: "clip-player", "aria-label": "Segment clip" });
  const follow = el("input", { id: "follow", type: "checkbox", checked: true });
  let recordingLoaded = false;
  let urls = [];
  let current = null;

  async function load() {
    const [transcript, everyone, last] = await Promise.all([
      api(`/conversations/${id}`), api("/speakers"), actions.lastChange(),
    ]);
    state.conversation = transcript.conversation;
    state.segments = transcript.segments;
    state.speakers = everyone.speakers;
    state.last = last;
  }

  async function changed(work) {
    if (await work()) {
      await load();
      draw();
    }
  }

  function seek(segment) {
    loadRecording();
    recording.currentTime = segment.start;
    highlight(segment, true);
  }

  function highlight(segment, scroll) {
    if (current === segment) return;
    if (current) view.querySelector(`#seg-${current.id}`)?.classList.remove("playing");
    current = segment;
    const row = segment && view.querySelector(`#seg-${segment.id}`);
    if (row) {
      row.classList.add("playing");
      if (scroll) row.scrollIntoView({ block: "nearest" });
    }
  }

  async function loadRecording() {
    if (recordingLoaded) return;
    recordingLoaded = true;
    try {
      const url = await mediaUrl(`/conversations/${id}/audio`);
      if (url.startsWith("blob:")) urls.push(url);
      const at = recording.currentTime;
      recording.src = url;
      if (at) recording.currentTime = at;
    } catch (error) {
      notice(error.message, "error");
    }
  }

  function playClip(segment) {
    return playIn(clip, `/segments/${segment.id}/audio`, urls);
  }

  function nameVoice(segment) {
    return changed(async () => {
      const name = await ask({
        title: "Who is this?", label: `Name of the voice at ${clock(segment.start)}`,
        value: segment.speaker && segment.speaker.name ? segment.speaker.name : "",
        choices: state.speakers.filter((s) => s.name).map((s) => ({ label: s.name })), submit: "Name",
        extra: el("p", { class: "quote", text: `“${segment.text}”` }),
      });
      if (!name) return false;
      try {
        const result = await api(`/segments/${segment.id}/identify`, { method: "POST", json: { speaker_name: name } });
        notice(result.message);
        showSuggestions(result);
        return true;
      } catch (error) {
        notice(error.message, "error");
        return false;
      }
    });
  }

  function markOther(segment) {
    return changed(async () => {
      const name = await ask({
        title: "Someone else", optional: true, submit: "Move segment",
        label: "Who says this? (empty when not sure: the segment is left without a speaker)",
        choices: state.speakers.map((s) => ({ label: s.label })),
        extra: el("p", { class: "quote", text: `“${segment.text}”` }),
      });
      if (name === null) return false;
      try {
        const json = name ? { correct_speaker: name } : {};
        notice((await api(`/segments/${segment.id}/misidentified`, { method: "POST", json })).message);
        return true;
      } catch (error) {
        notice(error.message, "error");
        return false;
      }
    });
  }

  const suggestions = el("div", { class: "suggestions", "aria-live": "polite" });

  function showSuggestions(result) {
    suggestions.replaceChildren();
    if (!result.suggestions.length) return;
    suggestions.append(el("p", { text: `Possibly ${result.speaker.label} too:` }),
      el("ul", {}, result.suggestions.map((s) => el("li", {},
        `${s.speaker.label} (${Math.round(s.score * 100)}%) `,
        el("button", { type: "button", class: "small", text: `Merge into ${result.speaker.label}`, onclick: () => changed(async () => {
          try {
            notice((await api(`/speakers/${s.speaker.id}/merge`, { method: "POST", json: { into: result.speaker.id } })).message);
            suggestions.replaceChildren();
            return true;
          } catch (error) {
            notice(error.message, "error");
            return false;
          }
        }) })))));
  }

  function header() {
    const c = state.conversation;
    const title = el("input", { id: "title", name: "title", value: c.title, required: true });
    const titleForm = el("form", { class: "title-form", onsubmit: (event) => {
      event.preventDefault();
      changed(async () => {
        try {
          await api(`/conversations/${id}`, { method: "PATCH", json: { title: title.value } });
          notice("Title saved.");
          return true;
        } catch (error) {
          notice(error.message, "error");
          return false;
        }
      });
    } }, el("label", { for: "title", class: "visually-hidden", text: "Title" }), title,
    el("button", { type: "submit", class: "secondary", text: "Save title" }));
    const format = el("select", { id: "export-format" }, info.export_formats.map(
      (f) => el("option", { value: f, text: f.toUpperCase() })));
    const exporter = el("div", { class: "export" },
      el("label", { for: "export-format", text: "Export" }), format,
      el("button", { type: "button", class: "secondary", text: "Download", onclick: () =>
        download(`/conversations/${id}/export`, { format: format.value }).catch((e) => notice(e.message, "error")) }));
    const undo = el("button", { type: "button", id: "undo", class: "secondary", disabled: !state.last,
      text: state.last ? `Undo: ${state.last.summary}` : "Nothing to undo",
      onclick: () => changed(() => actions.undo(state.last)) });
    return el("header", { class: "conversation-head" },
      el("h2", { id: "conversation-title", class: "visually-hidden", text: c.title }),
      titleForm,
      el("p", { class: "meta" }, `${date(c.recorded_at || c.created_at)} · ${duration(c.duration)} · `,
        el("span", { class: `status status-${c.status}`, text: c.status }),
        c.error ? el("span", { class: "error", text: ` ${c.error}` }) : null),
      el("div", { class: "toolbar" }, exporter, undo));
  }

  function heard() {
    const seen = new Map();
    for (const s of state.segments) if (s.speaker && !seen.has(s.speaker.id)) seen.set(s.speaker.id, s.speaker);
    return [...seen.values()];
  }

  function legend(speakers) {
    const counts = new Map();
    for (const s of state.segments) if (s.speaker) counts.set(s.speaker.id, (counts.get(s.speaker.id) || 0) + 1);
    return el("section", { class: "legend", "aria-label": "Speakers in this conversation" },
      el("ul", {}, speakers.map((speaker) => {
        const label = el("span", { class: "speaker", text: speaker.label });
        label.style.color = speakerColour(speaker);
        const others = state.speakers.filter((o) => o.id !== speaker.id);
        return el("li", { "data-speaker-id": speaker.id }, label, ` ${counts.get(speaker.id)} segments `,
          el("button", { type: "button", class: "small secondary", text: "Rename", "aria-label": `Rename ${speaker.label}`,
            onclick: () => changed(() => actions.renameSpeaker(speaker)) }),
          el("button", { type: "button", class: "small secondary", text: "Merge…", "aria-label": `Merge ${speaker.label} into another speaker`,
            disabled: !others.length, onclick: () => changed(() => actions.mergeSpeaker(speaker, others)) }));
      })), suggestions);
  }

  function timeline(speakers) {
    const length = Math.max(state.conversation.duration || 0, ...state.segments.map((s) => s.end), 1);
    const lanes = new Map(speakers.map((s) => [s.id, el("div", { class: "track" })]));
    for (const segment of state.segments) {
      const track = segment.speaker && lanes.get(segment.speaker.id);
      if (!track) continue;
      const bar = el("button", { type: "button", class: "bar", tabindex: "-1", "data-segment": segment.id,
        title: `${segment.speaker.label} ${clock(segment.start)}–${clock(segment.end)}`,
        "aria-label": `${segment.speaker.label} at ${clock(segment.start)}`, onclick: () => seek(segment) });
      bar.style.left = `${(100 * segment.start) / length}%`;
      bar.style.width = `${Math.max(0.15, (100 * (segment.end - segment.start)) / length)}%`;
      bar.style.background = speakerColour(segment.speaker);
      if (segment.overlapped_by.length) bar.classList.add("overlapped");
      track.append(bar);
    }
    return el("section", { class: "timeline", "aria-label": "Speaker timeline (click a turn to play from there)" },
      speakers.map((speaker) => {
        const name = el("span", { class: "lane-name", text: speaker.label });
        name.style.color = speakerColour(speaker);
        return el("div", { class: "lane", "data-speaker-id": speaker.id }, name, lanes.get(speaker.id));
      }),
      el("div", { class: "ruler" }, el("span", { text: "0:00" }), el("span", { text: clock(length) })));
  }

  function row(segment, index) {
    const who = el("span", { class: "speaker", text: segment.speaker ? segment.speaker.label : "nobody" });
    who.style.color = speakerColour(segment.speaker);
    const over = segment.overlapped_by.length
      ? el("span", { class: "over", text: ` (over ${segment.overlapped_by.map((s) => s.label).join(", ")})` }) : null;
    return el("li", { id: `seg-${segment.id}`, class: "segment", tabindex: "-1", "data-segment": segment.id,
      "data-speaker-id": segment.speaker ? segment.speaker.id : "" },
    el("button", { type: "button", class: "time link", text: clock(segment.start), "aria-label": `Play the recording from ${clock(segment.start)}`, onclick: () => { seek(segment); recording.play().catch(() => {}); } }),
    // elementtiming: scripts/bench_page.py reads when the first segment is painted.
    el("div", { class: "said" }, who, over, el("p", { class: "text", text: segment.text, elementtiming: index === 0 ? "first-segment" : null })),
    el("div", { class: "row-actions" },
      el("button", { type: "button", class: "small play", text: "Play", "aria-label": `Play segment at ${clock(segment.start)}`, onclick: () => playClip(segment) }),
      el("button", { type: "button", class: "small secondary name", text: "Who is this?", onclick: () => nameVoice(segment) }),
      el("button", { type: "button", class: "small secondary other", text: "Someone else", onclick: () => markOther(segment) })));
  }

  const body = el("div", { class: "conversation-body" });
  const players = el("section", { class: "players", "aria-label": "Players" },
    recording, el("label", { class: "inline" }, follow, " Follow the recording"), clip);
  view.append(body);

  function draw() {
    const speakers = heard();
    const scroll = window.scrollY;
    current = null;
    body.replaceChildren(header(), players, timeline(speakers), legend(speakers),
      el("ol", { class: "transcript", "aria-label": "Transcript" }, state.segments.map((segment, index) => row(segment, index))));
    window.scrollTo(0, scroll);
  }

  recording.addEventListener("timeupdate", () => {
    const t = recording.currentTime;
    // The last segment starting at or before t (segments are sorted by start).
    let lo = 0;
    let hi = state.segments.length - 1;
    let found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (state.segments[mid].start <= t) { found = state.segments[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    highlight(found && found.end >= t ? found : null, follow.checked && !recording.paused);
  });
  recording.addEventListener("play", loadRecording);

  await load();
  draw();
  // Still being processed (an upload, or a live session being finalised): redraw when done.
  let waiting = null;
  if (["queued", "processing"].includes(state.conversation.status)) {
    waiting = setInterval(async () => {
      try {
        const status = await api(`/conversations/${id}/status`);
        const shown = view.querySelector(".conversation-head .status");
        if (shown) shown.textContent = `${status.stage || status.status} ${Math.round(100 * (status.progress || 0))}%`;
        if (["queued", "processing"].includes(status.status)) return;
        clearInterval(waiting);
        await load();
        draw();
      } catch (error) {
        clearInterval(waiting);
        notice(error.message, "error");
      }
    }, POLL_MS);
  }
  // After the first paint: with a token the recording comes as one download (see mediaUrl).
  setTimeout(loadRecording, 0);
  const target = query.get("segment");
  if (target) {
    const row = view.querySelector(`#seg-${CSS.escape(target)}`);
    if (row) {
      row.classList.add("target");
      row.scrollIntoView({ block: "center" });
      row.focus({ preventScroll: true });
    } else {
      notice(`Segment ${target} is not in this conversation any more.`, "error");
    }
  }
  return () => {
    clearInterval(waiting);
    for (const url of urls) URL.revokeObjectURL(url);
    urls = [];
  };
}
