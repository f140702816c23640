// Live: the browser microphone streamed to the live WebSocket (/api/v1/live, protocol v1):
// partial text in grey, confirmed text with its speaker, a stop button that finalises.
import { api, token } from "./api.js";
import { speakerColour } from "./colors.js";
import { clock, el, notice } from "./dom.js";
import { record } from "./recorder.js";

const PROTOCOL = "speaker-memory.v1";

export function render(main, { info }) {
  main.append(el("h2", { text: "Live" }));
  if (!info.live) {
    main.append(el("p", { class: "card unavailable", id: "live-unavailable",
      text: "Live listening is not available on this server: it does not serve the live WebSocket (/api/v1/live) yet. Record the conversation and upload it instead." }),
    el("button", { type: "button", disabled: true, text: "Start recording" }));
    return null;
  }
  let socket = null;
  let recorder = null;
  const title = el("input", { id: "live-title", name: "title", autocomplete: "off" });
  const start = el("button", { type: "button", id: "live-start", text: "Start recording" });
  const stop = el("button", { type: "button", id: "live-stop", class: "danger", text: "Stop", disabled: true });
  const state = el("p", { class: "hint", id: "live-state", role: "status" });
  const lines = el("ol", { class: "transcript live-lines", "aria-label": "Live transcript", "aria-live": "polite" });
  const partial = el("p", { class: "partial", id: "live-partial", "aria-hidden": "true" });
  const rows = new Map();

  function speakerLabel(speaker) {
    const who = el("span", { class: "speaker", text: speaker ? speaker.label : "…" });
    who.style.color = speakerColour(speaker);
    return who;
  }

  function onMessage(message) {
    switch (message.type) {
      case "started":
        state.replaceChildren(el("span", { text: "Listening. " }),
          el("a", { href: `#/conversation/${message.conversation_id}`, text: "Open the conversation" }));
        break;
      case "partial":
        partial.textContent = message.text;
        break;
      case "final": {
        // A segment still open is sent again as it grows (same segment_id): its line is
        // replaced in place.
        partial.textContent = "";
        const row = el("li", { class: message.complete ? "segment final" : "segment final open", "data-segment": message.segment_id },
          el("span", { class: "time", text: clock(message.start) }),
          el("div", { class: "said" }, speakerLabel(message.speaker), el("p", { class: "text", text: message.text })));
        const shown = rows.get(message.segment_id);
        if (shown) shown.replaceWith(row); else lines.append(row);
        rows.set(message.segment_id, row);
        break;
      }
      case "speaker_update":
        for (const id of message.segment_ids) {
          rows.get(id)?.querySelector(".speaker")?.replaceWith(speakerLabel(message.speaker));
        }
        break;
      case "slow_down":
        state.textContent = `The server is ${Math.round(message.behind_seconds)} s behind; it catches up before taking more audio.`;
        break;
      case "stopped":
        state.replaceChildren(el("span", { text: "Stopped; the whole recording is being processed again. " }),
          el("a", { href: `#/conversation/${message.conversation_id}`, text: "Open the conversation" }));
        break;
      case "error":
        notice(message.message, "error");
        state.textContent = message.message;
        break;
      default:
        break;
    }
  }

  async function begin() {
    start.disabled = true;
    try {
      const protocols = [PROTOCOL];
      if (token()) {
        const { ticket } = await api("/live/tickets", { method: "POST", json: {} });
        protocols.push(`ticket.${ticket}`);
      }
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/api/v1/live`, protocols);
      socket.binaryType = "arraybuffer";
      socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
      socket.addEventListener("close", finish);
      await new Promise((resolve, reject) => {
        socket.addEventListener("open", resolve, { once: true });
        socket.addEventListener("error", () => reject(new Error("The live connection could not be opened.")), { once: true });
      });
      socket.send(JSON.stringify({ type: "start", format: "webm", sample_rate: 16000, title: title.value.trim() || undefined }));
      recorder = await record((chunk) => { if (socket.readyState === WebSocket.OPEN) socket.send(chunk); });
      stop.disabled = false;
      stop.focus();
    } catch (error) {
      notice(error.message, "error");
      if (socket) socket.close();
      finish();
    }
  }

  async function end() {
    stop.disabled = true;
    state.textContent = "Finishing…";
    if (recorder) await recorder.stop();  // its last chunk is sent before this resolves
    recorder = null;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
  }

  function finish() {
    if (recorder) recorder.stop();
    recorder = null;
    start.disabled = false;
    stop.disabled = true;
  }

  start.addEventListener("click", begin);
  stop.addEventListener("click", end);
  main.append(el("div", { class: "card live" },
    el("div", { class: "field" }, el("label", { for: "live-title", text: "Title (optional)" }), title),
    el("div", { class: "buttons" }, start, stop), state), lines, partial);
  return () => { if (socket) socket.close(); finish(); };
}
