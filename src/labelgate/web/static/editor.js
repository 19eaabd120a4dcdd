// The annotation editor: boxes, polygons, keypoints, tags and attributes on one task.
//
// Rendering (UX.md §4): the image and every static object go on the base canvas, redrawn
// once per animation frame and only after a data or view change, one path per class and
// style; selection, hover, handles, the crosshair and the shape being drawn go on the
// overlay canvas. No DOM node per object: the object list is virtual (visible rows only).
// Saving: every edit is journaled in localStorage, then sent 1 s after the last edit with
// the revision it edited (base_revision_id) and an Idempotency-Key; a 409 opens the
// conflict banner, which merges per object.
import { api, ApiError, el, fmt, PALETTE, toast, topbar } from "./common.js";
import { ActiveTime } from "./worktime.js";

const TASK_ID = Number(location.pathname.split("/").pop());
const HANDLE = 5;            // handle half-size, screen px
const SNAP = 8;              // polygon closing snap, screen px
const MIN_SIZE = 4;          // smallest box, image px (spec default)
const UNDO_LIMIT = 100;
// UX.md: 1 s after the last edit; the browser tests shorten it through an init script
const SAVE_DELAY_MS = Number(window.__labelgateSaveDelayMs ?? 1000);
const ROW_HEIGHT = 24;

const $ = (id) => document.getElementById(id);
const stage = $("stage");
const base = $("base");
const overlay = $("overlay");
const bctx = base.getContext("2d", { alpha: false });
const octx = overlay.getContext("2d");

const S = {
  task: null, spec: null, classes: [], classIndex: new Map(), attributes: [],
  objects: [], byId: new Map(), nextId: 1, baseline: new Map(),
  revisionId: null, image: null, width: 1, height: 1,
  view: { scale: 1, tx: 0, ty: 0 }, dpr: window.devicePixelRatio || 1,
  tool: "box", lastTool: "box", classId: null, selected: null, hover: null,
  hidden: new Set(), hideAll: false, solo: null, locked: new Set(),
  drawing: null, drag: null, pan: null, space: false, cursor: null,
  undo: [], redo: [], clipboard: null,
  dirty: 0, saved: 0, saving: false, saveTimer: 0, saveKey: null, saveKeyFor: -1,
  conflict: null, offline: false, savedAt: null, error: null,
  prelabelLog: [], queue: [], sorted: null, frameTimes: [], inputTimes: [],
};
window.__editor = S; // for the browser tests and for debugging
S.render = () => { renderBase(); renderOverlay(); };

// --- geometry helpers ---------------------------------------------------------------------

const toImage = (sx, sy) => [(sx - S.view.tx) / S.view.scale, (sy - S.view.ty) / S.view.scale];
const toScreen = (x, y) => [x * S.view.scale + S.view.tx, y * S.view.scale + S.view.ty];
const clampX = (x) => Math.min(Math.max(x, 0), S.width);
const clampY = (y) => Math.min(Math.max(y, 0), S.height);

function bboxOf(obj) {
  if (obj.kind === "box") return obj.bbox;
  const pts = obj.kind === "polygon" ? obj.polygon.flat() : (obj.keypoints || []).filter((k) => k[2] > 0);
  if (!pts.length) return null;
  let x1 = Infinity; let y1 = Infinity; let x2 = -Infinity; let y2 = -Infinity;
  for (const [x, y] of pts) { x1 = Math.min(x1, x); y1 = Math.min(y1, y); x2 = Math.max(x2, x); y2 = Math.max(y2, y); }
  return [x1, y1, x2, y2];
}

function segmentsCross(a, b, c, d) {
  const o = (p, q, r) => Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
  return o(a, b, c) * o(a, b, d) < 0 && o(c, d, a) * o(c, d, b) < 0;
}

/** Whether a ring has fewer than 3 points or crosses itself (drawn red, blocks submit). */
function invalidRing(ring) {
  if (ring.length < 3) return true;
  const n = ring.length;
  for (let i = 0; i < n; i++) {
    for (let j = i + 2; j < n; j++) {
      if (i === 0 && j === n - 1) continue;
      if (segmentsCross(ring[i], ring[(i + 1) % n], ring[j], ring[(j + 1) % n])) return true;
    }
  }
  return false;
}

const className = (id) => S.classIndex.get(id)?.name ?? `class ${id}`;
const colorOf = (id) => S.classIndex.get(id)?.color ?? "#999";
// a proposal nobody reviewed yet; a reviewed one is source human, and `_prelabel` (local,
// never sent) says what became of it: "accepted" or "adjusted"
const isPrelabel = (obj) => obj.source === "prelabel";
const visible = (obj) => !S.hideAll && !S.hidden.has(obj.id) && (S.solo === null || obj.class_id === S.solo);

// --- data: load, serialize, undo ----------------------------------------------------------

function normalize(obj) {
  const out = {
    id: obj.id, class_id: obj.class_id, kind: obj.kind, bbox: obj.bbox ?? null,
    polygon: obj.polygon ?? null, keypoints: obj.keypoints ?? null,
    occluded: !!obj.occluded, truncated: !!obj.truncated, track_id: obj.track_id ?? null,
    z_order: obj.z_order ?? 0, score: obj.score ?? null, source: obj.source ?? "human",
    attributes: { ...(obj.attributes || {}) },
  };
  if (out.kind !== "box" && out.kind !== "tag") out.bbox = bboxOf(out);
  return out;
}

function setObjects(list) {
  S.objects = list.map(normalize);
  reindex();
}

function reindex() {
  S.byId = new Map(S.objects.map((o) => [o.id, o]));
  S.nextId = Math.max(0, ...S.objects.map((o) => o.id)) + 1;
  S.sorted = null;
  if (S.selected !== null && !S.byId.has(S.selected)) S.selected = null;
}

/** The save body's objects: the API's shape, nothing local. */
function serialize() {
  return S.objects.map((o) => {
    const out = { id: o.id, class_id: o.class_id, kind: o.kind, occluded: o.occluded, truncated: o.truncated,
      z_order: o.z_order, source: o.source, attributes: o.attributes };
    if (o.kind === "box") out.bbox = o.bbox;
    if (o.kind === "polygon") out.polygon = o.polygon;
    if (o.kind === "keypoints") out.keypoints = o.keypoints;
    if (o.track_id !== null && o.track_id !== "") out.track_id = Number(o.track_id);
    if (o.score !== null) out.score = o.score;
    return out;
  });
}

const snapshot = () => JSON.stringify(S.objects);

/** Record the state before an edit (undo), then apply it. Any change to a proposal
 * (class, attribute, flag, z-order, geometry) makes it an adjusted, human object. */
function edit(change, { quiet = false } = {}) {
  if (S.readOnly) { toast("This task is submitted: read only"); return; }
  S.undo.push(snapshot());
  if (S.undo.length > UNDO_LIMIT) S.undo.shift();
  S.redo = [];
  const proposals = new Map(S.objects.filter(isPrelabel).map((o) => [o, proposalContent(o)]));
  change();
  let adjusted = 0;
  for (const [obj, before] of proposals) {
    if (isPrelabel(obj) && S.byId.get(obj.id) === obj && proposalContent(obj) !== before) { markAdjusted(obj); adjusted += 1; }
  }
  S.sorted = null;
  changed(quiet && !adjusted);
}

function changed(quiet = false) {
  S.dirty += 1;
  journal();
  clearTimeout(S.saveTimer);
  S.saveTimer = setTimeout(save, SAVE_DELAY_MS);
  requestBase();
  if (!quiet) refreshPanels();
  statusbar();
}

function restore(from, to) {
  if (!from.length) { toast("Nothing to undo"); return; }
  to.push(snapshot());
  S.objects = JSON.parse(from.pop());
  reindex();
  changed();
}

// --- local journal: a reload or crash loses nothing -------------------------------------

const journalKey = () => `labelgate.journal.${TASK_ID}`;
function journal() {
  try {
    localStorage.setItem(journalKey(), JSON.stringify({
      base: S.revisionId, baseline: [...S.baseline], objects: S.objects, at: Date.now(),
    }));
  } catch { /* storage full: the server copy still counts */ }
}
function clearJournal() { localStorage.removeItem(journalKey()); }

// --- active time: what each save reports as work_seconds ---------------------------------

// Time between inputs, breaks over a minute left out (worktime.js). What accumulated since
// the last acknowledged save goes with the next one; a retry under the same Idempotency-Key
// sends the same number, and the server logs a replayed save once.
const ACTIVE = new ActiveTime();
S.activeTime = ACTIVE; // for the browser tests

// --- saving -------------------------------------------------------------------------------

/** Objects added, changed or deleted since the server's last acknowledgement. */
function pendingObjects(objects = serialize()) {
  let count = 0;
  const ids = new Set();
  for (const o of objects) {
    ids.add(o.id);
    if (S.baseline.get(o.id) !== JSON.stringify(o)) count += 1;
  }
  for (const id of S.baseline.keys()) if (!ids.has(id)) count += 1;
  return count;
}

function pill() {
  const node = $("save-pill");
  if (!node) return;
  let text; let cls;
  const pending = S.offline ? pendingObjects() : S.dirty - S.saved;
  if (S.conflict) { text = "Conflict"; cls = "conflict"; }
  else if (S.offline) { text = `Offline, ${pending} kept`; cls = "offline"; }
  else if (S.saving || pending > 0) { text = "Saving…"; cls = "saving"; }
  else if (S.error) { text = "Not saved"; cls = "offline"; }
  else { text = S.savedAt ? `Saved ${S.savedAt.toLocaleTimeString([], { hour12: false })}` : "Saved"; cls = "saved"; }
  node.textContent = text;
  node.className = `pill ${cls}`;
}

async function save() {
  clearTimeout(S.saveTimer);
  if (S.saving || S.conflict || S.dirty === S.saved) { pill(); return S.dirty === S.saved; }
  S.saving = true;
  pill();
  const version = S.dirty;
  const objects = serialize();
  if (S.revisionId !== null && pendingObjects(objects) === 0) {
    // undone back to what the server holds: no new revision for nothing
    S.saved = version; S.saving = false; clearJournal(); pill();
    return true;
  }
  if (S.saveKeyFor !== version) {
    S.saveKey = crypto.randomUUID(); S.saveKeyFor = version;
    ACTIVE.begin(); // this key's report: fixed for its retries
  }
  const workSeconds = ACTIVE.seconds();
  try {
    const result = await api(`/api/tasks/${TASK_ID}/labels`, {
      method: "PUT", headers: { "Idempotency-Key": S.saveKey },
      body: { base_revision_id: S.revisionId, objects, work_seconds: workSeconds },
    });
    ACTIVE.acknowledge();
    S.revisionId = result.revision_id;
    S.saved = version;
    S.baseline = new Map(objects.map((o) => [o.id, JSON.stringify(o)]));
    S.offline = false; S.error = null; S.savedAt = new Date();
    if (S.dirty === S.saved) clearJournal(); else journal();
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 409) {
      S.conflict = exc.body;
      showConflict(exc.body);
    } else if (exc instanceof ApiError) {
      S.error = exc.message;
      banner(el("span", {}, `Not saved: ${exc.message} `), el("button", { type: "button", onclick: () => { banner(); S.error = null; save(); } }, "Retry"));
    } else {
      S.offline = true;
      S.saveTimer = setTimeout(save, 3000);
    }
  } finally {
    S.saving = false;
  }
  pill();
  if (!S.conflict && !S.offline && !S.error && S.dirty !== S.saved) S.saveTimer = setTimeout(save, 200);
  return S.dirty === S.saved;
}

window.addEventListener("online", () => { if (S.offline) save(); });

function banner(...children) {
  const node = $("banner");
  delete node.dataset.reason;
  node.replaceChildren(...(children.length ? [el("p", { class: "banner" }, ...children)] : []));
}

function showConflict(body) {
  banner(
    el("strong", {}, "Conflict: "),
    `${body.detail || "this task was saved elsewhere in between"}. Nothing of yours was overwritten or lost. `,
    el("button", { type: "button", id: "conflict-merge", class: "primary", onclick: mergeTheirs }, "Merge: keep my edits where they did not touch"),
    el("button", { type: "button", id: "conflict-reload", onclick: reloadTheirs }, "Reload their version (drop mine)"),
  );
}

async function fetchTheirs() {
  const theirs = await api(`/api/tasks/${TASK_ID}`);
  return { revision: theirs.revision_id, objects: theirs.objects.map(normalize) };
}

async function reloadTheirs() {
  const theirs = await fetchTheirs();
  S.undo.push(snapshot());
  setObjects(theirs.objects);
  S.revisionId = theirs.revision;
  S.baseline = new Map(serialize().map((o) => [o.id, JSON.stringify(o)]));
  S.conflict = null; S.saved = S.dirty; clearJournal();
  banner();
  refreshPanels(); requestBase(); pill();
  toast(`Reloaded revision ${theirs.revision}`);
}

/** Three-way merge by object id: baseline (last ack), mine, theirs; both changed: a choice. */
async function mergeTheirs() {
  const theirs = await fetchTheirs();
  const mineNow = new Map(serialize().map((o) => [o.id, JSON.stringify(o)]));
  const mineObj = new Map(S.objects.map((o) => [o.id, o]));
  const saveObjects = S.objects;
  S.objects = theirs.objects;
  const theirsNow = new Map(serialize().map((o) => [o.id, JSON.stringify(o)]));
  S.objects = saveObjects;
  const ids = new Set([...S.baseline.keys(), ...mineNow.keys(), ...theirsNow.keys()]);
  const result = [];
  const choices = [];
  let nextId = Math.max(0, ...ids) + 1;
  for (const id of [...ids].sort((a, b) => a - b)) {
    const b = S.baseline.get(id); const m = mineNow.get(id); const t = theirsNow.get(id);
    const theirObj = theirs.objects.find((o) => o.id === id);
    if (b === undefined) {
      // new on one side or both: keep both (renumber mine if the id is taken)
      if (t !== undefined) result.push(theirObj);
      if (m !== undefined && m !== t) result.push({ ...mineObj.get(id), id: t !== undefined ? nextId++ : id });
      continue;
    }
    const mineChanged = m !== b; const theirsChanged = t !== b;
    if (!mineChanged) { if (t !== undefined) result.push(theirObj); continue; }
    if (!theirsChanged) { if (m !== undefined) result.push(mineObj.get(id)); continue; }
    if (m === t) { if (t !== undefined) result.push(theirObj); continue; }
    // both touched it: theirs for now, mine one click away
    if (t !== undefined) result.push(theirObj);
    choices.push({ id, mine: mineObj.get(id) ?? null });
  }
  S.undo.push(snapshot());
  S.objects = result.map(normalize);
  reindex();
  S.revisionId = theirs.revision;
  S.baseline = theirsNow;
  S.conflict = null;
  if (choices.length) {
    banner(el("strong", {}, `Merged onto revision ${theirs.revision}. `),
      `${choices.length} object(s) changed on both sides; theirs kept: `,
      ...choices.map((c) => el("button", {
        type: "button", onclick: (event) => {
          edit(() => {
            S.objects = S.objects.filter((o) => o.id !== c.id);
            if (c.mine) S.objects.push(normalize(c.mine));
            reindex();
          });
          event.target.disabled = true;
        },
      }, c.mine ? `use mine for #${c.id}` : `delete #${c.id} as I did`)),
      el("button", { type: "button", onclick: () => banner() }, "Done"));
  } else {
    banner();
    toast(`Merged onto revision ${theirs.revision}`);
  }
  changed();
}

// --- rendering ----------------------------------------------------------------------------

let baseQueued = false;
let overlayQueued = false;
function requestBase() {
  if (baseQueued) return;
  baseQueued = true;
  requestAnimationFrame(() => { baseQueued = false; renderBase(); renderOverlay(); });
}
function requestOverlay() {
  if (overlayQueued || baseQueued) return;
  overlayQueued = true;
  requestAnimationFrame(() => { overlayQueued = false; renderOverlay(); });
}

function resize() {
  const rect = stage.getBoundingClientRect();
  S.dpr = window.devicePixelRatio || 1;
  for (const canvas of [base, overlay]) {
    canvas.width = Math.max(1, Math.round(rect.width * S.dpr));
    canvas.height = Math.max(1, Math.round(rect.height * S.dpr));
    canvas.style.width = `${rect.width}px`;
    canvas.style.height = `${rect.height}px`;
  }
  requestBase();
}

function fit() {
  const rect = stage.getBoundingClientRect();
  const scale = Math.min(rect.width / S.width, rect.height / S.height) * 0.96;
  S.view = { scale, tx: (rect.width - S.width * scale) / 2, ty: (rect.height - S.height * scale) / 2 };
  requestBase(); statusbar();
}

function zoomAt(sx, sy, factor, settle = true) {
  const scale = Math.min(Math.max(S.view.scale * factor, 0.02), 40);
  const [ix, iy] = toImage(sx, sy);
  S.view = { scale, tx: sx - ix * scale, ty: sy - iy * scale };
  if (settle) previewView(); else requestBase();
  statusbar();
}

/** During a gesture the rendered base canvas is only moved and scaled by CSS (no redraw);
 * one real render follows when the gesture settles (UX.md §4). */
function previewView(settleMs = 150) {
  const r = S.rendered;
  if (!r) { requestBase(); return; }
  const k = S.view.scale / r.scale;
  base.style.transform = `matrix(${k}, 0, 0, ${k}, ${S.view.tx - r.tx * k}, ${S.view.ty - r.ty * k})`;
  requestOverlay();
  clearTimeout(S.settleTimer);
  if (settleMs !== null) S.settleTimer = setTimeout(requestBase, settleMs);
}

function sortedObjects() {
  if (!S.sorted) S.sorted = S.objects.filter((o) => o.kind !== "tag").sort((a, b) => a.z_order - b.z_order);
  return S.sorted;
}

function tracePolygon(ctx, obj) {
  for (const ring of obj.polygon) {
    ctx.moveTo(ring[0][0], ring[0][1]);
    for (let i = 1; i < ring.length; i++) ctx.lineTo(ring[i][0], ring[i][1]);
    ctx.closePath();
  }
}

function skeletonOf(classId) { return S.classIndex.get(classId)?.skeleton ?? []; }

function traceKeypoints(ctx, obj, radius) {
  const pts = obj.keypoints;
  for (const [i, j] of skeletonOf(obj.class_id)) {
    const a = pts[i - 1]; const b = pts[j - 1];
    if (a && b && a[2] > 0 && b[2] > 0) { ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); }
  }
  for (const [x, y, v] of pts) {
    if (v <= 0) continue;
    ctx.moveTo(x + radius, y);
    ctx.arc(x, y, radius, 0, Math.PI * 2);
  }
}

function renderBase() {
  const t0 = performance.now();
  const { scale, tx, ty } = S.view;
  const dpr = S.dpr;
  bctx.setTransform(1, 0, 0, 1, 0, 0);
  bctx.fillStyle = getComputedStyle(stage).backgroundColor || "#23262b";
  bctx.fillRect(0, 0, base.width, base.height);
  bctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * tx, dpr * ty);
  if (S.image) bctx.drawImage(S.image, 0, 0, S.width, S.height);
  else { bctx.fillStyle = "#6b7078"; bctx.fillRect(0, 0, S.width, S.height); }
  // the visible part of the image, for culling
  const [vx1, vy1] = toImage(0, 0);
  const [vx2, vy2] = toImage(base.width / dpr, base.height / dpr);
  const groups = new Map();
  for (const obj of sortedObjects()) {
    if (!visible(obj) || !obj.bbox) continue;
    const [x1, y1, x2, y2] = obj.bbox;
    if (x2 < vx1 || x1 > vx2 || y2 < vy1 || y1 > vy2) continue;
    const invalid = obj.kind === "polygon" && obj.polygon.some(invalidRing);
    const key = `${invalid ? "#ff3b30" : colorOf(obj.class_id)}|${isPrelabel(obj) ? 1 : 0}`;
    let list = groups.get(key);
    if (!list) { list = []; groups.set(key, list); }
    list.push(obj);
  }
  const line = 2 / scale;
  bctx.lineWidth = line;
  for (const [key, list] of groups) {
    const [color, pre] = key.split("|");
    bctx.strokeStyle = color;
    bctx.globalAlpha = pre === "1" ? 0.6 : 1;
    bctx.setLineDash(pre === "1" ? [6 / scale, 4 / scale] : []);
    bctx.beginPath();
    for (const obj of list) {
      if (obj.kind === "box") { const b = obj.bbox; bctx.rect(b[0], b[1], b[2] - b[0], b[3] - b[1]); }
      else if (obj.kind === "polygon") tracePolygon(bctx, obj);
      else if (obj.kind === "keypoints") traceKeypoints(bctx, obj, 3 / scale);
    }
    bctx.stroke();
  }
  bctx.globalAlpha = 1;
  bctx.setLineDash([]);
  S.rendered = { ...S.view };
  base.style.transform = "";
  S.frameTimes.push(performance.now() - t0);
  if (S.frameTimes.length > 600) S.frameTimes.splice(0, 300);
  if (S.inputTimes.length > 600) S.inputTimes.splice(0, 300);
}

function handlesOf(bbox) {
  const [x1, y1, x2, y2] = bbox;
  const mx = (x1 + x2) / 2; const my = (y1 + y2) / 2;
  return [["nw", x1, y1], ["n", mx, y1], ["ne", x2, y1], ["e", x2, my], ["se", x2, y2], ["s", mx, y2], ["sw", x1, y2], ["w", x1, my]];
}

function renderOverlay() {
  const dpr = S.dpr;
  octx.setTransform(1, 0, 0, 1, 0, 0);
  octx.clearRect(0, 0, overlay.width, overlay.height);
  octx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const w = overlay.width / dpr; const h = overlay.height / dpr;
  // full-height crosshair while a drawing tool is active (LS#5935)
  if (S.cursor && S.tool !== "select" && !S.pan) {
    const [sx, sy] = S.cursor;
    octx.strokeStyle = "rgba(255,255,255,.55)"; octx.lineWidth = 1; octx.setLineDash([4, 4]);
    octx.beginPath(); octx.moveTo(sx + 0.5, 0); octx.lineTo(sx + 0.5, h); octx.moveTo(0, sy + 0.5); octx.lineTo(w, sy + 0.5); octx.stroke();
    octx.setLineDash([]);
  }
  const outline = (obj, color, width) => {
    octx.save();
    octx.setTransform(dpr * S.view.scale, 0, 0, dpr * S.view.scale, dpr * S.view.tx, dpr * S.view.ty);
    octx.strokeStyle = color; octx.lineWidth = width / S.view.scale;
    octx.beginPath();
    if (obj.kind === "box") { const b = obj.bbox; octx.rect(b[0], b[1], b[2] - b[0], b[3] - b[1]); }
    else if (obj.kind === "polygon") tracePolygon(octx, obj);
    else if (obj.kind === "keypoints") traceKeypoints(octx, obj, 4 / S.view.scale);
    octx.stroke();
    octx.restore();
  };
  const hover = S.byId.get(S.hover);
  if (hover && hover.id !== S.selected && hover.bbox) outline(hover, "rgba(255,255,255,.9)", 2);
  const sel = S.byId.get(S.selected);
  if (sel && sel.bbox && visible(sel)) {
    const invalid = sel.kind === "polygon" && sel.polygon.some(invalidRing);
    outline(sel, "#ffffff", 3);
    outline(sel, invalid ? "#ff3b30" : colorOf(sel.class_id), 1.5);
    octx.fillStyle = "#fff"; octx.strokeStyle = "#111"; octx.lineWidth = 1;
    const points = sel.kind === "box" ? handlesOf(sel.bbox).map(([, x, y]) => [x, y])
      : sel.kind === "polygon" ? sel.polygon[0] : sel.keypoints.filter((k) => k[2] > 0);
    for (const [x, y] of points) {
      const [sx, sy] = toScreen(x, y);
      octx.fillRect(sx - HANDLE, sy - HANDLE, HANDLE * 2, HANDLE * 2);
      octx.strokeRect(sx - HANDLE, sy - HANDLE, HANDLE * 2, HANDLE * 2);
    }
    if (isPrelabel(sel) && sel.score !== null) {
      const [sx, sy] = toScreen(sel.bbox[0], sel.bbox[1]);
      octx.fillStyle = "#111"; octx.fillRect(sx, sy - 18, 120, 16);
      octx.fillStyle = "#fff"; octx.font = "12px system-ui"; octx.fillText(`pre-label ${fmt(sel.score, 2)}: A / X`, sx + 3, sy - 6);
    }
  }
  const d = S.drawing;
  if (d) {
    octx.strokeStyle = colorOf(S.classId); octx.fillStyle = colorOf(S.classId); octx.lineWidth = 2;
    if (d.kind === "box" && S.cursor) {
      const [ax, ay] = toScreen(d.start[0], d.start[1]);
      const [bx, by] = [S.cursor[0], S.cursor[1]];
      octx.strokeRect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
    } else if (d.kind === "polygon") {
      const pts = d.points.map(([x, y]) => toScreen(x, y));
      octx.beginPath();
      pts.forEach(([x, y], i) => (i ? octx.lineTo(x, y) : octx.moveTo(x, y)));
      if (S.cursor) octx.lineTo(S.cursor[0], S.cursor[1]);
      octx.stroke();
      for (const [x, y] of pts) octx.fillRect(x - 3, y - 3, 6, 6);
      if (pts.length) { octx.strokeStyle = "#fff"; octx.strokeRect(pts[0][0] - SNAP, pts[0][1] - SNAP, SNAP * 2, SNAP * 2); }
    } else if (d.kind === "keypoints") {
      const names = S.classIndex.get(S.classId)?.keypoints ?? [];
      const fake = { kind: "keypoints", class_id: S.classId, keypoints: d.points };
      octx.save();
      octx.setTransform(dpr * S.view.scale, 0, 0, dpr * S.view.scale, dpr * S.view.tx, dpr * S.view.ty);
      octx.lineWidth = 2 / S.view.scale; octx.beginPath(); traceKeypoints(octx, fake, 4 / S.view.scale); octx.stroke();
      octx.restore();
      if (S.cursor && d.points.length < names.length) {
        octx.font = "13px system-ui"; octx.fillStyle = "#fff";
        octx.fillText(`${names[d.points.length]} (click; Shift: occluded; Backspace: absent)`, S.cursor[0] + 12, S.cursor[1] - 10);
      }
    }
  }
}

// --- hit testing --------------------------------------------------------------------------

function hitTest(ix, iy) {
  // the smallest object under the cursor wins: a nested object stays selectable
  const tolerance = HANDLE / S.view.scale;
  let best = null; let bestArea = Infinity;
  for (const obj of S.objects) {
    if (obj.kind === "tag" || !obj.bbox || !visible(obj)) continue;
    const [x1, y1, x2, y2] = obj.bbox;
    if (ix < x1 - tolerance || ix > x2 + tolerance || iy < y1 - tolerance || iy > y2 + tolerance) continue;
    const area = (x2 - x1) * (y2 - y1);
    if (area < bestArea) { best = obj; bestArea = area; }
  }
  return best;
}

function handleAt(sx, sy) {
  const sel = S.byId.get(S.selected);
  if (!sel || !sel.bbox || S.locked.has(sel.id)) return null;
  const near = (x, y) => Math.abs(sx - x) <= HANDLE + 2 && Math.abs(sy - y) <= HANDLE + 2;
  if (sel.kind === "box") {
    for (const [name, x, y] of handlesOf(sel.bbox)) { const [hx, hy] = toScreen(x, y); if (near(hx, hy)) return { name }; }
  } else if (sel.kind === "polygon") {
    for (const [r, ring] of sel.polygon.entries()) {
      for (const [i, [x, y]] of ring.entries()) { const [hx, hy] = toScreen(x, y); if (near(hx, hy)) return { vertex: [r, i] }; }
    }
  } else if (sel.kind === "keypoints") {
    for (const [i, [x, y, v]] of sel.keypoints.entries()) { if (v <= 0) continue; const [hx, hy] = toScreen(x, y); if (near(hx, hy)) return { point: i }; }
  }
  return null;
}

// --- creating objects ---------------------------------------------------------------------

function announce(text) { $("live").textContent = text; }

function defaultAttributes(classId) {
  const out = {};
  for (const attr of attributesFor(classId)) {
    if (attr.name === "occluded" || attr.name === "truncated") continue;
    if (attr.default !== "" && attr.default !== undefined) out[attr.name] = attr.default;
  }
  return out;
}

function addObject(fields) {
  const obj = normalize({ id: S.nextId, class_id: S.classId, occluded: false, truncated: false, attributes: defaultAttributes(S.classId), ...fields });
  edit(() => { S.objects.push(obj); reindex(); S.selected = obj.id; });
  const b = obj.bbox;
  announce(`${className(obj.class_id)} ${obj.kind} created${b ? ` ${Math.round(b[2] - b[0])}×${Math.round(b[3] - b[1])}` : ""}`);
  return obj;
}

function finishBox(a, b) {
  const x1 = clampX(Math.min(a[0], b[0])); const x2 = clampX(Math.max(a[0], b[0]));
  const y1 = clampY(Math.min(a[1], b[1])); const y2 = clampY(Math.max(a[1], b[1]));
  S.drawing = null;
  if (x2 - x1 < MIN_SIZE || y2 - y1 < MIN_SIZE) {
    toast(`Box under ${MIN_SIZE}×${MIN_SIZE} px: not made`);
    requestOverlay();
    return;
  }
  addObject({ kind: "box", bbox: [x1, y1, x2, y2].map((v) => Math.round(v * 10) / 10) });
}

function closePolygon() {
  const d = S.drawing;
  if (!d || d.kind !== "polygon") return;
  if (d.points.length < 3) { toast("A polygon needs 3 points"); return; }
  S.drawing = null;
  const ring = d.points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
  addObject({ kind: "polygon", polygon: [ring] });
  if (invalidRing(ring)) toast("The polygon crosses itself: fix it before submitting");
}

function keypointStep(point) {
  const d = S.drawing;
  const names = S.classIndex.get(S.classId)?.keypoints ?? [];
  d.points.push(point);
  if (d.points.length >= names.length) {
    S.drawing = null;
    if (d.points.every((p) => p[2] === 0)) { toast("Every point absent: nothing made"); return; }
    addObject({ kind: "keypoints", keypoints: d.points });
  }
  requestOverlay();
}

// --- pointer input ------------------------------------------------------------------------

function localPoint(event) {
  const rect = overlay.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

overlay.addEventListener("contextmenu", (event) => event.preventDefault());
overlay.addEventListener("wheel", (event) => {
  event.preventDefault();
  const [sx, sy] = localPoint(event);
  zoomAt(sx, sy, Math.exp(-event.deltaY * 0.0015));
}, { passive: false });

overlay.addEventListener("pointerdown", (event) => {
  const t0 = performance.now();
  try { pointerDown(event); } finally { S.inputTimes.push(performance.now() - t0); }
});

function pointerDown(event) {
  overlay.focus({ preventScroll: true });
  const [sx, sy] = localPoint(event);
  const [ix, iy] = toImage(sx, sy);
  if (event.button === 1 || (event.button === 0 && S.space)) {
    // panning never ends a polygon (LS#5727)
    S.pan = { sx, sy, tx: S.view.tx, ty: S.view.ty };
    overlay.setPointerCapture(event.pointerId);
    event.preventDefault();
    return;
  }
  if (event.button !== 0) return;
  if (S.readOnly && S.tool !== "select") { toast("This task is submitted: read only"); return; }
  overlay.setPointerCapture(event.pointerId);
  if (S.tool === "box") {
    if (S.drawing?.kind === "box") finishBox(S.drawing.start, [ix, iy]);
    else S.drawing = { kind: "box", start: [clampX(ix), clampY(iy)], screen: [sx, sy], pressed: true };
  } else if (S.tool === "polygon") {
    const d = S.drawing?.kind === "polygon" ? S.drawing : (S.drawing = { kind: "polygon", points: [] });
    if (d.points.length >= 3) {
      const [fx, fy] = toScreen(...d.points[0]);
      if (Math.hypot(fx - sx, fy - sy) <= SNAP) { closePolygon(); return; }
    }
    d.points.push([clampX(ix), clampY(iy)]);
  } else if (S.tool === "keypoints") {
    const names = S.classIndex.get(S.classId)?.keypoints ?? [];
    if (!names.length) { toast(`${className(S.classId)} has no keypoints in the spec`); return; }
    if (!S.drawing) S.drawing = { kind: "keypoints", points: [] };
    keypointStep([clampX(ix), clampY(iy), event.shiftKey ? 1 : 2]);
  } else {
    const handle = handleAt(sx, sy);
    if (handle && !S.readOnly) { S.drag = { ...handle, start: [ix, iy], before: null }; }
    else {
      const hit = hitTest(ix, iy);
      S.selected = hit ? hit.id : null;
      if (hit && !S.locked.has(hit.id) && !S.readOnly) S.drag = { move: true, start: [ix, iy], before: null };
      refreshPanels();
      if (hit && hit.kind !== "tag") $("tab-attributes").click();
    }
  }
  requestOverlay();
}

let pendingMove = null;
overlay.addEventListener("pointermove", (event) => {
  // input is batched per animation frame: one hit test and one redraw per frame at most
  if (!pendingMove) requestAnimationFrame(processMove);
  pendingMove = { point: localPoint(event), shift: event.shiftKey };
});

function processMove() {
  const t0 = performance.now();
  try { moveTo(); } finally { S.inputTimes.push(performance.now() - t0); }
}

function moveTo() {
  const { point } = pendingMove; pendingMove = null;
  const [sx, sy] = point;
  S.cursor = point;
  const [ix, iy] = toImage(sx, sy);
  if (S.pan) {
    S.view.tx = S.pan.tx + sx - S.pan.sx;
    S.view.ty = S.pan.ty + sy - S.pan.sy;
    previewView(null);
    return;
  }
  if (S.drag) { dragTo(ix, iy); return; }
  const hit = S.tool === "select" ? hitTest(ix, iy) : null;
  S.hover = hit ? hit.id : null;
  $("cursor-px").textContent = `${Math.round(ix)}, ${Math.round(iy)} px`;
  requestOverlay();
}

function dragTo(ix, iy) {
  const d = S.drag;
  const obj = S.byId.get(S.selected);
  if (!obj) return;
  if (!d.before) { d.before = snapshot(); d.original = JSON.parse(JSON.stringify(obj)); }
  const dx = ix - d.start[0]; const dy = iy - d.start[1];
  const o = d.original;
  if (d.move) {
    if (o.kind === "box") obj.bbox = [o.bbox[0] + dx, o.bbox[1] + dy, o.bbox[2] + dx, o.bbox[3] + dy];
    else if (o.kind === "polygon") obj.polygon = o.polygon.map((r) => r.map(([x, y]) => [x + dx, y + dy]));
    else if (o.kind === "keypoints") obj.keypoints = o.keypoints.map(([x, y, v]) => [x + dx, y + dy, v]);
  } else if (d.name) {
    let [x1, y1, x2, y2] = o.bbox;
    if (d.name.includes("w")) x1 = clampX(o.bbox[0] + dx);
    if (d.name.includes("e")) x2 = clampX(o.bbox[2] + dx);
    if (d.name.includes("n")) y1 = clampY(o.bbox[1] + dy);
    if (d.name.includes("s")) y2 = clampY(o.bbox[3] + dy);
    obj.bbox = [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)];
  } else if (d.vertex) {
    const [r, i] = d.vertex;
    obj.polygon[r][i] = [clampX(o.polygon[r][i][0] + dx), clampY(o.polygon[r][i][1] + dy)];
  } else if (d.point !== undefined) {
    const k = o.keypoints[d.point];
    obj.keypoints[d.point] = [clampX(k[0] + dx), clampY(k[1] + dy), k[2]];
  }
  if (obj.kind !== "box") obj.bbox = bboxOf(obj);
  S.sorted = null;
  requestBase();
}

overlay.addEventListener("pointerup", (event) => {
  const [sx, sy] = localPoint(event);
  const [ix, iy] = toImage(sx, sy);
  if (S.pan) { S.pan = null; clearTimeout(S.settleTimer); requestBase(); return; }
  if (S.drawing?.kind === "box" && S.drawing.pressed) {
    S.drawing.pressed = false;
    const [ax, ay] = S.drawing.screen;
    // a drag makes the box; a click starts a two-click box
    if (Math.hypot(sx - ax, sy - ay) > 3) finishBox(S.drawing.start, [ix, iy]);
  }
  if (S.drag) {
    const d = S.drag; S.drag = null;
    if (d.before) {
      const obj = S.byId.get(S.selected);
      obj.bbox = obj.bbox.map((v) => Math.round(v * 10) / 10);
      if (isPrelabel(obj)) markAdjusted(obj);
      S.undo.push(d.before); if (S.undo.length > UNDO_LIMIT) S.undo.shift(); S.redo = [];
      changed();
    }
  }
  requestOverlay();
});

overlay.addEventListener("pointerleave", () => { S.cursor = null; S.hover = null; requestOverlay(); });

// --- pre-labels ---------------------------------------------------------------------------

// A proposal keeps its object key (id) whatever happens to it: the server compares the
// pre-label revision with the submitted head by key (same class and geometry: accept;
// changed: adjust, with the IoU; key gone: reject).

function logPrelabel(obj, decision) {
  S.prelabelLog.push({ id: obj.id, decision, at: Date.now() });
  sessionStorage.setItem(`labelgate.prelabels.${TASK_ID}`, JSON.stringify(S.prelabelLog));
}

/** What an edit of a proposal can change (everything but its source). */
function proposalContent(o) {
  return JSON.stringify([o.class_id, o.kind, o.bbox, o.polygon, o.keypoints, o.occluded, o.truncated,
    o.track_id, o.z_order, o.attributes]);
}

function markAdjusted(obj) {
  obj.source = "human"; obj._prelabel = "adjusted";
  logPrelabel(obj, "adjusted");
  announce(`${className(obj.class_id)} pre-label adjusted`);
}

function acceptPrelabel(obj) {
  if (!obj || !isPrelabel(obj)) return;
  edit(() => { obj.source = "human"; obj._prelabel = "accepted"; });
  logPrelabel(obj, "accepted");
  announce(`${className(obj.class_id)} pre-label accepted`);
}

function rejectPrelabel(obj) {
  if (!obj || !isPrelabel(obj)) return;
  logPrelabel(obj, "rejected");
  edit(() => { S.objects = S.objects.filter((o) => o !== obj); reindex(); });
  announce(`${className(obj.class_id)} pre-label rejected`);
}

/** Accept every unreviewed proposal with a score at or above ``threshold`` (0: all). */
function acceptAll(threshold = 0) {
  const list = S.objects.filter((o) => isPrelabel(o) && (o.score ?? 1) >= threshold);
  const what = threshold > 0 ? ` with score ≥ ${threshold}` : "";
  if (!list.length) { toast(`No unreviewed pre-labels${what}`); return; }
  edit(() => { for (const o of list) { o.source = "human"; o._prelabel = "accepted"; } });
  for (const o of list) logPrelabel(o, "accepted");
  toast(`Accepted ${list.length} pre-label${list.length === 1 ? "" : "s"}${what}`);
}

function acceptAllAbove() {
  acceptAll(Number($("prelabel-threshold")?.value ?? 0.5));
}

// --- keyboard -----------------------------------------------------------------------------

const TOOLS = [
  ["select", "Select", "V"], ["box", "Box", "R"], ["polygon", "Polygon", "P"], ["keypoints", "Keypoints", "K"],
];

function setTool(tool) {
  S.drawing = null;
  S.tool = tool;
  if (tool !== "select") S.lastTool = tool;
  for (const button of $("tools").querySelectorAll("button[data-tool]")) button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  overlay.style.cursor = tool === "select" ? "default" : "crosshair";
  requestOverlay(); statusbar();
}

function setClass(classId) {
  S.classId = classId;
  for (const button of $("classes").querySelectorAll("button")) button.setAttribute("aria-pressed", String(Number(button.dataset.class) === classId));
  const sel = S.byId.get(S.selected);
  // with the select tool a class key relabels the selection; with a drawing tool it only
  // picks the class of the next shape (the last drawn one stays what it was)
  if (sel && S.tool === "select" && sel.class_id !== classId && sel.kind !== "tag") {
    edit(() => { sel.class_id = classId; });
    announce(`class changed to ${className(classId)}`);
  }
  statusbar();
}

function nudge(dx, dy, resize) {
  const obj = S.byId.get(S.selected);
  if (!obj || S.locked.has(obj.id)) return;
  edit(() => {
    if (obj.kind === "box") {
      const b = obj.bbox;
      obj.bbox = resize ? [b[0], b[1], Math.max(b[0] + 1, b[2] + dx), Math.max(b[1] + 1, b[3] + dy)] : [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
    } else if (obj.kind === "polygon") obj.polygon = obj.polygon.map((r) => r.map(([x, y]) => [x + dx, y + dy]));
    else if (obj.kind === "keypoints") obj.keypoints = obj.keypoints.map(([x, y, v]) => [x + dx, y + dy, v]);
    if (obj.kind !== "box") obj.bbox = bboxOf(obj);
  }, { quiet: true });
}

function deleteSelected() {
  const obj = S.byId.get(S.selected);
  if (!obj) return;
  if (obj.source === "prelabel") logPrelabel(obj, "rejected");
  edit(() => { S.objects = S.objects.filter((o) => o !== obj); reindex(); });
  announce(`${className(obj.class_id)} ${obj.kind} deleted`);
}

function cycleObjects(back) {
  const list = sortedObjects().filter(visible);
  if (!list.length) return;
  const at = list.findIndex((o) => o.id === S.selected);
  const next = list[(at + (back ? -1 : 1) + list.length) % list.length];
  S.selected = next.id;
  announce(`${className(next.class_id)} #${next.id} selected`);
  refreshPanels(); requestOverlay();
}

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
}

document.addEventListener("keyup", (event) => { if (event.code === "Space") { S.space = false; } });
document.addEventListener("keydown", (event) => {
  const key = event.key;
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && key === "Enter") { event.preventDefault(); submit(); return; }
  if (key === "Escape" && typing(event.target)) { event.target.blur(); overlay.focus(); return; }
  if (typing(event.target)) return;
  if (event.key === "F6") { cycleFocus(event.shiftKey); event.preventDefault(); return; }
  const sel = S.byId.get(S.selected);
  if (ctrl) {
    const k = key.toLowerCase();
    if (k === "z" && !event.shiftKey) { restore(S.undo, S.redo); event.preventDefault(); }
    else if (k === "y" || (k === "z" && event.shiftKey)) { restore(S.redo, S.undo); event.preventDefault(); }
    else if (k === "c" && sel) { S.clipboard = JSON.parse(JSON.stringify(sel)); toast("Copied"); event.preventDefault(); }
    else if (k === "v" && event.shiftKey) { pastePrevious(); event.preventDefault(); }
    else if (k === "v" && S.clipboard) { paste(S.clipboard); event.preventDefault(); }
    else if (k === "s") { save(); event.preventDefault(); }
    return;
  }
  if (event.code === "Space") { S.space = true; event.preventDefault(); return; }
  if (/^[0-9]$/.test(key) && !event.altKey) {
    if ($("panel-tags").hidden === false && S.tagFocus) { toggleTag(tagClasses()[(Number(key) + 9) % 10]); return; }
    const cls = S.classes[(Number(key) + 9) % 10];
    if (cls) setClass(cls.id);
    return;
  }
  const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  if (arrows[key]) {
    const step = event.shiftKey ? 10 : 1;
    nudge(arrows[key][0] * step, arrows[key][1] * step, event.altKey);
    event.preventDefault();
    return;
  }
  switch (key) {
    case "v": case "V": setTool("select"); break;
    case "r": case "R": setTool("box"); break;
    case "p": case "P": setTool("polygon"); break;
    case "k": case "K": setTool("keypoints"); break;
    case "n": case "N": setTool(S.lastTool); break;
    case "Enter": if (S.drawing?.kind === "polygon") closePolygon(); break;
    case "Backspace":
      if (S.drawing?.kind === "polygon") { S.drawing.points.pop(); requestOverlay(); }
      else if (S.drawing?.kind === "keypoints" || (S.tool === "keypoints" && S.classIndex.get(S.classId)?.keypoints?.length)) {
        if (!S.drawing) S.drawing = { kind: "keypoints", points: [] };
        keypointStep([0, 0, 0]);
      } else deleteSelected();
      event.preventDefault();
      break;
    case "Delete": deleteSelected(); break;
    case "Escape":
      if (S.drawing) { S.drawing = null; toast("Drawing cancelled"); }
      else { S.selected = null; refreshPanels(); }
      requestOverlay();
      break;
    case "q": case "Q": if (sel) { edit(() => { sel.occluded = !sel.occluded; }); announce(`occluded ${sel.occluded ? "on" : "off"}`); } break;
    case "w": case "W": if (sel) { edit(() => { sel.truncated = !sel.truncated; }); announce(`truncated ${sel.truncated ? "on" : "off"}`); } break;
    case "i": case "I": if (sel) { showTab("attributes"); $("attr-track_id")?.focus(); event.preventDefault(); } break;
    case "z": fit(); break;
    case "Z": { const r = stage.getBoundingClientRect(); zoomAt(r.width / 2, r.height / 2, 1 / S.view.scale, false); break; }
    case "h": if (sel) { S.hidden.has(sel.id) ? S.hidden.delete(sel.id) : S.hidden.add(sel.id); requestBase(); } break;
    case "H": S.hideAll = !S.hideAll; requestBase(); toast(S.hideAll ? "All objects hidden (Shift+H shows them)" : "All objects shown"); break;
    case "l": case "L": if (sel) { S.locked.has(sel.id) ? S.locked.delete(sel.id) : S.locked.add(sel.id); toast(S.locked.has(sel.id) ? "Locked" : "Unlocked"); } break;
    case "s": case "S": S.solo = S.solo === null ? (sel?.class_id ?? S.classId) : null; requestBase(); toast(S.solo === null ? "All classes" : `Only ${className(S.solo)}`); break;
    case "+": case "=": if (sel) edit(() => { sel.z_order += 1; }, { quiet: true }); break;
    case "-": if (sel) edit(() => { sel.z_order -= 1; }, { quiet: true }); break;
    case "Tab": cycleObjects(event.shiftKey); event.preventDefault(); break;
    case "a": if (sel) acceptPrelabel(sel); break;
    case "A": acceptAllAbove(); break;
    case "x": case "X": if (sel) rejectPrelabel(sel); break;
    case "g": case "G": showTab("rules"); break;
    case "t": case "T": showTab("tags"); S.tagFocus = true; $("panel-tags").querySelector("input")?.focus(); break;
    case "/": showClassSearch(); event.preventDefault(); break;
    case "?": $("help").open ? $("help").close() : $("help").showModal(); break;
    case "f": case "F": goTask(1); break;
    case "d": case "D": goTask(-1); break;
    default: return;
  }
});

function paste(source, offset = 10) {
  // a copy is the annotator's own object, never a proposal (a proposal is only what the model sent)
  const copy = normalize({ ...JSON.parse(JSON.stringify(source)), id: S.nextId, source: "human", score: null });
  const shift = ([x, y, ...rest]) => [clampX(x + offset), clampY(y + offset), ...rest];
  if (copy.kind === "box") copy.bbox = [...shift(copy.bbox.slice(0, 2)), ...shift(copy.bbox.slice(2))];
  if (copy.kind === "polygon") copy.polygon = copy.polygon.map((r) => r.map(shift));
  if (copy.kind === "keypoints") copy.keypoints = copy.keypoints.map(shift);
  if (copy.kind !== "box") copy.bbox = bboxOf(copy);
  edit(() => { S.objects.push(copy); reindex(); S.selected = copy.id; });
}

function pastePrevious() {
  const previous = JSON.parse(sessionStorage.getItem("labelgate.previous") || "null");
  if (!previous || previous.task === TASK_ID || !previous.objects.length) { toast("No previous image to paste from"); return; }
  edit(() => {
    for (const obj of previous.objects) S.objects.push(normalize({ ...obj, id: S.nextId++, source: "human", score: null }));
    reindex();
  });
  toast(`Pasted ${previous.objects.length} objects of the previous image`);
}

const FOCUS_ORDER = ["tools", "overlay", "classes", "panel-objects", "panel-attributes", "submit"];
function cycleFocus(back) {
  const at = FOCUS_ORDER.findIndex((id) => $(id).contains(document.activeElement));
  const next = $(FOCUS_ORDER[(at + (back ? -1 : 1) + FOCUS_ORDER.length) % FOCUS_ORDER.length]);
  const target = next.matches("button, canvas") ? next : next.querySelector("button, input, select, [tabindex]") || next;
  if (!target.hasAttribute("tabindex") && !target.matches("button, input, select, canvas")) target.tabIndex = -1;
  target.focus();
}

async function goTask(direction) {
  const at = S.queue.indexOf(TASK_ID);
  const next = S.queue[at + direction];
  if (next === undefined) { toast(direction > 0 ? "Last task in the queue" : "First task in the queue"); return; }
  await save();
  location.assign(`/annotate/${next}`);
}

// --- panels -------------------------------------------------------------------------------

function showTab(name) {
  for (const tab of ["objects", "attributes", "tags", "rules"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
  if (name !== "tags") S.tagFocus = false;
  refreshPanels();
}

function attributesFor(classId) {
  const name = className(classId);
  return S.attributes.filter((a) => !a.classes.length || a.classes.includes(name));
}

function missingRequired(obj) {
  const missing = [];
  for (const attr of attributesFor(obj.class_id)) {
    if (!attr.required || attr.name === "occluded" || attr.name === "truncated") continue;
    const value = attr.name === "track_id" ? obj.track_id : obj.attributes[attr.name];
    if (value === undefined || value === null || value === "") missing.push(attr.name);
  }
  return missing;
}

function renderObjects() {
  const panel = $("panel-objects");
  const list = $("objlist");
  const shown = S.objects;
  list.style.height = `${shown.length * ROW_HEIGHT + 40}px`;
  const first = Math.max(0, Math.floor(panel.scrollTop / ROW_HEIGHT) - 5);
  const last = Math.min(shown.length, first + Math.ceil(panel.clientHeight / ROW_HEIGHT) + 10);
  const rows = [];
  for (let i = first; i < last; i++) {
    const o = shown[i];
    const warn = missingRequired(o).length || (o.kind === "polygon" && o.polygon.some(invalidRing));
    rows.push(el("div", {
      class: `objrow${o.id === S.selected ? " selected" : ""}`, style: `top:${i * ROW_HEIGHT}px`, role: "option",
      "aria-selected": String(o.id === S.selected), "data-object": o.id,
      onclick: () => { S.selected = o.id; refreshPanels(); requestOverlay(); },
    }, el("span", { class: "swatch", style: `--c:${colorOf(o.class_id)}` }),
    `#${o.id} ${className(o.class_id)} · ${o.kind}`,
    isPrelabel(o) ? el("span", { class: "prelabel-tag" }, ` pre-label ${fmt(o.score, 2)}`) : o._prelabel ? ` · ${o._prelabel}` : "",
    o.occluded ? " · occ" : "", o.truncated ? " · trunc" : "", warn ? " ⚠" : ""));
  }
  if (!shown.length) rows.push(el("p", { class: "muted" }, "No objects yet: R draws a box, P a polygon."));
  list.replaceChildren(...rows);
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", `${shown.length} objects`);
}
$("panel-objects").addEventListener("scroll", () => requestAnimationFrame(renderObjects), { passive: true });

function field(label, control) {
  return el("div", { class: "field" }, el("label", { for: control.id }, label), control);
}

function renderAttributes() {
  const panel = $("panel-attributes");
  const obj = S.byId.get(S.selected);
  if (!obj) { panel.replaceChildren(el("p", { class: "muted" }, "Select an object (V, then click; or Tab).")); return; }
  const controls = [el("p", {}, el("strong", {}, `#${obj.id} ${className(obj.class_id)}`), ` · ${obj.kind}`, obj.source !== "human" ? ` · ${obj.source}` : "")];
  if (isPrelabel(obj)) {
    controls.push(el("p", { class: "prelabel-review" }, `Pre-label, score ${fmt(obj.score, 2)}: `,
      el("button", { type: "button", id: "prelabel-accept", onclick: () => acceptPrelabel(obj) }, "Accept (A)"), " ",
      el("button", { type: "button", id: "prelabel-reject", class: "danger", onclick: () => rejectPrelabel(obj) }, "Reject (X)"),
      el("span", { class: "muted" }, " · or adjust it: any edit makes it yours")));
  } else if (obj._prelabel) {
    controls.push(el("p", { class: "muted" }, `Pre-label ${obj._prelabel} (model score ${fmt(obj.score, 2)})`));
  }
  const checkbox = (name, key, hint) => {
    const input = el("input", { type: "checkbox", id: `attr-${name}`, checked: obj[name] });
    input.addEventListener("change", () => edit(() => { obj[name] = input.checked; }));
    return field(`${name} (${key})${hint ?? ""}`, input);
  };
  if (obj.kind !== "tag") {
    controls.push(checkbox("occluded", "Q"), checkbox("truncated", "W"));
    const track = el("input", { type: "number", min: 0, step: 1, id: "attr-track_id", value: obj.track_id ?? "" });
    track.addEventListener("change", () => edit(() => { obj.track_id = track.value === "" ? null : Number(track.value); }));
    controls.push(field("track id (I)", track));
  }
  for (const attr of attributesFor(obj.class_id)) {
    if (["occluded", "truncated", "track_id"].includes(attr.name)) continue;
    const id = `attr-${attr.name}`;
    const value = obj.attributes[attr.name];
    let control;
    if (attr.type === "select") {
      control = el("select", { id }, el("option", { value: "" }, "–"), ...attr.values.map((v) => el("option", { value: v, selected: v === value }, v)));
    } else if (attr.type === "bool") {
      control = el("input", { type: "checkbox", id, checked: value === true || value === "true" });
    } else {
      control = el("input", { id, type: attr.type === "int" || attr.type === "float" ? "number" : "text", step: attr.type === "float" ? "any" : 1, value: value ?? "" });
    }
    control.addEventListener("change", () => edit(() => {
      let v = control.type === "checkbox" ? control.checked : control.value;
      if (attr.type === "int" && v !== "") v = parseInt(v, 10);
      if (attr.type === "float" && v !== "") v = Number(v);
      if (v === "") delete obj.attributes[attr.name]; else obj.attributes[attr.name] = v;
    }));
    controls.push(field(`${attr.name}${attr.required ? " *" : ""}`, control));
  }
  const missing = missingRequired(obj);
  if (missing.length) controls.push(el("p", { class: "error" }, `⚠ missing: ${missing.join(", ")}`));
  controls.push(el("p", {}, el("button", { type: "button", class: "danger", onclick: deleteSelected }, "Delete (Del)")));
  panel.replaceChildren(...controls);
}

function tagClasses() {
  const tags = S.classes.filter((c) => c.kind === "tag");
  return tags.length ? tags : S.classes;
}

function toggleTag(cls) {
  if (!cls) return;
  const existing = S.objects.find((o) => o.kind === "tag" && o.class_id === cls.id);
  edit(() => {
    if (existing) S.objects = S.objects.filter((o) => o !== existing);
    else S.objects.push(normalize({ id: S.nextId, class_id: cls.id, kind: "tag" }));
    reindex();
  });
}

function renderTags() {
  const panel = $("panel-tags");
  const on = new Set(S.objects.filter((o) => o.kind === "tag").map((o) => o.class_id));
  panel.replaceChildren(el("p", { class: "muted" }, "Whole-image tags (T, then digits toggle)."),
    ...tagClasses().map((cls, i) => {
      const input = el("input", { type: "checkbox", id: `tag-${cls.id}`, checked: on.has(cls.id) });
      input.addEventListener("change", () => toggleTag(cls));
      return el("div", {}, input, el("label", { for: input.id }, ` ${i < 10 ? `${(i + 1) % 10} ` : ""}${cls.name}`));
    }));
}

function renderRules() {
  const panel = $("panel-rules");
  const sel = S.byId.get(S.selected);
  const name = className(sel ? sel.class_id : S.classId);
  const rules = S.spec.edge_cases || [];
  const mine = rules.filter((r) => r.classes.includes(name));
  const rest = rules.filter((r) => !r.classes.includes(name));
  const show = (r) => el("div", { class: "rule" }, el("strong", {}, r.id), ` (${r.classes.join(", ") || "all classes"}): `, r.rule,
    r.examples?.length ? el("div", { class: "muted" }, `examples: ${r.examples.join(", ")}`) : null);
  panel.replaceChildren(el("p", { class: "muted" }, `Spec v${S.spec.spec_version} · rules for ${name} first`),
    ...mine.map(show), mine.length && rest.length ? el("hr") : null, ...rest.map(show));
}

function refreshPanels() {
  if (!S.spec) return;
  if (!$("panel-objects").hidden) renderObjects();
  if (!$("panel-attributes").hidden) renderAttributes();
  if (!$("panel-tags").hidden) renderTags();
  if (!$("panel-rules").hidden) renderRules();
  statusbar();
}

function statusbar() {
  if (!S.task) return;
  const pre = S.objects.filter(isPrelabel).length;
  const at = S.queue.indexOf(TASK_ID);
  $("zoom").textContent = `zoom ${Math.round(S.view.scale * 100)} %`;
  $("count").textContent = `${S.objects.length} objects`;
  $("prelabels").textContent = `${pre} pre-labels left`;
  prelabelBar(pre);
  $("position").textContent = at >= 0 ? `${at + 1}/${S.queue.length}` : "";
  $("tool-name").textContent = `${S.tool} · ${className(S.classId)}`;
  pill();
}

/** Above Submit: how many proposals are left, and "Accept all" (only when there are any). */
function prelabelBar(pending) {
  let bar = $("prelabel-bar");
  const reviewed = S.objects.filter((o) => o._prelabel).length;
  if (!pending && !reviewed) { if (bar) bar.hidden = true; return; }
  // the status bar refreshes on every zoom step: touch the DOM only when the counts change
  const key = `${pending}|${reviewed}`;
  if (bar && !bar.hidden && bar.dataset.counts === key) return;
  if (!bar) {
    bar = el("div", { id: "prelabel-bar", class: "prelabel-bar", role: "status" });
    document.querySelector(".submitbar").before(bar);
  }
  bar.hidden = false;
  bar.dataset.counts = key;
  const parts = [el("span", {}, pending ? `${pending} pre-label${pending === 1 ? "" : "s"} to review` : "All pre-labels reviewed",
    reviewed ? ` · ${reviewed} reviewed` : "")];
  if (pending) parts.push(el("button", { type: "button", id: "prelabel-accept-all", onclick: () => acceptAll(0) }, `Accept all ${pending}`));
  bar.replaceChildren(...parts);
}

function showClassSearch() {
  const name = prompt("Class name (start of it):");
  if (!name) return;
  const cls = S.classes.find((c) => c.name.toLowerCase().startsWith(name.toLowerCase()));
  if (cls) setClass(cls.id); else toast(`No class starts with ${name}`);
}

// --- submit -------------------------------------------------------------------------------

async function submit() {
  const problems = [];
  for (const o of S.objects) {
    const missing = missingRequired(o);
    if (missing.length) problems.push([o, missing.join(", ")]);
    else if (o.kind === "polygon" && o.polygon.some(invalidRing)) problems.push([o, "self-intersecting or under 3 points"]);
  }
  if (problems.length) {
    banner(`${problems.length} object(s) block submitting: `, ...problems.slice(0, 8).map(([o, why]) => el("button", {
      type: "button", onclick: () => { S.selected = o.id; showTab("attributes"); zoomTo(o); },
    }, `${className(o.class_id)} #${o.id} (${why})`)));
    return;
  }
  // every proposal must be accepted, adjusted or rejected first (the server refuses it too)
  const pending = S.objects.filter(isPrelabel);
  if (pending.length) {
    banner(el("strong", {}, "Not submitted: "),
      `${pending.length} pre-label${pending.length === 1 ? " is" : "s are"} not reviewed. Accept (A), adjust or reject (X) each, or accept all, then submit. `,
      ...pending.slice(0, 8).map((o) => el("button", {
        type: "button", onclick: () => { S.selected = o.id; showTab("attributes"); zoomTo(o); },
      }, `${className(o.class_id)} #${o.id} (${fmt(o.score, 2)})`)),
      pending.length > 8 ? ` and ${pending.length - 8} more` : "");
    $("banner").dataset.reason = "unreviewed-prelabels";
    return;
  }
  if (!(await save())) { toast("Not saved yet: cannot submit"); return; }
  try {
    await api(`/api/tasks/${TASK_ID}/submit`, { method: "POST" });
  } catch (exc) {
    banner(el("strong", {}, "Submit refused: "), exc.message);
    $("banner").dataset.reason = exc instanceof ApiError ? `http-${exc.status}` : "network";
    return;
  }
  clearJournal();
  const next = S.queue[S.queue.indexOf(TASK_ID) + 1];
  location.assign(next ? `/annotate/${next}` : "/queue");
}

function zoomTo(obj) {
  if (!obj.bbox) return;
  const rect = stage.getBoundingClientRect();
  const [x1, y1, x2, y2] = obj.bbox;
  const scale = Math.min(rect.width / (x2 - x1 + 80), rect.height / (y2 - y1 + 80), 8);
  S.view = { scale, tx: rect.width / 2 - ((x1 + x2) / 2) * scale, ty: rect.height / 2 - ((y1 + y2) / 2) * scale };
  requestBase(); refreshPanels();
}

// --- start --------------------------------------------------------------------------------

function buildChrome() {
  $("tools").replaceChildren(...TOOLS.map(([tool, label, key]) => el("button", {
    type: "button", "data-tool": tool, "aria-pressed": "false", title: `${label} (${key})`, "aria-label": `${label} (${key})`,
    onclick: () => setTool(tool),
  }, key)),
  el("button", { type: "button", title: "Undo (Ctrl+Z)", "aria-label": "Undo (Ctrl+Z)", onclick: () => restore(S.undo, S.redo) }, "↶"),
  el("button", { type: "button", title: "Redo (Ctrl+Y)", "aria-label": "Redo (Ctrl+Y)", onclick: () => restore(S.redo, S.undo) }, "↷"),
  el("button", { type: "button", title: "Fit (Z)", "aria-label": "Fit (Z)", onclick: fit }, "Z"),
  el("button", { type: "button", title: "Shortcuts (?)", "aria-label": "Shortcuts (?)", onclick: () => $("help").showModal() }, "?"));
  $("classes").replaceChildren(...S.classes.map((cls, i) => el("button", {
    type: "button", "data-class": cls.id, "aria-pressed": "false", style: `--c:${cls.color}`,
    "aria-label": `${cls.name}${i < 10 ? ` (${(i + 1) % 10})` : ""}`, onclick: () => setClass(cls.id),
  }, i < 10 ? `${(i + 1) % 10} ` : "", cls.name)));
  for (const tab of ["objects", "attributes", "tags", "rules"]) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
  $("submit").addEventListener("click", submit);
  $("statusbar").replaceChildren(
    el("span", { id: "tool-name" }), el("span", { id: "zoom" }), el("span", { id: "cursor-px" }, "–"), el("span", { id: "count" }),
    el("span", { id: "prelabels" }), el("label", {}, "accept ≥ ", el("input", { id: "prelabel-threshold", type: "number", min: 0, max: 1, step: 0.05, value: 0.5, style: "width:60px" }), " (Shift+A)"),
    el("span", { id: "position" }),
  );
  const keys = [
    ["R P K V", "box, polygon, keypoints, select"], ["N", "repeat last tool"], ["1–9, 0 / /", "class / class search"],
    ["Ctrl+Z, Ctrl+Y", "undo, redo (100 steps)"], ["wheel, Z, Shift+Z", "zoom at cursor, fit, 1:1"],
    ["Space+drag, middle drag", "pan (also while drawing)"], ["H, Shift+H, L, S", "hide one, all; lock; solo class"],
    ["Q W I", "occluded, truncated, track id"], ["+ − / Tab", "z-order / cycle objects"],
    ["arrows, +Shift, +Alt", "nudge 1, 10 px; resize"], ["Ctrl+C/V, Ctrl+Shift+V", "copy, paste; paste previous image"],
    ["A, X, Shift+A", "accept, reject pre-label; accept all ≥ threshold"], ["G, T, ?", "rules, tags, shortcuts"],
    ["Enter, Backspace, Esc", "close polygon, drop last point / absent keypoint, cancel"], ["Del", "delete"],
    ["F / D", "next / previous task"], ["Ctrl+Enter", "submit"], ["F6", "move focus between panels"],
  ];
  $("help").replaceChildren(el("h2", {}, "Keyboard shortcuts"), el("table", {}, el("tbody", {}, ...keys.map(([k, what]) => el("tr", {}, el("td", {}, el("kbd", {}, k)), el("td", {}, what))))),
    el("form", { method: "dialog" }, el("button", { class: "primary" }, "Close")));
}

/** Edits journaled in this browser that the server never acknowledged come back: on the
 * same revision as they are; on an older one as a conflict to merge (nothing is lost). */
function restoreJournal(serverRevision) {
  const kept = JSON.parse(localStorage.getItem(journalKey()) || "null");
  if (S.readOnly) { clearJournal(); return; }
  if (!kept || JSON.stringify(kept.objects.map(normalize)) === JSON.stringify(S.objects)) { clearJournal(); return; }
  if (kept.base === serverRevision) {
    setObjects(kept.objects);
    toast("Restored unsaved edits from this browser");
    changed();
    return;
  }
  S.baseline = new Map(kept.baseline || []);
  setObjects(kept.objects);
  S.revisionId = kept.base;
  S.dirty += 1;
  S.conflict = { detail: `edits kept in this browser were made on revision ${kept.base}; the task is now at revision ${serverRevision}` };
  showConflict(S.conflict);
  refreshPanels(); requestBase(); pill();
}

async function main() {
  const me = await topbar("Annotate", el("span", { id: "save-pill", class: "pill saved", role: "status" }, "Saved"));
  void me;
  try {
    S.task = await api(`/web/api/tasks/${TASK_ID}`);
  } catch (exc) {
    banner(`Task ${TASK_ID}: ${exc.message} `, el("a", { href: "/queue" }, "Back to my queue"));
    return;
  }
  document.querySelector("#topbar .crumbs").textContent = `${S.task.project} › ${S.task.batch ?? "–"} › task #${TASK_ID}`;
  document.title = `Task ${TASK_ID} · labelgate`;
  const [project, labels] = await Promise.all([api(`/api/projects/${encodeURIComponent(S.task.project)}`), api(`/api/tasks/${TASK_ID}`)]);
  S.spec = project;
  S.classes = project.classes.map((c, i) => ({ ...c, color: PALETTE[i % PALETTE.length] }));
  S.classIndex = new Map(S.classes.map((c) => [c.id, c]));
  S.attributes = project.attributes || [];
  S.classId = S.classes[0]?.id ?? 0;
  S.width = S.task.width; S.height = S.task.height;
  S.queue = JSON.parse(sessionStorage.getItem("labelgate.queue") || "[]");
  setObjects(labels.objects);
  S.revisionId = labels.revision_id;
  S.baseline = new Map(serialize().map((o) => [o.id, JSON.stringify(o)]));
  S.readOnly = S.task.status === "submitted";
  if (S.readOnly) banner("This task is submitted: you can look, not edit.");
  buildChrome();
  setTool(S.readOnly ? "select" : "box");
  setClass(S.classId);
  restoreJournal(labels.revision_id);
  new ResizeObserver(() => { resize(); }).observe(stage);
  resize();
  fit();
  showTab("objects");
  const image = new Image();
  image.decoding = "async";
  image.onload = async () => {
    try { S.image = await createImageBitmap(image); } catch { S.image = image; }
    requestBase();
  };
  image.onerror = () => { S.image = null; $("cursor-px").textContent = "no image file: neutral canvas"; };
  image.src = S.task.image_url;
  window.addEventListener("pagehide", () => {
    sessionStorage.setItem("labelgate.previous", JSON.stringify({ task: TASK_ID, objects: serialize().filter((o) => o.kind !== "tag") }));
  });
  // the journal keeps unsaved edits; leaving only tries one last save
  window.addEventListener("beforeunload", () => { if (S.dirty !== S.saved) save(); });
  document.body.dataset.ready = "true";
  overlay.focus();
}

main();
