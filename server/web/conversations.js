// Conversations: the list (newest first) and search by keyword / meaning / both, filtered by
// speaker and date; a hit opens its conversation at the segment.
import { api } from "./api.js";
import { speakerColour } from "./colors.js";
import { clock, date, duration, el, notice } from "./dom.js";

const PAGE = 50;

function speakerChips(speakers) {
  return el("span", { class: "chips" }, speakers.map((s) => {
    const chip = el("span", { class: "chip", text: s.label });
    chip.style.color = speakerColour(s);
    return chip;
  }));
}

function hitRow(hit) {
  const segment = hit.segment;
  const link = el("a", {
    href: `#/conversation/${segment.conversation_id}?segment=${segment.id}`,
    class: "hit-link",
  }, el("span", { class: "hit-title", text: hit.conversation_title }),
  ` at ${clock(segment.start)}`);
  const who = el("span", { class: "speaker", text: segment.speaker ? segment.speaker.label : "nobody" });
  who.style.color = speakerColour(segment.speaker);
  return el("li", { class: "hit", "data-segment": segment.id }, link, " ", who, ": ",
    el("span", { text: segment.text }));
}

export async function render(main) {
  const [speakers, list] = await Promise.all([
    api("/speakers"), api("/conversations", { query: { limit: PAGE } }),
  ]);
  const results = el("ol", { class: "hits", "aria-label": "Search results" });
  const form = el("form", { class: "search card", role: "search" },
    el("div", { class: "field grow" }, el("label", { for: "q", text: "Search" }),
      el("input", { id: "q", name: "q", type: "search", required: true, placeholder: "words or a question" })),
    el("div", { class: "field" }, el("label", { for: "mode", text: "Match" }),
      el("select", { id: "mode", name: "mode" },
        el("option", { value: "hybrid", text: "Both" }),
        el("option", { value: "keyword", text: "Keywords" }),
        el("option", { value: "semantic", text: "Meaning" }))),
    el("div", { class: "field" }, el("label", { for: "speaker", text: "Speaker" }),
      el("select", { id: "speaker", name: "speaker" }, el("option", { value: "", text: "Anyone" }),
        speakers.speakers.map((s) => el("option", { value: s.id, text: s.label })))),
    el("div", { class: "field" }, el("label", { for: "since", text: "From" }),
      el("input", { id: "since", name: "since", type: "date" })),
    el("div", { class: "field" }, el("label", { for: "until", text: "To" }),
      el("input", { id: "until", name: "until", type: "date" })),
    el("button", { type: "submit", text: "Search" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const until = data.get("until");
    try {
      const found = await api("/search", { query: {
        query: data.get("q"), mode: data.get("mode"), speaker: data.get("speaker"),
        since: data.get("since"), until: until ? `${until}T23:59:59` : "",
      } });
      results.replaceChildren(...found.hits.map(hitRow));
      if (!found.hits.length) results.append(el("li", { class: "empty", text: "Nothing found." }));
    } catch (error) {
      notice(error.message, "error");
    }
  });

  const rows = list.conversations.map((c) => el("tr", {},
    el("td", {}, el("a", { href: `#/conversation/${c.id}`, text: c.title })),
    el("td", { text: date(c.recorded_at || c.created_at) }),
    el("td", { text: duration(c.duration) }),
    el("td", {}, speakerChips(c.speakers)),
    el("td", {}, el("span", { class: `status status-${c.status}`, text: c.status }))));
  const table = list.conversations.length
    ? el("table", { class: "list" },
      el("caption", { text: `${list.total} conversation${list.total === 1 ? "" : "s"}, newest first` }),
      el("thead", {}, el("tr", {}, ["Title", "Date", "Length", "Speakers", "Status"].map(
        (h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows))
    : el("p", { class: "empty" }, "No conversations yet. ", el("a", { href: "#/upload", text: "Upload one" }), ".");
  main.append(el("h2", { text: "Conversations" }), form, results, el("div", { class: "scroll" }, table));
}
