// The HTTP API, with the signed-in key, and readable messages for every failure it can return.

const KEY = "audiorag.key";

export const auth = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

/** An API failure: `message` is for people; `status`, `detail`, `retryAfter` for code. */
export class ApiError extends Error {
  constructor(message, { status = 0, detail = null, retryAfter = null, path = "" } = {}) {
    super(message);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.path = path;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

function headers(extra = {}) {
  const h = { ...extra };
  if (auth.key) h.Authorization = `Bearer ${auth.key}`;
  return h;
}

/** `fetch` with the key; JSON bodies for plain objects, multipart for FormData. */
export async function request(method, path, { json, form, raw = false, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("Can't reach the server. Check that `audiorag serve` is running and try again.", { path });
  }
  if (!response.ok) throw await toError(response, path);
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const api = {
  get: (path, opts) => request("GET", path, opts),
  post: (path, json, opts = {}) => request("POST", path, { ...opts, json }),
  postForm: (path, form, opts = {}) => request("POST", path, { ...opts, form }),
  put: (path, opts) => request("PUT", path, opts),
  del: (path, opts) => request("DELETE", path, opts),
  /** A binary resource (audio) as a Blob, authenticated. */
  blob: async (path, opts) => (await request("GET", path, { ...opts, raw: true })).blob(),
};

async function toError(response, path) {
  let detail = null;
  try {
    const text = await response.text();
    try { detail = JSON.parse(text).detail; } catch { detail = text.slice(0, 300); }
  } catch { /* no body */ }
  const retry = Number.parseInt(response.headers.get("retry-after") || "", 10);
  const retryAfter = Number.isFinite(retry) ? retry : null;
  const status = response.status;
  const message = describe(status, detail, retryAfter, path);
  if (status === 401) onUnauthorized(message);
  return new ApiError(message, { status, detail, retryAfter, path });
}

const FIELD_NAMES = {
  prompt: "Prompt", negative_prompt: "Negative prompt", duration_s: "Duration", top_k: "Top-k",
  steps: "Steps", cfg: "CFG", seed: "Seed", strength: "Strength", bpm: "BPM", key: "Key",
  bpm_tolerance: "BPM tolerance", name: "Name", text: "Search text", catalogs: "Catalogs",
  inpaint_from_s: "In-paint start", inpaint_to_s: "In-paint end", limit: "Result count",
};

function detailText(detail) {
  if (detail == null || detail === "") return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI validation errors: [{loc: ["body", "steps"], msg: "…"}]
    return detail.map((e) => {
      const loc = (e.loc || []).filter((p) => p !== "body" && p !== "query" && typeof p === "string");
      const field = loc.length ? FIELD_NAMES[loc.at(-1)] || loc.join(".") : "";
      return field ? `${field}: ${e.msg}` : e.msg;
    }).join("; ");
  }
  if (typeof detail === "object") return detail.message || JSON.stringify(detail);
  return String(detail);
}

export function describe(status, detail, retryAfter, path = "") {
  const text = detailText(detail);
  if (status === 401) return "Your API key was not accepted (missing, unknown or revoked). Sign in again with a valid key.";
  if (status === 403) return `Not allowed: ${text || "this key may not do that"}.`;
  if (detail && typeof detail === "object" && detail.blocked_term) {
    return `Your prompt names “${detail.blocked_term}”, a blocked term: no catalog in scope holds a licence from them. ` +
      "Describe the sound instead (instruments, mood, tempo) and render again.";
  }
  if (status === 404) {
    if (/no item .* in this scope|no such item/.test(text)) return `That item is not in this session's catalogs (or no longer indexed): ${text}.`;
    if (/session/.test(text)) return `That session no longer exists (${text}). Pick another one.`;
    if (/catalog/.test(text)) return `Unknown catalog: ${text}.`;
    return `Not found: ${text || path}.`;
  }
  if (status === 409) return text ? capitalise(text) + "." : "That is not possible in the current state.";
  if (status === 413) return `That file is too large. ${text ? capitalise(text) + "." : ""}`.trim();
  if (status === 415) return `That upload is not an audio file we can read (WAV, FLAC, Ogg or MP3). ${text}`.trim();
  if (status === 422) {
    if (/not an audio file|must be a file/.test(text)) return `Bad upload: ${text}. Use a WAV, FLAC, Ogg or MP3 clip.`;
    if (/licen[cs]e|generation-seed|allowed use/i.test(text)) return `Licence: ${text}.`;
    return `Check the settings: ${text || "the request was refused"}.`;
  }
  if (status === 429) {
    const wait = retryAfter != null ? ` Try again in ${retryAfter} s.` : " Try again shortly.";
    return `The render queue is full.${wait}`;
  }
  if (status === 503) {
    const wait = retryAfter != null ? ` Retry in about ${retryAfter} s.` : "";
    return `The service is not ready: ${text || "still loading models"}.${wait}`;
  }
  if (status >= 500) return "The server hit an internal error. Try again; if it persists, check the server log.";
  return text ? capitalise(text) : `Request failed (HTTP ${status}).`;
}

function capitalise(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }
