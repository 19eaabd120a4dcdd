// QA inspection: the inspector's sampled items of one batch, one after another, each image
// with its delivered labels (drawn by label_canvas.js, as on the review page). Flag defects
// per object with the review keys, click the image to mark an object nobody drew, or call
// the item clean; the result goes to POST /api/qa/{task} with the active work time
// (worktime.js). /qa lists the batches in which the caller holds QA tasks.
import { api, el, PALETTE, toast, topbar } from "./common.js";
import { fitView, hitTest, paintBase, toImage, trace } from "./label_canvas.js";
import { ActiveTime } from "./worktime.js";

const parts = location.pathname.split("/");
const PROJECT = decodeURIComponent(parts[2] || "");
const BATCH = Number(parts[3] || 0);
/** UX.md §5: the review page's defect keys; 1 places a missing-object marker. */
const KEYS = { 1: "missing", 2: "extra", 3: "wrong_class", 4: "loose_geometry", 5: "attribute_error", 6: "duplicate", 7: "invalid_geometry", 8: "keypoint_error" };
const NAMES = { missing: "Missing", extra: "Extra", wrong_class: "Wrong class", loose_geometry: "Loose", tight_geometry: "Tight", attribute_error: "Attribute", duplicate: "Duplicate", invalid_geometry: "Invalid geometry", keypoint_error: "Keypoint" };
const PAGE = 200;
const $ = (id) => document.getElementById(id);
const Q = {
  batch: null, items: [], index: 0, objects: [], image: null, view: null, selected: null, arming: false,
  drafts: new Map(), classes: new Map(), activeTime: new ActiveTime(), sending: false,
};
window.__qa = Q;

const item = () => Q.items[Q.index];
const className = (id) => Q.classes.get(id)?.name ?? `class ${id}`;
const colorOf = (id) => Q.classes.get(id)?.color ?? "#999";
/** The flags of the current item: per object key a list of defect types, and missing markers. */
function draft() {
  const t = item().task_id;
  if (!Q.drafts.has(t)) Q.drafts.set(t, { flags: new Map(), missing: [] });
  return Q.drafts.get(t);
}
const flagCount = (d) => [...d.flags.values()].reduce((n, f) => n + f.length, 0) + d.missing.length;

// --- flags ----------------------------------------------------------------------------------

function toggle(type) {
  const it = item();
  if (it.inspected) { toast("This item is inspected already"); return; }
  if (type === "missing") { arm(!Q.arming); return; }
  if (Q.selected === null) { toast("Select an object first: click it, or ↓ / ↑"); return; }
  const d = draft();
  const flags = d.flags.get(Q.selected) ?? [];
  let next;
  if (type === "loose_geometry") {  // 4 cycles loose -> tight -> none
    if (flags.includes("loose_geometry")) next = [...flags.filter((f) => f !== "loose_geometry"), "tight_geometry"];
    else if (flags.includes("tight_geometry")) next = flags.filter((f) => f !== "tight_geometry");
    else next = [...flags, "loose_geometry"];
  } else next = flags.includes(type) ? flags.filter((f) => f !== type) : [...flags, type];
  if (next.length) d.flags.set(Q.selected, next); else d.flags.delete(Q.selected);
  $("live").textContent = `#${Q.selected}: ${next.map((f) => NAMES[f]).join(", ") || "no defect"}`;
  render();
}

function arm(on) {
  Q.arming = on && !item().inspected;
  $("stage").classList.toggle("arming", Q.arming);
  if (Q.arming) $("live").textContent = "Click where the missing object is";
  renderDetail();
}

function placeMissing(x, y) {
  const it = item();
  const [ix, iy] = [Math.min(Math.max(x, 0), it.width), Math.min(Math.max(y, 0), it.height)];
  draft().missing.push([Math.round(ix), Math.round(iy)]);
  arm(false);
  $("live").textContent = `Missing object marked at ${Math.round(ix)}, ${Math.round(iy)}`;
  render();
}

function removeMissing(i) { draft().missing.splice(i, 1); render(); }

function select(key) {
  Q.selected = key;
  render();
}

function step(direction) {
  const i = Q.objects.findIndex((o) => o.id === Q.selected);
  const next = Q.objects[Math.max(0, Math.min(Q.objects.length - 1, i < 0 ? 0 : i + direction))];
  if (next) select(next.id);
}

// --- sending --------------------------------------------------------------------------------

function defectsOf(d) {
  const out = [];
  for (const o of Q.objects) for (const type of d.flags.get(o.id) ?? []) out.push({ object_id: o.id, defect_type: type });
  for (const _ of d.missing) out.push({ object_id: -1, defect_type: "missing" });
  return out;
}

async function send(clean) {
  const it = item();
  const error = $("qa-error");
  if (it.inspected || Q.sending) return;
  const d = draft();
  if (clean && flagCount(d)) {
    error.textContent = `${flagCount(d)} defect(s) flagged: remove them to call the item clean, or Submit.`;
    return;
  }
  const defects = clean ? [] : defectsOf(d);
  Q.sending = true;
  // the active time since the last acknowledged inspection goes with this one
  const body = { defects, work_seconds: Q.activeTime.begin() };
  try {
    await api(`/api/qa/${it.task_id}`, { method: "POST", body });
    Q.activeTime.acknowledge();
    it.inspected = true;
    it.defects = defects.map((x) => ({ type: x.defect_type, object_key: x.object_id === -1 ? null : x.object_id }));
    const text = defects.length ? `${defects.length} defect(s) recorded` : "clean";
    toast(`Item ${Q.index + 1}: ${text}`);
    $("live").textContent = `Item ${Q.index + 1} of ${Q.items.length}: ${text}`;
    const next = Q.items.findIndex((x, i) => i > Q.index && !x.inspected);
    const wrap = next < 0 ? Q.items.findIndex((x) => !x.inspected) : next;
    if (wrap >= 0) await show(wrap);
    else {
      render();
      $("banner").replaceChildren(el("p", { class: "banner ok" }, `All ${Q.items.length} sampled items of ${Q.batch} are inspected. `, el("a", { href: "/qa" }, "Back to QA")));
    }
  } catch (exc) {
    error.textContent = `Refused: ${exc.message}`;
  } finally {
    Q.sending = false;
  }
}

// --- rendering ------------------------------------------------------------------------------

function flagsText(types) {
  return types.length ? el("span", { class: "flag" }, types.map((f) => NAMES[f] ?? f).join(", ")) : "–";
}

function recordedFlags(it) {
  // an inspected item shows what was recorded (object key or a missing object)
  const flags = new Map(); let missing = 0;
  for (const d of it.defects) {
    if (d.object_key === null) missing += 1;
    else flags.set(d.object_key, [...(flags.get(d.object_key) ?? []), d.type]);
  }
  return { flags, missing };
}

function renderList() {
  const it = item();
  const rec = it.inspected ? recordedFlags(it) : null;
  const d = draft();
  const rows = Q.objects.filter((o) => o.kind !== "tag").map((o) => el("tr", {
    class: o.id === Q.selected ? "selected" : "", "data-key": o.id, tabindex: 0, "aria-selected": String(o.id === Q.selected),
    onclick: () => select(o.id),
  }, el("td", {}, `#${o.id}`), el("td", {}, el("span", { class: "swatch", style: `--c: ${colorOf(o.class_id)}` }), " ", className(o.class_id)),
  el("td", {}, flagsText((rec ? rec.flags : d.flags).get(o.id) ?? []))));
  const missing = rec
    ? Array.from({ length: rec.missing }, (_, i) => el("tr", { class: "missing-row" }, el("td", {}, `missing ${i + 1}`), el("td", { colspan: 2 }, flagsText(["missing"]))))
    : d.missing.map(([x, y], i) => el("tr", { class: "missing-row" }, el("td", {}, `missing ${i + 1}`), el("td", {}, `at ${x}, ${y}`),
      el("td", {}, el("button", { type: "button", "aria-label": `Remove missing marker ${i + 1}`, onclick: (e) => { e.stopPropagation(); removeMissing(i); } }, "Remove"))));
  $("objects").replaceChildren(...missing, ...rows);  // markers first: they are few
  $("objects").querySelector("tr.selected")?.scrollIntoView({ block: "nearest" });
}

function renderDetail() {
  const it = item();
  const d = draft();
  const inspected = Q.items.filter((x) => x.inspected).length;
  const selected = Q.objects.find((o) => o.id === Q.selected);
  const flags = selected ? d.flags.get(selected.id) ?? [] : [];
  const keys = Object.entries(KEYS).map(([key, type]) => {
    const on = type === "missing" ? Q.arming : type === "loose_geometry" ? flags.includes("loose_geometry") || flags.includes("tight_geometry") : flags.includes(type);
    const label = type === "loose_geometry" ? (flags.includes("tight_geometry") ? "Tight" : "Loose / tight") : NAMES[type];
    return el("button", { type: "button", "aria-pressed": String(on), disabled: it.inspected, "data-defect": type, onclick: () => toggle(type) }, `${key} ${label}`);
  });
  $("detail").replaceChildren(
    el("p", { class: "qa-progress", id: "qa-progress" }, `${Q.index + 1}/${Q.items.length}`),
    el("p", { class: "muted" }, `${inspected} of ${Q.items.length} inspected in ${Q.batch}, cycle ${Q.cycle}`),
    el("h2", {}, `Image ${it.image_id}`),
    el("p", { class: "muted" }, `${it.file_name} · ${it.width}×${it.height} · task #${it.task_id}`),
    it.inspected
      ? el("p", { id: "qa-state", class: "banner ok" }, `Inspected: ${it.defects.length ? `${it.defects.length} defect(s)` : "clean"}`)
      : el("p", { id: "qa-state" }, selected ? `Selected #${selected.id} · ${className(selected.class_id)}` : "Click an object to flag it; 1 then a click marks a missing one."),
    el("div", { class: "defect-keys", role: "group", "aria-label": "Defects (keys 1–8)" }, ...keys),
    el("p", { id: "qa-flags" }, `${flagCount(d)} defect(s) flagged`),
    el("div", { class: "qa-actions" },
      el("button", { type: "button", id: "qa-clean", disabled: it.inspected, onclick: () => send(true) }, "Clean (C)"),
      el("button", { type: "button", id: "qa-submit", class: "primary", disabled: it.inspected, onclick: () => send(false) }, "Submit (Enter)")),
    el("p", { id: "qa-error", class: "error", role: "alert" }),
    el("div", { class: "qa-actions" },
      el("button", { type: "button", disabled: Q.index === 0, onclick: () => show(Q.index - 1) }, "‹ Previous (K)"),
      el("button", { type: "button", disabled: Q.index >= Q.items.length - 1, onclick: () => show(Q.index + 1) }, "Next (J) ›")),
    el("p", { class: "muted" }, "Keys: 1 missing (then click the image), 2 extra, 3 wrong class, 4 loose → tight, 5 attribute, 6 duplicate, 7 invalid geometry, 8 keypoint (again: off); ↓ ↑ select objects; C clean; Enter submit; J / K next / previous item; wheel zooms, drag pans, Z fits."),
  );
}

function draw() {
  const it = item();
  if (!it) return;
  const rect = $("stage").getBoundingClientRect();
  if (!Q.view || Q.view.width !== rect.width || Q.view.height !== rect.height) Q.view = fitView(rect.width, rect.height, it.width, it.height);
  const ctx = paintBase($("view"), Q.view, Q.image, it.width, it.height);
  const { scale } = Q.view;
  const rec = it.inspected ? recordedFlags(it) : null;
  const flags = rec ? rec.flags : draft().flags;
  for (const o of Q.objects) {
    if (o.kind === "tag") continue;
    const current = o.id === Q.selected;
    const flagged = flags.has(o.id);
    ctx.strokeStyle = current ? "#ffffff" : flagged ? "#ff3b30" : colorOf(o.class_id);
    ctx.lineWidth = (current || flagged ? 3 : 1.5) / scale;
    ctx.setLineDash(flagged && !current ? [6 / scale, 4 / scale] : []);
    ctx.beginPath(); trace(ctx, o); ctx.stroke();
  }
  ctx.setLineDash([]);
  const dpr = window.devicePixelRatio || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.font = "13px system-ui"; ctx.textBaseline = "top";
  for (const o of Q.objects) {  // the flags' names beside their objects
    const types = flags.get(o.id);
    if (!types || !o.bbox) continue;
    const text = types.map((f) => NAMES[f]).join(", ");
    const [x, y] = [o.bbox[0] * scale + Q.view.tx, o.bbox[1] * scale + Q.view.ty - 18];
    ctx.fillStyle = "rgba(0, 0, 0, 0.75)"; ctx.fillRect(x, y, ctx.measureText(text).width + 8, 17);
    ctx.fillStyle = "#ff6b60"; ctx.fillText(text, x + 4, y + 2);
  }
  if (!rec) {
    draft().missing.forEach(([mx, my], i) => {  // missing markers: a red ring and cross
      const [x, y] = [mx * scale + Q.view.tx, my * scale + Q.view.ty];
      ctx.strokeStyle = "#ff3b30"; ctx.lineWidth = 2.5;
      ctx.beginPath(); ctx.arc(x, y, 12, 0, 2 * Math.PI); ctx.moveTo(x - 18, y); ctx.lineTo(x + 18, y); ctx.moveTo(x, y - 18); ctx.lineTo(x, y + 18); ctx.stroke();
      const text = `missing ${i + 1}`;
      ctx.fillStyle = "rgba(0, 0, 0, 0.75)"; ctx.fillRect(x + 14, y + 10, ctx.measureText(text).width + 8, 17);
      ctx.fillStyle = "#ff6b60"; ctx.fillText(text, x + 18, y + 12);
    });
  }
}

function render() { renderList(); renderDetail(); draw(); }

async function show(index) {
  Q.index = Math.max(0, Math.min(index, Q.items.length - 1));
  const it = item();
  const shown = (Q.shown = (Q.shown ?? 0) + 1);  // a later show() wins over a slower earlier one
  delete document.body.dataset.item;
  Q.selected = null; Q.view = null; Q.image = null; Q.arming = false;
  $("stage").classList.remove("arming");
  $("qa-progress")?.replaceChildren(`${Q.index + 1}/${Q.items.length}`);
  let objects;
  try {
    objects = (await api(`/api/qa/${it.task_id}`)).objects;
  } catch (exc) {
    if (shown !== Q.shown) return;
    Q.objects = [];
    $("banner").replaceChildren(el("p", { class: "banner" }, `Item ${Q.index + 1}: ${exc.message} `, el("button", { type: "button", onclick: () => show(Q.index) }, "Retry")));
    return;
  }
  if (shown !== Q.shown) return;
  Q.objects = objects;
  $("banner").replaceChildren();
  render();
  const image = new Image();
  image.onload = () => { if (item() === it) { Q.image = image; draw(); } };
  image.src = it.image_url;
  document.body.dataset.item = String(it.task_id);
}

// --- input ----------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (!Q.items.length || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
  const key = event.key;
  if (KEYS[key]) { toggle(KEYS[key]); event.preventDefault(); return; }
  switch (key) {
    case "j": case "J": show(Q.index + 1); break;
    case "k": case "K": show(Q.index - 1); break;
    case "c": case "C": send(true); break;
    case "Enter": if (!(event.target instanceof HTMLButtonElement)) { send(false); event.preventDefault(); } break;
    case "ArrowDown": step(1); event.preventDefault(); break;
    case "ArrowUp": step(-1); event.preventDefault(); break;
    case "Escape": arm(false); select(null); break;
    case "z": case "Z": Q.view = null; draw(); break;
    default:
  }
});

function stagePoint(event) {
  const rect = $("stage").getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

function wire() {
  const stage = $("stage");
  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [sx, sy] = stagePoint(event);
    const v = Q.view;
    const scale = Math.min(Math.max(v.scale * Math.exp(-event.deltaY * 0.0015), 0.02), 40);
    const [ix, iy] = toImage(v, sx, sy);
    Q.view = { ...v, scale, tx: sx - ix * scale, ty: sy - iy * scale };
    requestAnimationFrame(draw);
  }, { passive: false });
  stage.addEventListener("pointerdown", (event) => {
    const start = [event.clientX, event.clientY, Q.view.tx, Q.view.ty];
    let moved = false;
    const move = (e) => {
      if (!moved && Math.hypot(e.clientX - start[0], e.clientY - start[1]) < 4) return;
      moved = true;
      Q.view = { ...Q.view, tx: start[2] + e.clientX - start[0], ty: start[3] + e.clientY - start[1] };
      requestAnimationFrame(draw);
    };
    const up = (e) => {
      window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up);
      if (moved) return;
      const [x, y] = toImage(Q.view, ...stagePoint(e));
      if (Q.arming) { placeMissing(x, y); return; }
      const hit = hitTest(Q.objects.filter((o) => o.kind !== "tag"), x, y);
      select(hit ? hit.id : null);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  });
  new ResizeObserver(() => { Q.view = null; draw(); }).observe(stage);
}

// --- loading --------------------------------------------------------------------------------

async function home() {
  await topbar("QA inspection");
  const box = $("home");
  box.hidden = false;
  try {
    const rows = await api("/api/qa");
    box.replaceChildren(el("h1", {}, "QA inspection"),
      rows.length
        ? el("table", { "aria-label": "QA samples" },
          el("thead", {}, el("tr", {}, ...["project", "batch", "cycle", "open / total", ""].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, ...rows.map((r) => el("tr", {}, el("td", {}, r.project), el("td", {}, r.batch), el("td", { class: "num" }, r.cycle),
            el("td", { class: "num" }, `${r.open} / ${r.total}`),
            el("td", {}, el("a", { href: `/qa/${encodeURIComponent(r.project)}/${r.batch_id}` }, r.open ? `Inspect ${r.batch} (${r.open} open)` : `Look at ${r.batch}`))))))
        : el("p", {}, "No QA tasks."));
  } catch (exc) {
    box.replaceChildren(el("p", { class: "error" }, exc.message, " ", el("button", { type: "button", onclick: () => location.reload() }, "Retry")));
  }
  document.body.dataset.ready = "true";
}

async function main() {
  if (!PROJECT || !BATCH) { await home(); return; }
  await topbar(`${PROJECT} › QA`);
  let first;
  try {
    first = await api(`/api/projects/${encodeURIComponent(PROJECT)}/batches/${BATCH}/qa-tasks?limit=${PAGE}`);
    Q.items = first.items;
    while (Q.items.length < first.total) {
      const page = await api(`/api/projects/${encodeURIComponent(PROJECT)}/batches/${BATCH}/qa-tasks?limit=${PAGE}&offset=${Q.items.length}`);
      if (!page.items.length) break;
      Q.items.push(...page.items);
    }
    const project = await api(`/api/projects/${encodeURIComponent(PROJECT)}`);
    project.classes.forEach((c, i) => Q.classes.set(c.id, { ...c, color: PALETTE[i % PALETTE.length] }));
  } catch (exc) {
    $("banner").replaceChildren(el("p", { class: "banner" }, `QA of batch ${BATCH}: ${exc.message} `, el("a", { href: "/qa" }, "Back")));
    document.body.dataset.ready = "true";
    return;
  }
  Q.batch = first.batch; Q.cycle = first.cycle;
  document.querySelector("#topbar .crumbs").textContent = `${PROJECT} › ${Q.batch} › QA inspection`;
  if (!Q.items.length) {
    $("banner").replaceChildren(el("p", { class: "banner ok" }, `No QA tasks for you in ${Q.batch} (cycle ${Q.cycle}). `, el("a", { href: "/qa" }, "Back")));
    document.body.dataset.ready = "true";
    return;
  }
  $("content").hidden = false;
  wire();
  const open = Q.items.findIndex((x) => !x.inspected);
  await show(open < 0 ? 0 : open);
  document.body.dataset.ready = "true";
}

main();
