// The page's router: #/conversations, #/conversation/<id>[?segment=<id>], #/speakers,
// #/upload, #/live. Each view module exports render(main, params) and may return a cleanup.
import { api, setToken, token, whenUnauthorised } from "./api.js";
import { notice } from "./dom.js";
import * as conversation from "./conversation.js";
import * as conversations from "./conversations.js";
import * as live from "./live.js";
import * as speakers from "./speakers.js";
import * as upload from "./upload.js";

const VIEWS = { conversations, conversation, speakers, upload, live };
const main = document.getElementById("main");
const login = document.getElementById("login");
let cleanup = null;
let info = null;

function route() {
  const [path, search] = (location.hash.slice(1) || "/conversations").split("?");
  const [, name = "conversations", id] = path.split("/");
  return { name: VIEWS[name] ? name : "conversations", id, query: new URLSearchParams(search) };
}

async function show() {
  if (!info) return;
  const { name, id, query } = route();
  if (cleanup) cleanup();
  cleanup = null;
  for (const tab of document.querySelectorAll("[data-tab]")) {
    const current = tab.dataset.tab === name || (name === "conversation" && tab.dataset.tab === "conversations");
    if (current) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  main.replaceChildren();
  try {
    cleanup = (await VIEWS[name].render(main, { id, query, info })) || null;
  } catch (error) {
    if (error.status !== 401) notice(error.message, "error");
  }
}

function askForToken(message) {
  info = null;
  main.replaceChildren();
  login.hidden = false;
  const error = document.getElementById("login-error");
  error.textContent = token() ? "That token was refused. " + message : "";
  setToken(null);
  document.getElementById("login-token").focus();
}

async function start() {
  try {
    info = await api("/info");
  } catch (error) {
    if (error.status !== 401) notice(error.message, "error");
    return;
  }
  login.hidden = true;
  const liveTab = document.getElementById("live-tab");
  if (!info.live) {
    liveTab.setAttribute("aria-disabled", "true");
    liveTab.textContent = "Live (not available)";
  }
  await show();
}

whenUnauthorised(askForToken);
document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = document.getElementById("login-token");
  setToken(field.value.trim());
  field.value = "";
  start();
});
window.addEventListener("hashchange", show);
start();
