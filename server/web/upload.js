// Upload: several files at once, each with its own progress, taken from its processing job.
import { api } from "./api.js";
import { el, notice } from "./dom.js";

const POLL_MS = 500;

export function render(main, { info }) {
  let active = true;
  const files = el("input", { id: "files", name: "files", type: "file", multiple: true, accept: "audio/*,video/*" });
  const drop = el("label", { for: "files", class: "drop" },
    el("strong", { text: "Drop audio files here" }), el("span", { text: " or choose them" }));
  const list = el("ul", { class: "uploads", "aria-label": "Uploads" });
  const form = el("form", { class: "card upload" },
    el("div", { class: "field grow" }, el("label", { for: "upload-title", text: "Title (optional; one file: its title, several: a prefix)" }),
      el("input", { id: "upload-title", name: "title", autocomplete: "off" })),
    el("div", { class: "field" }, el("label", { for: "num-speakers", text: "Speakers (if known)" }),
      el("input", { id: "num-speakers", name: "num_speakers", type: "number", min: "1", max: "32", inputmode: "numeric" })),
    drop, files,
    el("p", { class: "hint", text: `Up to ${Math.round(info.max_upload_bytes / 1048576)} MB a file.` }));

  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    send([...event.dataTransfer.files]);
  });
  files.addEventListener("change", () => {
    send([...files.files]);
    files.value = "";
  });

  async function send(chosen) {
    const title = form.elements.title.value.trim();
    const speakers = form.elements.num_speakers.value;
    // One at a time: the server processes them in turn anyway, and each shows its own progress.
    for (const file of chosen) {
      const named = chosen.length > 1 && title ? `${title}: ${file.name}` : title;
      await uploadOne(file, named, speakers);
    }
  }

  async function uploadOne(file, title, speakers) {
    const bar = el("progress", { max: "100", value: "0", "aria-label": `Progress of ${file.name}` });
    const state = el("span", { class: "state", text: "uploading…" });
    const item = el("li", { class: "upload-item", "data-file": file.name }, el("span", { class: "file", text: file.name }), bar, state);
    list.prepend(item);
    if (file.size > info.max_upload_bytes) {
      fail(item, state, `${file.name} is over the ${Math.round(info.max_upload_bytes / 1048576)} MB upload limit.`);
      return;
    }
    const data = new FormData();
    data.set("file", file);
    if (title) data.set("title", title);
    if (speakers) data.set("num_speakers", speakers);
    let result;
    try {
      result = await api("/conversations", { method: "POST", form: data });
    } catch (error) {
      fail(item, state, error.message);
      return;
    }
    const id = result.conversation_id;
    if (result.duplicate) {
      item.classList.add("duplicate");
      bar.value = 100;
      state.replaceChildren(el("span", { text: `${result.message} ` }), open(id));
      return;
    }
    await follow(id, item, bar, state);
  }

  async function follow(id, item, bar, state) {
    while (active) {
      let status;
      try {
        status = await api(`/conversations/${id}/status`);
      } catch (error) {
        fail(item, state, error.message);
        return;
      }
      if (status.status === "done") {
        bar.value = 100;
        item.classList.add("done");
        state.replaceChildren(el("span", { text: "done " }), open(id));
        return;
      }
      if (status.status === "failed" || status.status === "interrupted") {
        fail(item, state, status.error || status.message);
        return;
      }
      bar.value = Math.round(100 * (status.progress || 0));
      state.textContent = `${status.stage || status.status} ${bar.value}%`;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  function fail(item, state, message) {
    item.classList.add("failed");
    state.textContent = message;
    notice(message, "error");
  }

  function open(id) {
    return el("a", { href: `#/conversation/${id}`, class: "open", text: "Open" });
  }

  main.append(el("h2", { text: "Upload" }), form, list);
  return () => { active = false; };
}
