// Modal questions in a <dialog> (focus stays inside; Escape cancels).
import { el } from "./dom.js";

/** Ask for one value. `choices`: suggestions (a datalist) or, with `select`, the only options.
 * Resolves to the trimmed answer, or null when cancelled. */
export function ask({ title, label, value = "", choices = [], select = false, submit = "OK", optional = false, extra = null }) {
  return new Promise((resolve) => {
    const id = `ask-${Math.random().toString(36).slice(2)}`;
    const input = select
      ? el("select", { id, name: "value" }, choices.map((c) => el("option", { value: c.value, text: c.label })))
      : el("input", { id, name: "value", value, required: !optional, autocomplete: "off", list: choices.length ? `${id}-list` : null });
    const form = el("form", { method: "dialog", class: "card" },
      el("h2", { text: title }),
      extra,
      el("label", { for: id, text: label }), input,
      choices.length && !select ? el("datalist", { id: `${id}-list` }, choices.map((c) => el("option", { value: c.label }))) : null,
      el("div", { class: "buttons" },
        el("button", { type: "submit", value: "ok", text: submit }),
        el("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => dialog.close("cancel") })));
    const dialog = el("dialog", { "aria-labelledby": `${id}-title` }, form);
    form.querySelector("h2").id = `${id}-title`;
    dialog.addEventListener("close", () => {
      const answer = dialog.returnValue === "ok" ? input.value.trim() : null;
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** Ask a yes/no question. */
export function confirmAction(title, text, yes = "Yes") {
  return new Promise((resolve) => {
    const dialog = el("dialog", { "aria-label": title },
      el("form", { method: "dialog", class: "card" },
        el("h2", { text: title }), el("p", { text }),
        el("div", { class: "buttons" },
          el("button", { type: "submit", value: "yes", text: yes }),
          el("button", { type: "submit", value: "no", class: "secondary", text: "Cancel" }))));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
