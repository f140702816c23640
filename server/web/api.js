// The one way the page talks to /api/v1: JSON in and out, the token as a bearer header.
import { notice } from "./dom.js";

const TOKEN_KEY = "speaker-memory-token";
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

let onUnauthorised = () => {};

/** Called with the refused request's message whenever the server answers 401. */
export function whenUnauthorised(handler) {
  onUnauthorised = handler;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const out = { ...extra };
  const value = token();
  if (value) out.authorization = `Bearer ${value}`;
  return out;
}

async function fail(response) {
  let message = `${response.status} ${response.statusText}`;
  let type;
  try {
    const body = await response.json();
    message = body.error || message;
    type = body.type;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) onUnauthorised(message);
  throw new ApiError(response.status, message, type);
}

/** Fetch an API path; `json` is sent as an application/json body, `form` as multipart. */
export async function raw(path, { method = "GET", json, form, query } = {}) {
  let url = API + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const init = { method, headers: headers() };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await fetch(url, init);
  if (!response.ok) await fail(response);
  return response;
}

export async function api(path, options) {
  const response = await raw(path, options);
  return response.json();
}

/** A URL an <audio> element can play. Without a token the API URL itself (streamed, seekable);
 * with one, the file fetched with the bearer header into a blob (media elements send no
 * headers, and the token never goes into a URL). */
export async function mediaUrl(path) {
  if (!token()) return API + path;
  const response = await raw(path);
  return URL.createObjectURL(await response.blob());
}

/** Play an API audio path (a clip, a sample) in `player`; blob URLs made for it are added to
 * `made`, for the view to revoke when it is left. */
export async function playIn(player, path, made) {
  try {
    const url = await mediaUrl(path);
    if (url.startsWith("blob:")) made.push(url);
    player.src = url;
    await player.play();
  } catch (error) {
    if (error.name !== "NotAllowedError") notice(error.message, "error");  // autoplay refused
  }
}

/** Save an API download (an export) as a file. */
export async function download(path, query) {
  const response = await raw(path, { query });
  const disposition = response.headers.get("content-disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : "export";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
