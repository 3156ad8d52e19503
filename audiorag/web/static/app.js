// audiorag sessions: search | session & pins | render & takes.
import { api, auth, ApiError, setUnauthorizedHandler } from "./api.js";
import { drawWave, loadAudio, player } from "./audio.js";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Build an element: h("div.cls", {attr}, children…); text is always set as text. */
function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const state = {
  catalogs: [],
  sessions: [],
  session: null,
  items: new Map(), // id -> hit-like {id, catalog, payload}
  results: [],
  active: -1,
  clip: null, // {blob, name}
  takes: [],
  polling: new Map(), // job id -> timer
  mainJob: null,
};

// --- toasts -------------------------------------------------------------------------------

function toast(message, kind = "error", { timeout = 9000 } = {}) {
  const box = $("#toasts");
  const el = h(`div.toast.${kind}`, {},
    h("span.toast-icon", { "aria-hidden": "true" }, kind === "error" ? "!" : kind === "ok" ? "✓" : "i"),
    h("span.toast-text", {}, message),
    h("button.toast-x", { type: "button", "aria-label": "Dismiss", onclick: () => el.remove() }, "×"));
  box.append(el);
  while (box.children.length > 4) box.firstChild.remove();
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}

/** The API refused the key: the sign-in card, not a toast, says so. */
const isUnauthorized = (err) => err instanceof ApiError && err.status === 401;

function fail(err, what) {
  if (err?.name === "AbortError") return;
  const message = err instanceof ApiError ? err.message : `${what ? what + ": " : ""}${err?.message || err}`;
  console.warn(what, err);
  if (isUnauthorized(err)) return; // the sign-in card says it
  toast(what && err instanceof ApiError ? `${what}: ${message}` : message);
}

// --- sign in ------------------------------------------------------------------------------

function showSignin(message = "") {
  player.stop();
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message;
  $("#signin-key").focus();
}

setUnauthorizedHandler((message) => {
  auth.key = "";
  showSignin(message);
});

async function signIn(key) {
  auth.key = key.trim();
  const me = await api.get("/v1/me");
  const { catalogs } = await api.get("/v1/catalogs");
  state.catalogs = catalogs;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#whoami-tenant").textContent = me.tenant;
  $("#whoami").title = `Tenant ${me.tenant} · key ${me.key_id} (kept in this tab only) · ` +
    `${me.catalogs.length} catalog${me.catalogs.length === 1 ? "" : "s"}: ${me.catalogs.map((c) => c.name).join(", ") || "none"}`;
  renderCatalogChecks();
  checkHealth();
  loadFacets();
  await loadSessions();
  $("#q").focus();
}

$("#signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("#signin-key").value;
  $("#signin-error").textContent = "";
  try {
    await signIn(key);
    $("#signin-key").value = "";
  } catch (err) {
    if (!isUnauthorized(err)) {
      auth.key = "";
      $("#signin-error").textContent = err.message;
    }
  }
});

$("#signout").addEventListener("click", () => {
  auth.key = "";
  state.session = null;
  for (const t of state.polling.values()) clearTimeout(t);
  state.polling.clear();
  $("#results").replaceChildren();
  $("#takes").replaceChildren();
  showSignin("Signed out.");
});

async function checkHealth() {
  const el = $("#health");
  try {
    const r = await fetch("/readyz");
    const body = await r.json();
    el.dataset.state = body.ready && body.generator ? "ok" : body.ready ? "warn" : "bad";
    $(".health-text", el).textContent = body.ready ? (body.generator ? "ready" : "no generator") : "loading";
    el.title = body.detail || "Store, CLAP and generator loaded";
  } catch {
    el.dataset.state = "bad";
    $(".health-text", el).textContent = "offline";
  }
}

// --- item helpers -------------------------------------------------------------------------

function meta(p) {
  const a = p.analysis || {}, g = p.ground_truth || {};
  return {
    bpm: p.bpm ?? a.bpm ?? g.bpm,
    key: p.key ?? a.key ?? g.key,
    instrument: p.instrument ?? g.instrument,
    genre: p.genre ?? g.genre,
    kind: p.kind,
    duration: p.duration_s ?? a.duration_s,
    caption: p.caption ?? g.caption ?? "",
    licence: p.licence || {},
    name: (p.path || "").split("/").pop() || p.id,
  };
}

/** An item's audio for the player: its signed URL (streams) and its authenticated path. */
const itemPath = (id) => `/v1/items/${id}/audio`;
function itemAudio(id) {
  return { src: state.items.get(id)?.links?.audio_signed, path: itemPath(id) };
}

const fmtBpm = (b) => (b == null ? "—" : `${Math.round(b * 10) / 10}`);
const fmtKey = (k) => k || "—";
const short = (id) => (id || "").slice(0, 8);

async function itemInfo(id) {
  if (state.items.has(id) && state.items.get(id).links) return state.items.get(id);
  const item = await api.get(`/v1/items/${id}`);
  state.items.set(id, item);
  return item;
}

// Waveform thumbnails: a few downloads at a time.
const waveQueue = [];
let waveBusy = 0;
function queueWave(path, canvas) {
  waveQueue.push([path, canvas]);
  pumpWaves();
}
function pumpWaves() {
  while (waveBusy < 3 && waveQueue.length) {
    const [path, canvas] = waveQueue.shift();
    if (!canvas.isConnected) continue;
    waveBusy++;
    loadAudio(path)
      .then((a) => { canvas._buffer = a.buffer; canvas.closest(".wave-wrap")?.classList.add("loaded"); drawWave(canvas, a.buffer); })
      .catch(() => canvas.closest(".wave-wrap")?.classList.add("failed"))
      .finally(() => { waveBusy--; pumpWaves(); });
  }
}

// --- search -------------------------------------------------------------------------------

const KEYS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
for (const mode of ["major", "minor"]) for (const k of KEYS) $("select[name=key]").append(h("option", { value: `${k} ${mode}` }, `${k} ${mode}`));

const USE_NAMES = { "generation-seed": "generation seed" };

/** Fill the filter inputs with what the caller's catalogs actually hold (GET /v1/facets). */
async function loadFacets() {
  let f;
  try { f = await api.get("/v1/facets"); } catch (err) { if (!isUnauthorized(err)) console.warn("facets", err); return; }
  const fill = (list, values) => list.replaceChildren(...values.map((v) => h("option", { value: v })));
  fill($("#instruments"), f.instruments);
  fill($("#genres"), f.genres);
  const form = $("#search-form");
  const keySel = form.elements.key;
  const keep = keySel.value;
  if (f.keys.length) {
    keySel.replaceChildren(h("option", { value: "" }, "any"), ...f.keys.map((k) => h("option", { value: k }, k)));
    keySel.value = f.keys.includes(keep) ? keep : "";
  }
  const useSel = form.elements.use;
  const keepUse = useSel.value;
  useSel.replaceChildren(h("option", { value: "" }, "search (all)"),
    ...f.uses.filter((u) => u !== "search").map((u) => h("option", { value: u }, USE_NAMES[u] || u)));
  useSel.value = f.uses.includes(keepUse) ? keepUse : "";
  for (const radio of $$("input[name=kind]", form)) {
    if (!radio.value) continue;
    const present = f.kinds.includes(radio.value);
    radio.disabled = !present;
    radio.closest("label").title = present ? "" : `No ${radio.value} items in your catalogs`;
  }
}

function searchBody() {
  const f = $("#search-form");
  const v = (n) => f.elements[n].value.trim();
  const body = { limit: 30 };
  if (v("text")) body.text = v("text");
  if (v("instrument")) body.instrument = v("instrument");
  if (v("genre")) body.genre = v("genre");
  if (v("bpm")) {
    body.bpm = Number(v("bpm"));
    body.bpm_tolerance = Number(v("bpm_tolerance") || 4);
    body.half_double = f.elements.half_double.checked;
  }
  if (v("key")) { body.key = v("key"); body.compatible_key = f.elements.compatible_key.checked; }
  if (v("use")) body.uses = [v("use")];
  const kind = f.querySelector("input[name=kind]:checked").value;
  if (kind) body.kind = kind;
  if (state.session?.catalogs?.length) body.catalogs = state.session.catalogs;
  return body;
}

let searchAbort = null;
async function runSearch() {
  const body = searchBody(); // no text and no clip: browse by the filters alone
  searchAbort?.abort();
  searchAbort = new AbortController();
  const list = $("#results");
  list.setAttribute("aria-busy", "true");
  $("#results-count").textContent = "Searching…";
  try {
    let res;
    if (state.clip) {
      const form = new FormData();
      form.append("query", JSON.stringify(body));
      form.append("clip", state.clip.blob, state.clip.name);
      res = await api.postForm("/v1/search", form, { signal: searchAbort.signal });
    } else {
      res = await api.post("/v1/search", body, { signal: searchAbort.signal });
    }
    state.results = res.hits;
    for (const hit of res.hits) state.items.set(hit.id, { id: hit.id, catalog: hit.catalog, payload: hit.payload, links: hit.links });
    renderResults();
    list.removeAttribute("aria-busy");
  } catch (err) {
    if (err?.name === "AbortError") return; // a newer search replaced this one
    $("#results-count").textContent = "";
    list.removeAttribute("aria-busy");
    fail(err, "Search failed");
  }
}

$("#search-form").addEventListener("submit", (e) => { e.preventDefault(); runSearch(); });

function renderResults() {
  const list = $("#results");
  const hits = state.results;
  $("#results-count").textContent = hits.length
    ? `${hits.length} result${hits.length === 1 ? "" : "s"}${state.clip ? ` like “${state.clip.name}”` : ""}`
    : "No matches. Loosen a filter or try other words.";
  state.active = hits.length ? 0 : -1;
  list.replaceChildren(...hits.map((hit, i) => resultRow(hit, i)));
  list.setAttribute("aria-activedescendant", hits.length ? "r-0" : "");
  markActive();
  markPinned();
}

function resultRow(hit, i) {
  const m = meta(hit.payload);
  const path = itemPath(hit.id);
  const canvas = h("canvas.wave", { "aria-hidden": "true" });
  const row = h("li.result", { id: `r-${i}`, role: "option", "aria-selected": "false", dataset: { id: hit.id } },
    h("button.play", { type: "button", tabindex: "-1", "aria-label": `Play ${m.name}`, onclick: (e) => { e.stopPropagation(); select(i); togglePlay(hit.id); } }),
    h("div.result-main", {},
      h("div.result-top", {},
        h("span.name", { title: m.caption }, m.name),
        h("span.score", { title: "Fused rank score" }, hit.score.toFixed(2))),
      h("div.wave-wrap", { onclick: (e) => { select(i); seekPlay(hit.id, path, canvas, e); } }, canvas),
      h("div.tags", {},
        h("span.tag.kind", {}, m.kind === "midi" ? "MIDI" : "stem"),
        m.instrument && h("span.tag", {}, m.instrument),
        m.genre && h("span.tag", {}, m.genre),
        h("span.tag.num", { title: "BPM" }, `${fmtBpm(m.bpm)} bpm`),
        h("span.tag.num", { title: "Key" }, fmtKey(m.key)),
        h("span.holder", { title: `${m.licence.id || ""} · ${(m.licence.allowed_uses || []).join(", ")}` }, m.licence.holder || "unlicensed"))),
    h("div.result-actions", {},
      h("button.btn.small.pin", { type: "button", tabindex: "-1", "aria-label": `Pin ${m.name}`, title: "Pin to session (p)", onclick: (e) => { e.stopPropagation(); select(i); togglePin(hit.id); } }, "Pin"),
      h("button.btn.small.ghost.similar", { type: "button", tabindex: "-1", title: "Find similar (f)", "aria-label": `Find similar to ${m.name}`, onclick: (e) => { e.stopPropagation(); select(i); findSimilar(hit.id); } }, "Similar")));
  row.addEventListener("click", () => select(i));
  requestAnimationFrame(() => queueWave(path, canvas));
  return row;
}

function select(i) {
  state.active = i;
  markActive();
  const row = $(`#r-${i}`);
  row?.scrollIntoView({ block: "nearest" });
  $("#results").setAttribute("aria-activedescendant", row ? row.id : "");
}

function markActive() {
  $$("#results .result").forEach((el, i) => {
    el.classList.toggle("active", i === state.active);
    el.setAttribute("aria-selected", String(i === state.active));
  });
}

function markPinned() {
  const pins = new Set(state.session?.pins || []);
  for (const el of $$("#results .result")) {
    const on = pins.has(el.dataset.id);
    el.classList.toggle("pinned", on);
    const b = $(".pin", el);
    b.textContent = on ? "Pinned" : "Pin";
    b.setAttribute("aria-pressed", String(on));
  }
}

function markPlaying(key) {
  for (const el of $$("[data-play-key]")) el.classList.toggle("playing", el.dataset.playKey === key);
  for (const el of $$("#results .result")) el.classList.toggle("playing", key === `item:${el.dataset.id}`);
  for (const el of $$("#pins .pin-item")) el.classList.toggle("playing", key === `item:${el.dataset.id}`);
}
player.onChange(markPlaying);

async function togglePlay(id) {
  const key = `item:${id}`;
  if (player.key === key) { player.stop(); return; }
  const canvas = $(`#results .result[data-id="${id}"] canvas`) || $(`#pins .pin-item[data-id="${id}"] canvas`);
  try {
    await player.play(key, itemAudio(id), canvas);
  } catch (err) { fail(err, "Preview failed"); }
}

async function seekPlay(id, path, canvas, e) {
  const rect = canvas.getBoundingClientRect();
  const frac = (e.clientX - rect.left) / rect.width;
  try {
    const buffer = canvas._buffer || (await loadAudio(path)).buffer;
    await player.play(`item:${id}`, itemAudio(id), canvas, (buffer?.duration || 0) * frac);
  } catch (err) { fail(err, "Preview failed"); }
}

$("#results").addEventListener("keydown", (e) => {
  const n = state.results.length;
  if (!n || e.altKey || e.ctrlKey || e.metaKey) return;
  const hit = state.results[state.active];
  if (e.key === "ArrowDown" || e.key === "j") { select(Math.min(n - 1, state.active + 1)); e.preventDefault(); }
  else if (e.key === "ArrowUp" || e.key === "k") { select(Math.max(0, state.active - 1)); e.preventDefault(); }
  else if (e.key === "Home") { select(0); e.preventDefault(); }
  else if (e.key === "End") { select(n - 1); e.preventDefault(); }
  else if ((e.key === " " || e.key === "Enter") && hit) { togglePlay(hit.id); e.preventDefault(); }
  else if (e.key.toLowerCase() === "p" && hit) { togglePin(hit.id); e.preventDefault(); }
  else if (e.key.toLowerCase() === "f" && hit) { findSimilar(hit.id); e.preventDefault(); }
});

document.addEventListener("keydown", (e) => {
  const typing = /INPUT|TEXTAREA|SELECT/.test(document.activeElement?.tagName || "");
  if (e.key === "/" && !typing && !$("#app").hidden) { $("#q").focus(); e.preventDefault(); }
  if (e.key === "Escape" && player.key) player.stop();
});

// Reference clip: drag & drop or picker.
const AUDIO_EXT = /\.(wav|wave|flac|ogg|oga|mp3)$/i;
function setClip(blob, name) {
  state.clip = blob ? { blob, name } : null;
  $("#drop").classList.toggle("has-clip", !!blob);
  $("#drop-label").textContent = blob ? `Reference: ${name}` : "";
  if (!blob) $("#drop-label").replaceChildren("Drop a reference clip or ", h("u", {}, "browse"));
  $("#clip-clear").hidden = !blob;
}
function acceptFile(file) {
  if (!file) return;
  if (!(file.type.startsWith("audio/") || AUDIO_EXT.test(file.name))) {
    toast(`Bad upload: “${file.name}” is not an audio file. Use a WAV, FLAC, Ogg or MP3 clip.`);
    return;
  }
  setClip(file, file.name);
  runSearch();
}
/** A drop zone that also opens its file input on click / Enter / Space; `onFile` gets the file. */
function wireDrop(zone, input, onFile) {
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); onFile(e.dataTransfer.files[0]); });
  input.addEventListener("change", (e) => { onFile(e.target.files[0]); e.target.value = ""; });
}
wireDrop($("#drop"), $("#clip"), acceptFile);
$("#clip-clear").addEventListener("click", (e) => { e.stopPropagation(); setClip(null); runSearch(); });

async function findSimilar(id) {
  try {
    const a = await loadAudio(itemPath(id));
    const m = meta((await itemInfo(id)).payload);
    $("#q").value = "";
    setClip(a.blob, m.name);
    await runSearch();
    $("#results").focus();
  } catch (err) { fail(err, "Find similar failed"); }
}

// --- sessions -----------------------------------------------------------------------------

const SESSION = "audiorag.session";

async function loadSessions(openId) {
  const { sessions } = await api.get("/v1/sessions");
  state.sessions = sessions;
  const sel = $("#session-select");
  sel.replaceChildren(
    h("option", { value: "" }, sessions.length ? "— choose a session —" : "— no sessions yet —"),
    ...sessions.map((s) => h("option", { value: s.id }, `${s.name}${s.catalogs.length ? ` · ${s.catalogs.join(", ")}` : ""}`)));
  const want = openId || sessionStorage.getItem(SESSION);
  const pick = sessions.find((s) => s.id === want) || sessions[0];
  if (pick) await openSession(pick.id);
  else { renderSession(); runSearch(); }
}

async function openSession(id) {
  try {
    state.session = await api.get(`/v1/sessions/${id}`);
  } catch (err) {
    sessionStorage.removeItem(SESSION);
    state.session = null;
    fail(err, "Could not open the session");
  }
  $("#session-select").value = state.session?.id || "";
  if (state.session) sessionStorage.setItem(SESSION, state.session.id);
  renderSession();
  runSearch(); // browse the session's scope (filters only until you type or drop a clip)
  await loadTakes();
}

$("#session-select").addEventListener("change", (e) => { if (e.target.value) openSession(e.target.value); });

function renderCatalogChecks() {
  $("#catalog-checks").replaceChildren(...state.catalogs.map((c) =>
    h("label.check", {}, h("input", { type: "checkbox", name: "catalog", value: c.name }), ` ${c.name} `, h("span.muted", {}, `${c.items}`))));
}

function toggleNewSession(show) {
  const form = $("#session-new");
  form.hidden = !show;
  $("#session-new-btn").setAttribute("aria-expanded", String(show));
  if (show) form.elements.name.focus();
}
$("#session-new-btn").addEventListener("click", () => toggleNewSession($("#session-new").hidden));
$("#session-new-cancel").addEventListener("click", () => toggleNewSession(false));
$("#session-new").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  const catalogs = $$("input[name=catalog]:checked", f).map((i) => i.value);
  try {
    const s = await api.post("/v1/sessions", { name: f.elements.name.value.trim(), catalogs });
    f.reset();
    toggleNewSession(false);
    toast(`Session “${s.name}” created.`, "ok", { timeout: 3000 });
    await loadSessions(s.id);
  } catch (err) { fail(err, "Could not create the session"); }
});

function renderSession() {
  const s = state.session;
  const info = $("#session-info");
  if (!s) {
    info.replaceChildren(h("p.empty", {}, "No session open. Create one to pin references and render takes."));
    $("#pins").replaceChildren();
    $("#licences").replaceChildren();
    $("#pin-count").textContent = "";
    $("#render-btn").disabled = true;
    markPinned();
    return;
  }
  $("#render-btn").disabled = false;
  info.replaceChildren(
    h("div.session-name", {}, s.name),
    h("dl.facts", {},
      h("dt", {}, "Scope"), h("dd", {}, s.catalogs.length ? s.catalogs.join(", ") : "all your catalogs"),
      h("dt", {}, "Takes"), h("dd", { "data-fact": "takes" }, String(s.takes)),
      h("dt", {}, "Started"), h("dd", {}, new Date(s.created * 1000).toLocaleString()),
      h("dt", {}, "Id"), h("dd.mono", {}, short(s.id))));
  renderPins();
  markPinned();
}

async function renderPins() {
  const s = state.session;
  const list = $("#pins");
  $("#pin-count").textContent = s.pins.length ? String(s.pins.length) : "";
  if (!s.pins.length) {
    list.replaceChildren(h("li.empty", {}, "Nothing pinned yet. Press p on a result, or its Pin button."));
    $("#licences").replaceChildren();
    return;
  }
  const items = await Promise.all(s.pins.map((id) => itemInfo(id).catch(() => ({ id, payload: {}, missing: true }))));
  if (state.session !== s) return;
  list.replaceChildren(...items.map((item) => {
    const m = meta(item.payload);
    const canvas = h("canvas.wave.small", { "aria-hidden": "true" });
    const el = h("li.pin-item", { dataset: { id: item.id } },
      h("button.play", { type: "button", "aria-label": `Play ${m.name}`, onclick: () => togglePlay(item.id) }),
      h("div.pin-main", {},
        h("div.name", {}, item.missing ? `${short(item.id)} (no longer available)` : m.name),
        h("div.wave-wrap.small", {}, canvas),
        h("div.tags", {},
          m.instrument && h("span.tag", {}, m.instrument),
          h("span.tag.num", {}, `${fmtBpm(m.bpm)} bpm`),
          h("span.tag.num", {}, fmtKey(m.key)),
          h("span.holder", {}, m.licence.holder || "—"))),
      h("button.btn.small.ghost.unpin", { type: "button", "aria-label": `Unpin ${m.name}`, onclick: () => togglePin(item.id) }, "Unpin"));
    if (!item.missing) requestAnimationFrame(() => queueWave(itemPath(item.id), canvas));
    return el;
  }));
  // Licences in play, grouped by holder.
  const byHolder = new Map();
  for (const item of items) {
    const l = item.payload.licence || {};
    const key = l.holder || "unknown holder";
    if (!byHolder.has(key)) byHolder.set(key, { licence: l, ids: [] });
    byHolder.get(key).ids.push(l.id || short(item.id));
  }
  $("#licences").replaceChildren(...[...byHolder].map(([holder, { licence, ids }]) =>
    h("li.licence", {},
      h("div.holder-name", {}, holder),
      h("div.small.muted", {}, licence.attribution || ""),
      h("div.uses", {}, ...(licence.allowed_uses || []).map((u) => h(`span.use${u === "commercial" ? ".ok" : ""}`, {}, u)),
        !(licence.allowed_uses || []).includes("commercial") && h("span.use.warn", {}, "no commercial use")),
      h("div.small.mono", {}, [...new Set(ids)].join(" · ")))));
}

async function togglePin(id) {
  const s = state.session;
  if (!s) { toast("Open or create a session first: pins belong to a session.", "info"); return; }
  const pinned = s.pins.includes(id);
  try {
    state.session = await (pinned ? api.del : api.put)(`/v1/sessions/${s.id}/pins/${id}`);
    renderSession();
    const m = meta((state.items.get(id) || { payload: {} }).payload);
    $("#job-live").textContent = `${pinned ? "Unpinned" : "Pinned"} ${m.name}`;
  } catch (err) { fail(err, pinned ? "Unpin failed" : "Pin failed"); }
}

// --- render -------------------------------------------------------------------------------

const form = $("#render-form");
form.elements.strength.addEventListener("input", (e) => { $("#strength-out").textContent = Number(e.target.value).toFixed(2); });
$("#dice").addEventListener("click", () => { form.elements.seed.value = randomSeed(); });
const randomSeed = () => Math.floor(Math.random() * 2 ** 31);

function renderSettings() {
  const f = form.elements;
  const num = (n) => (f[n].value === "" ? undefined : Number(f[n].value));
  const body = {
    prompt: f.prompt.value.trim(),
    duration_s: num("duration_s"),
    top_k: num("top_k"),
    steps: num("steps"),
    cfg: num("cfg"),
    seed: num("seed"),
    strength: num("strength"),
  };
  if (f.negative_prompt.value.trim()) body.negative_prompt = f.negative_prompt.value.trim();
  const roles = f.roles.value.split(",").map((r) => r.trim()).filter(Boolean);
  if (roles.length) body.roles = roles;
  return body;
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const s = state.session;
  if (!s) { toast("Open or create a session first.", "info"); return; }
  const body = renderSettings();
  if (!body.prompt) { toast("Write a prompt first: describe the take you want."); form.elements.prompt.focus(); return; }
  await submitJob(() => api.post(`/v1/sessions/${s.id}/generate`, body), "Render");
});

async function submitJob(send, what) {
  const btn = $("#render-btn");
  btn.disabled = true;
  $("#render-error").hidden = true;
  try {
    const job = await send();
    state.mainJob = job.id;
    showJob(job);
    await loadTakes();
    return job;
  } catch (err) {
    if (err?.name === "AbortError") return null;
    if (isUnauthorized(err)) return null;
    const message = err instanceof ApiError ? err.message : `${what} failed: ${err?.message || err}`;
    const box = $("#render-error");
    box.hidden = false;
    $(".toast-text", box).textContent = `${what} refused. ${message}`;
    if (err instanceof ApiError && err.status === 429) countdown(box, err.retryAfter, what);
    box.scrollIntoView({ block: "nearest" });
    return null;
  } finally {
    btn.disabled = !state.session;
  }
}

function countdown(el, seconds, what) {
  if (!seconds) return;
  let left = seconds;
  const text = $(".toast-text", el);
  clearInterval(el._countdown);
  el._countdown = setInterval(() => {
    left -= 1;
    if (el.hidden || left <= 0) { clearInterval(el._countdown); if (!el.hidden) text.textContent = "The render queue has room again: try now."; return; }
    text.textContent = `${what} refused. The render queue is full. Try again in ${left} s.`;
  }, 1000);
}

$("#render-error .toast-x").addEventListener("click", () => { $("#render-error").hidden = true; });

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

function showJob(job) {
  if (job.id !== state.mainJob) return;
  const box = $("#job");
  box.hidden = false;
  const pct = Math.round((job.status === "succeeded" ? 1 : job.progress.fraction) * 100);
  const bar = $("#job-bar");
  bar.setAttribute("aria-valuenow", String(pct));
  bar.setAttribute("aria-valuetext", `${pct} %`);
  $("span", bar).style.width = `${pct}%`;
  box.dataset.status = job.status;
  const steps = job.progress.total ? ` · step ${job.progress.done}/${job.progress.total}` : "";
  const label = {
    queued: "Queued — waiting for the generator…",
    running: `Rendering ${pct} %${steps}`,
    succeeded: "Done — 100 %",
    failed: `Failed: ${job.error || "unknown error"}`,
    cancelled: "Cancelled",
  }[job.status];
  $("#job-label").textContent = label;
  $("#job-cancel").hidden = TERMINAL.has(job.status);
  // Announce state changes and every 25 %, not every poll.
  const step = `${job.status}:${Math.floor(pct / 25)}`;
  if (box._announced !== step) { box._announced = step; $("#job-live").textContent = label; }
  if (job.status === "failed") toast(`The render failed: ${job.error || "unknown error"}`);
}

$("#job-cancel").addEventListener("click", async () => {
  if (!state.mainJob) return;
  try { showJob(await api.del(`/v1/jobs/${state.mainJob}`)); } catch (err) { fail(err, "Cancel failed"); }
});

function poll(jobId) {
  if (state.polling.has(jobId)) return;
  const tick = async () => {
    try {
      const job = await api.get(`/v1/jobs/${jobId}`);
      showJob(job);
      updateTakeProgress(job);
      if (TERMINAL.has(job.status)) {
        state.polling.delete(jobId);
        await loadTakes();
        return;
      }
    } catch (err) {
      state.polling.delete(jobId);
      if (!isUnauthorized(err)) fail(err, "Lost track of a render");
      return;
    }
    state.polling.set(jobId, setTimeout(tick, 250));
  };
  state.polling.set(jobId, setTimeout(tick, 0));
}

// --- takes --------------------------------------------------------------------------------

let takesLoading = null;
async function loadTakes() {
  const s = state.session;
  if (!s) { $("#takes").replaceChildren(); $("#take-count").textContent = ""; return; }
  if (takesLoading) return takesLoading;
  takesLoading = (async () => {
    try {
      const { takes } = await api.get(`/v1/sessions/${s.id}/takes`);
      if (state.session?.id !== s.id) return;
      state.takes = takes; // oldest first; in-paints are takes of the session like any other
      s.takes = takes.length;
      const count = $("#session-info [data-fact=takes]");
      if (count) count.textContent = String(takes.length);
      renderTakes();
      for (const t of state.takes) if (!TERMINAL.has(t.job.status)) poll(t.job.id);
    } catch (err) { fail(err, "Could not load the takes"); }
  })();
  try { await takesLoading; } finally { takesLoading = null; }
}

function renderTakes() {
  const list = $("#takes");
  const takes = state.takes;
  $("#take-count").textContent = takes.length ? String(takes.length) : "";
  if (!takes.length) {
    list.replaceChildren(h("li.empty", {}, "No takes yet. Pin a few references, write a prompt and render."));
    return;
  }
  const open = new Set($$("#takes details[open]").map((d) => d.dataset.key));
  const keep = new Map($$("#takes .take").map((el) => [el.dataset.key, el]));
  const nodes = takes.map((t, i) => {
    const key = `${t.job.id}:${t.job.status}`;
    const old = keep.get(key);
    if (old && TERMINAL.has(t.job.status)) return old; // keep players and drawings
    return takeCard(t, i + 1, open);
  }).reverse();
  list.replaceChildren(...nodes);
}

function takeTitle(t) {
  return t.job.take_id || short(t.job.id);
}

function takeCard(t, n, open) {
  const job = t.job;
  const st = t.settings || {};
  const key = `${job.id}:${job.status}`;
  const card = h("li.take", { dataset: { key, job: job.id, status: job.status } });
  const head = h("div.take-head", {},
    h("span.take-n", {}, `#${n}`),
    h("span.take-id.mono", {}, takeTitle(t)),
    t.inpaint && h("span.badge.inpaint", { title: t.origin === "inpaint" ? `in-paint of ${t.parent_take}` : "the range of the in-paint it re-runs" }, `in-paint ${t.inpaint.from_s.toFixed(1)}–${t.inpaint.to_s.toFixed(1)} s`),
    t.origin === "rerun" && h("span.badge.parent", { title: `re-run of ${t.parent_take}` }, `↻ of …${t.parent_take.slice(-6)}`),
    h("span.spacer"),
    h(`span.status.${job.status}`, {}, job.status));
  card.append(head);
  card.append(h("div.take-sub", {},
    h("span.take-prompt", { title: st.prompt || "" }, st.prompt || ""),
    h("span.facts.mono", {}, `seed ${st.seed ?? "—"} · str ${st.strength != null ? Number(st.strength).toFixed(2) : "—"} · ${st.steps ?? "?"} steps`)));
  if (!TERMINAL.has(job.status)) {
    const pct = Math.round(job.progress.fraction * 100);
    card.append(h("div.bar.small", { role: "progressbar", "aria-label": `Take ${n} progress`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct) }, h("span", { style: `width:${pct}%` })));
    return card;
  }
  if (job.status !== "succeeded") {
    card.append(h("p.take-error", {}, job.status === "failed" ? `Failed: ${job.error || "unknown error"}` : "Cancelled before it finished."));
    return card;
  }
  const wav = job.links.audio_wav || job.links.audio_flac;
  const canvas = h("canvas.wave.take-wave", { "aria-hidden": "true" });
  const sel = h("div.sel-label.mono", { "aria-live": "polite" }, "drag on the waveform to select a range");
  const playBtn = h("button.play", { type: "button", "aria-label": `Play take ${n}`, dataset: { playKey: `take:${job.id}` }, onclick: () => playTake(job, wav, canvas) });
  const wave = h("div.wave-wrap.take-wave-wrap", {}, canvas);
  attachRangeSelect(wave, canvas, sel, job, wav);
  // The server's spectrogram.png and a streaming <audio>, both from signed URLs (no key needed
  // by the elements); a URL that has expired is swapped for a fresh one from the job.
  const spec = h("img.spec", { alt: `Spectrogram of take ${n}`, src: job.links.signed_spectrogram || "", decoding: "async" });
  const audioEl = h("audio", { controls: true, preload: "metadata", "aria-label": `Take ${n} audio`, src: job.links.signed_audio_wav || job.links.signed_audio_flac || "" });
  let refreshed = 0;
  const refresh = async () => {
    if (refreshed++ > 2) return;
    try {
      const fresh = await api.get(`/v1/jobs/${job.id}`);
      Object.assign(job.links, fresh.links);
      if (spec.naturalWidth === 0) spec.src = fresh.links.signed_spectrogram;
      if (audioEl.error) audioEl.src = fresh.links.signed_audio_wav || fresh.links.signed_audio_flac;
    } catch (err) { fail(err, "Could not refresh the take's links"); }
  };
  spec.addEventListener("error", refresh);
  audioEl.addEventListener("error", refresh);
  card.append(h("div.take-audio", {}, playBtn, wave), sel);
  loadAudio(wav).then((a) => { // decoded here for the waveform only
    canvas._buffer = a.buffer;
    drawWave(canvas, a.buffer, { selection: canvas._selection });
  }).catch((err) => fail(err, "Could not load the take's audio"));
  const strength = h("input", { type: "range", min: "0", max: "1", step: "0.05", value: String(st.strength ?? 0.6), "aria-label": "New strength" });
  const strengthOut = h("output.mono", {}, Number(strength.value).toFixed(2));
  strength.addEventListener("input", () => { strengthOut.textContent = Number(strength.value).toFixed(2); });
  const rerunId = job.take_id || job.id;
  card.append(
    h("div.take-body", {},
      h("div.take-visual", {}, spec, audioEl),
      h("div.take-actions", {},
        h("button.btn.small.rerun", { type: "button", onclick: () => rerun(rerunId, { seed: randomSeed() }) }, "↻ Re-run, new seed"),
        h("div.vary", {},
          h("label.small", {}, "Strength ", strength, " ", strengthOut),
          h("button.btn.small.ghost", { type: "button", onclick: () => rerun(rerunId, { strength: Number(strength.value) }) }, "Vary strength")),
        h("button.btn.small.ghost.inpaint-btn", { type: "button", disabled: true, onclick: () => inpaint(t, canvas) }, "In-paint selection"),
        h("div.downloads", {},
          ...Object.entries(job.links).filter(([k]) => k.startsWith("audio_")).map(([k, href]) => {
            const fmt = k.slice(6);
            return h("a.btn.small.ghost", { href: "#", onclick: (e) => { e.preventDefault(); download(href, `${job.take_id}.${fmt}`); } }, `⤓ ${fmt.toUpperCase()}`);
          })))),
    manifestView(t, open));
  return card;
}

function takeAudio(job, path) {
  const fmt = path.includes("format=flac") ? "flac" : "wav";
  return { src: job.links[`signed_audio_${fmt}`], path };
}

async function playTake(job, path, canvas) {
  const key = `take:${job.id}`;
  if (player.key === key) { player.stop(); return; }
  try { await player.play(key, takeAudio(job, path), canvas); } catch (err) { fail(err, "Playback failed"); }
}

function attachRangeSelect(wrap, canvas, label, job, path) {
  let start = null;
  const frac = (e) => {
    const r = canvas.getBoundingClientRect();
    return Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
  };
  wrap.addEventListener("pointerdown", (e) => {
    start = frac(e);
    wrap.setPointerCapture(e.pointerId);
    canvas._selection = [start, start];
  });
  wrap.addEventListener("pointermove", (e) => {
    if (start == null) return;
    canvas._selection = [start, frac(e)];
    drawWave(canvas, canvas._buffer, { selection: canvas._selection, progress: canvas._progress || 0 });
  });
  wrap.addEventListener("pointerup", (e) => {
    if (start == null) return;
    const end = frac(e);
    const dur = canvas._buffer?.duration || 0;
    const card = wrap.closest(".take");
    const btn = $(".inpaint-btn", card);
    if (Math.abs(end - start) < 0.01) {
      // a click: play from there
      canvas._selection = null;
      btn.disabled = true;
      label.textContent = "drag on the waveform to select a range";
      player.play(`take:${job.id}`, takeAudio(job, path), canvas, dur * end).catch((err) => fail(err, "Playback failed"));
    } else {
      const [a, b] = [Math.min(start, end), Math.max(start, end)];
      canvas._selection = [a, b];
      canvas._range = [a * dur, b * dur];
      label.textContent = `selected ${(a * dur).toFixed(2)}–${(b * dur).toFixed(2)} s`;
      btn.disabled = false;
    }
    drawWave(canvas, canvas._buffer, { selection: canvas._selection });
    start = null;
  });
}

async function rerun(takeId, body) {
  const s = state.session;
  const job = await submitJob(() => api.post(`/v1/sessions/${s.id}/takes/${takeId}/rerun`, body), "Re-run");
  if (job) toast(body.seed != null ? `Re-running with seed ${body.seed}.` : `Re-running at strength ${body.strength.toFixed(2)}.`, "info", { timeout: 3000 });
}

async function inpaint(t, canvas) {
  const s = state.session;
  const [from, to] = canvas._range || [];
  if (from == null) return;
  const takeId = t.job.take_id || t.job.id;
  const body = {
    from_s: Math.round(from * 100) / 100,
    to_s: Math.round(to * 100) / 100,
    seed: randomSeed(),
  };
  const prompt = form.elements.prompt.value.trim();
  if (prompt) body.prompt = prompt; // else the take's own prompt
  const job = await submitJob(() => api.post(`/v1/sessions/${s.id}/takes/${takeId}/inpaint`, body), "In-paint");
  if (job) toast(`In-painting ${body.from_s.toFixed(2)}–${body.to_s.toFixed(2)} s of ${takeId}.`, "info", { timeout: 3000 });
}

async function download(path, name) {
  try {
    const blob = await api.blob(path);
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) { fail(err, "Download failed"); }
}

function manifestView(t, open) {
  const m = t.manifest;
  const key = `m:${t.job.id}`;
  const d = h("details.manifest", { dataset: { key }, open: open.has(key) || undefined });
  d.append(h("summary", {}, "Manifest"));
  if (!m) { d.append(h("p.muted", {}, "No manifest recorded.")); return d; }
  const p = m.prompt || {};
  const tg = m.targets || {};
  const sampler = m.sampler || {};
  const req = m.request || {};
  const seeds = m.seeds || [];
  d.append(
    h("div.mf-section", {},
      h("div.mf-label", {}, "Enriched prompt"),
      h("p.enriched", {}, p.enriched || p.user || ""),
      p.added?.length ? h("div.tags", {}, h("span.muted.small", {}, "added from seeds: "), ...p.added.map((a) => h("span.tag.added", {}, a))) : null,
      p.negative ? h("p.small", {}, h("span.muted", {}, "negative: "), p.negative) : null),
    h("dl.facts.mf-facts", {},
      h("dt", {}, "Mode"), h("dd", {}, m.mode || "—"),
      h("dt", {}, "Target"), h("dd", {}, `${tg.duration_s ?? "?"} s · ${tg.bpm ? fmtBpm(tg.bpm) + " bpm" : "free tempo"} · ${tg.key || "any key"}`),
      h("dt", {}, "Sampler"), h("dd", {}, `seed ${sampler.seed ?? req.seed ?? "—"} · strength ${req.strength ?? "default"} · ${sampler.steps ?? req.steps ?? "?"} steps · cfg ${sampler.cfg ?? req.cfg ?? "?"}`),
      h("dt", {}, "Model"), h("dd.mono", {}, `${m.model?.id || "—"}${m.model?.weights_sha256 ? " · " + String(m.model.weights_sha256).slice(0, 10) : ""}`),
      m.watermark?.scheme ? [h("dt", {}, "Watermark"), h("dd.mono", {}, `${m.watermark.scheme} · ${m.watermark.payload}`)] : null,
      h("dt", {}, "Created"), h("dd", {}, m.created_at || "—")),
    stackView(m.stack),
    h("div.mf-label", {}, `Seeding items (${seeds.length})`),
    seeds.length
      ? h("table.seeds", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Item"), h("th", { scope: "col" }, "Weight"), h("th", { scope: "col" }, "Licence"))),
        h("tbody", {}, ...seeds.map((sd) => {
          const l = sd.licence || {};
          const w = Number(sd.weight ?? 0);
          return h("tr", {},
            h("td", {},
              h("div", {}, (sd.path || sd.id).split("/").pop(), sd.pinned ? h("span.badge.pin-badge", {}, "pinned") : null, sd.layered ? h("span.badge", {}, "layered") : null),
              h("div.small.muted", {}, [sd.instrument, sd.kind, sd.catalog].filter(Boolean).join(" · "))),
            h("td.weight", {}, h("span.wbar", {}, h("span", { style: `width:${Math.round(Math.min(1, w) * 100)}%` })), h("span.mono", {}, w.toFixed(2))),
            h("td", {},
              h("div", {}, l.holder || "—"),
              h("div.small.mono.muted", {}, l.id || ""),
              h("div.uses", {}, ...(l.allowed_uses || []).map((u) => h("span.use", {}, u)))));
        })))
      : h("p.muted.small", {}, "No catalog items seeded this take (text only)."),
    h("details.raw", {}, h("summary", {}, "Raw JSON"), h("pre", {}, JSON.stringify(m, null, 2))));
  return d;
}

// The seed stack: one item per role, how it was aligned, and the best candidates left out.
function stackView(stack) {
  if (!stack) return null;
  const tg = stack.target || {};
  const align = (a) => (a ? [a.tempo !== "n/a" ? `tempo ${a.tempo} ×${a.tempo_ratio}` : null, a.key !== "n/a" ? `key ${a.key}${a.semitones ? ` ${a.semitones > 0 ? "+" : ""}${a.semitones} st` : ""}` : null].filter(Boolean).join(" · ") : "");
  return h("div.mf-section.stack", {},
    h("div.mf-label", {}, `Stack by role (${stack.roles_from || "—"}) · ${tg.bpm ? fmtBpm(tg.bpm) + " bpm" : "free tempo"} · ${tg.key || "any key"}`),
    h("table.stack-roles", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, "Chosen"), h("th", { scope: "col" }, "Left out"))),
      h("tbody", {}, ...(stack.roles || []).map((r) => h("tr", { dataset: { role: r.role } },
        h("td", {}, h("div", {}, r.role), h("div.small.muted", {}, (r.families || []).join(", "))),
        h("td", {}, r.chosen
          ? [h("div", {}, (r.chosen.path || r.chosen.id).split("/").pop(), r.chosen.pinned ? h("span.badge", {}, "pinned") : null),
            h("div.small.muted", {}, align(r.chosen.alignment))]
          : h("span.muted.small", {}, r.reason || "empty")),
        h("td.small.muted", {}, ...(r.rejected || []).map((x) => h("div", { title: x.reason }, `${(x.path || x.id).split("/").pop()}: ${x.reason}`))))))));
}

function updateTakeProgress(job) {
  const card = $(`#takes .take[data-job="${job.id}"]`);
  if (!card) return;
  const bar = $(".bar", card);
  if (bar) {
    const pct = Math.round(job.progress.fraction * 100);
    bar.setAttribute("aria-valuenow", String(pct));
    $("span", bar).style.width = `${pct}%`;
  }
  const st = $(".status", card);
  if (st && st.textContent !== job.status) { st.textContent = job.status; st.className = `status ${job.status}`; }
}

// --- trace a file (watermark) --------------------------------------------------------------

const trace = $("#trace");
$("#trace-btn").addEventListener("click", () => {
  $("#trace-result").replaceChildren();
  delete $("#trace-result").dataset.origin;
  trace.showModal();
  $("#trace-drop").focus();
});
wireDrop($("#trace-drop"), $("#trace-file"), traceFile);

async function traceFile(file) {
  if (!file) return;
  const box = $("#trace-result");
  box.dataset.state = "busy";
  delete box.dataset.origin;
  box.replaceChildren(h("p.muted", {}, `Reading the watermark of “${file.name}”…`));
  $("#trace-label").textContent = file.name;
  const f = new FormData();
  f.append("file", file, file.name);
  try {
    const r = await api.postForm("/v1/watermark/detect", f);
    box.dataset.state = "done";
    box.dataset.origin = r.origin || "none";
    box.replaceChildren(...traceView(r, file.name));
  } catch (err) {
    if (isUnauthorized(err)) return;
    box.dataset.state = "error";
    box.replaceChildren(h("div.trace-verdict", {}, h("span.dot"), "Could not check this file"), h("p", {}, err.message || String(err)));
  }
}

function traceView(r, name) {
  const verdict = {
    yours: "Your take — marked by this deployment",
    "this-deployment": "Marked by this deployment, not by you",
    unknown: "Watermarked, but not in this deployment's records",
  }[r.origin] || "No watermark found";
  const out = [
    h("div.trace-verdict", {}, h("span.dot"), verdict),
    h("p.small", {}, r.message),
    h("dl.facts", {},
      h("dt", {}, "File"), h("dd", {}, name),
      h("dt", {}, "Confidence"), h("dd.mono", {}, `${(r.confidence * 100).toFixed(1)} %`),
      r.payload ? [h("dt", {}, "Payload"), h("dd.mono.trace-payload", {}, r.payload)] : null,
      h("dt", {}, "Scheme"), h("dd.mono", {}, r.scheme)),
  ];
  const t = r.take;
  if (t) {
    out.push(h("dl.facts", {},
      h("dt", {}, "Take"), h("dd.mono.trace-take", {}, t.take_id || short(t.job_id)),
      h("dt", {}, "Prompt"), h("dd.trace-prompt", {}, t.prompt || "—"),
      t.session_id ? [h("dt", {}, "Session"), h("dd", {}, state.sessions.find((x) => x.id === t.session_id)?.name || short(t.session_id))] : null,
      h("dt", {}, "Created"), h("dd", {}, t.created_at || "—")));
    out.push(t.seeds.length
      ? h("table.seeds.trace-seeds", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Seeding item"), h("th", { scope: "col" }, "Licence"))),
        h("tbody", {}, ...t.seeds.map((sd) => h("tr", {},
          h("td", {}, h("div", {}, (sd.path || sd.id || "").split("/").pop()), h("div.small.muted", {}, sd.catalog || "")),
          h("td", {},
            h("div", {}, sd.holder || "—"),
            h("div.small.mono.muted", {}, sd.licence_id || ""),
            h("div.uses", {}, ...sd.allowed_uses.map((u) => h("span.use", {}, u))))))))
      : h("p.muted.small", {}, "No catalog items seeded this take."));
  }
  return out;
}

// --- start --------------------------------------------------------------------------------

player.init($("#player"));
window.addEventListener("resize", () => {
  for (const c of $$("canvas.wave")) { drawWave(c, c._buffer, { selection: c._selection, progress: c._progress || 0 }); }
});

if (auth.key) {
  signIn(auth.key).catch((err) => { if (!isUnauthorized(err)) showSignin(err.message); });
} else {
  showSignin();
}
