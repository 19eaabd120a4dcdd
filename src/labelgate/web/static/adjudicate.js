// The adjudication page: one dispute of a batch, annotator A's version (solid orange) beside
// annotator B's (dashed blue) with their IoU against the class tier; take A or B with a
// required reason. The versions, IoU and tier come from GET /api/adjudications/{id} (the
// workflow computes them); the decision goes to POST /api/adjudications/{id}.
// Keys: 1 / 2 take A / B, Enter confirms, O overlay / side by side, Z dispute / whole
// image, J / K next / previous dispute.
import { api, el, fmt, PALETTE, toast, topbar } from "./common.js";
import { ActiveTime } from "./worktime.js";

const $ = (id) => document.getElementById(id);
const COLORS = { a: "#E69F00", b: "#56B4E9" };
const S = { id: Number(location.pathname.split("/").pop()), c: null, list: [], choice: null, mode: "side", whole: false, image: null, classes: new Map(), decided: [], activeTime: new ActiveTime() };
window.__adjudicate = S;

const className = (id) => S.classes.get(id)?.name ?? `class ${id}`;
const editing = (t) => t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;

function causeText(c) {
  if (c.versions.a.length && c.versions.b.length) return "A and B drew this object differently: their boxes miss the class tier.";
  const who = c.versions.a.length ? "A" : "B";
  return `Only ${who} drew this object; ${who === "A" ? "B" : "A"} drew nothing here.`;
}

function renderList() {
  $("disputes").replaceChildren(...S.list.map((d) => el("tr", {
    class: d.id === S.id ? "selected" : "", tabindex: 0, "aria-selected": String(d.id === S.id), "data-id": d.id,
    onclick: () => load(d.id), onkeydown: (e) => { if (e.key === "Enter") { e.stopPropagation(); load(d.id); } },
  }, el("td", {}, `#${d.id}`), el("td", {}, d.image_id), el("td", {}, className(d.payload?.class_id)))));
  if (!S.list.length) $("disputes").replaceChildren(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "No open disputes left in this batch.")));
}

function choose(which) {
  if (S.c?.status !== "open") return;
  S.choice = which;
  $("live").textContent = `Version ${which.toUpperCase()} chosen`;
  for (const k of ["a", "b"]) $(`take-${k}`)?.setAttribute("aria-pressed", String(k === which));
  $("decision-error").textContent = "";
}

function renderDetail() {
  const c = S.c;
  const a = c.versions.a; const b = c.versions.b;
  const klass = (a[0] || b[0])?.class_id;
  const iou = c.iou === null || c.iou === undefined
    ? el("span", { class: "below" }, "no IoU: one version is empty")
    : el("span", { class: c.tier !== null && c.iou < c.tier ? "below" : "" }, `${fmt(c.iou, 2)} / tier ${fmt(c.tier, 2)}`);
  const parts = [
    el("h2", {}, `Dispute #${c.id}`),
    el("p", {}, `Batch ${c.batch} · image ${c.image_id} · `, el("span", { class: "swatch", style: `--c:${S.classes.get(klass)?.color ?? "#999"}` }), ` ${className(klass)}`),
    el("p", {}, causeText(c)),
    el("p", { class: "iou", id: "iou" }, "IoU A–B: ", iou),
    el("table", { "aria-label": "Versions" },
      el("thead", {}, el("tr", {}, el("th", {}, "Version"), el("th", {}, "Class"), el("th", {}, "Box (x1, y1, x2, y2)"))),
      el("tbody", {}, ...["a", "b"].map((k) => el("tr", {},
        el("td", {}, el("span", { class: `legend legend-${k}` }), ` ${k.toUpperCase()}`),
        el("td", {}, c.versions[k].length ? c.versions[k].map((v) => className(v.class_id)).join(", ") : "–"),
        el("td", {}, c.versions[k].length ? c.versions[k].map((v) => v.bbox.map((x) => fmt(x, 0)).join(", ")).join("; ") : "drew nothing"))))),
    el("p", { class: "muted" }, "Names are hidden. 1 / 2: take A / B · Enter: confirm · O: overlay or side by side · Z: dispute or whole image · J / K: next / previous dispute."),
  ];
  if (c.status !== "open") {
    const d = c.decision || {};
    parts.push(el("p", { class: "banner ok", id: "decided" }, `Decided: ${d.choice ? `took ${d.choice.toUpperCase()}` : d.keep ? "kept" : "dropped"}`,
      d.reason_code ? ` · ${d.reason_code}` : "", d.reason ? ` · “${d.reason}”` : ""));
  } else {
    const codes = el("select", { id: "reason-code", onchange: clearError }, el("option", { value: "" }, "— reason code —"),
      ...(c.reason_codes || []).map((r) => el("option", { value: r }, r.replaceAll("_", " "))));
    parts.push(
      el("div", { class: "choices", role: "group", "aria-label": "Take a version" },
        el("button", { type: "button", id: "take-a", "aria-pressed": "false", onclick: () => choose("a") }, "Take A (1)"),
        el("button", { type: "button", id: "take-b", "aria-pressed": "false", onclick: () => choose("b") }, "Take B (2)")),
      el("div", { class: "stacked" }, el("label", { for: "reason-code" }, "Reason code"), codes),
      el("div", { class: "stacked" }, el("label", { for: "reason" }, "Reason (required: text, a code, or both)"),
        el("input", { id: "reason", type: "text", maxlength: 2000, placeholder: "why this version", required: true, autocomplete: "off", oninput: clearError })),
      el("p", { id: "decision-error", class: "error", role: "alert" }),
      el("p", {}, el("button", { type: "button", id: "confirm", class: "primary", onclick: confirm }, "Confirm (Enter)")),
    );
  }
  if (S.decided.length) {
    parts.push(el("h3", {}, "Decided here"), el("ul", { id: "decided-list" }, ...S.decided.map((d) => el("li", {}, d))));
  }
  $("detail").replaceChildren(...parts);
  if (S.choice) choose(S.choice);
}

function clearError() { const e = $("decision-error"); if (e) e.textContent = ""; }

async function confirm() {
  const error = $("decision-error");
  if (!S.choice) { error.textContent = "Choose A or B first (1 / 2)."; return; }
  const reason = $("reason").value.trim();
  const code = $("reason-code").value;
  if (!reason && !code) { error.textContent = "A reason is required: type one or pick a reason code."; $("reason").focus(); return; }
  // the active time since the previous decision (or the page opened) goes with this one
  const body = { choice: S.choice, work_seconds: S.activeTime.begin() };
  if (reason) body.reason = reason;
  if (code) body.reason_code = code;
  $("confirm").disabled = true;
  try {
    const out = await api(`/api/adjudications/${S.id}`, { method: "POST", body });
    S.activeTime.acknowledge();
    const text = `#${out.resolved.join(", #")}: took ${S.choice.toUpperCase()}${code ? ` (${code})` : ""}${reason ? ` “${reason}”` : ""}`;
    S.decided.push(text);
    toast(`Dispute ${text}`);
    $("live").textContent = `Decided ${text}`;
    await refreshList();
    const next = S.list[0];
    if (next) await load(next.id);
    else { await load(S.id); $("banner").replaceChildren(el("p", { class: "banner ok" }, "All disputes of this batch are decided. ", el("a", { href: "/review" }, "Back to review"))); }
  } catch (exc) {
    error.textContent = `Refused: ${exc.message}`;
    $("confirm").disabled = false;
  }
}

// --- drawing ------------------------------------------------------------------------------

function region() {
  const c = S.c;
  if (S.whole) return [0, 0, c.width, c.height];
  const boxes = [...c.versions.a, ...c.versions.b].map((v) => v.bbox);
  if (!boxes.length) return [0, 0, c.width, c.height];
  let [x1, y1, x2, y2] = [Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1])), Math.max(...boxes.map((b) => b[2])), Math.max(...boxes.map((b) => b[3]))];
  const pad = Math.max(x2 - x1, y2 - y1, 40) * 0.6;
  // padded, kept to the image, but never cutting a version that runs past its edge
  return [Math.max(Math.min(0, x1), x1 - pad), Math.max(Math.min(0, y1), y1 - pad), Math.min(Math.max(c.width, x2), x2 + pad), Math.min(Math.max(c.height, y2), y2 + pad)];
}

function draw() {
  if (!S.c) return;
  const c = S.c;
  const rect = $("stage").getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const side = S.mode === "side";
  const width = side ? rect.width / 2 : rect.width;
  const canvases = [$("view-a"), $("view-b")];
  canvases[1].hidden = !side;
  canvases[1].style.left = `${width}px`;
  const [rx1, ry1, rx2, ry2] = region();
  const scale = Math.min(width / (rx2 - rx1), rect.height / (ry2 - ry1)) * 0.94;
  const tx = (width - (rx2 - rx1) * scale) / 2 - rx1 * scale;
  const ty = (rect.height - (ry2 - ry1) * scale) / 2 - ry1 * scale;
  const sets = side ? [["a"], ["b"]] : [["a", "b"]];
  sets.forEach((which, n) => {
    const canvas = canvases[n];
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(rect.height * dpr);
    canvas.style.width = `${width}px`; canvas.style.height = `${rect.height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#23262b"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * tx, dpr * ty);
    if (S.image) ctx.drawImage(S.image, 0, 0, c.width, c.height);
    else { ctx.fillStyle = "#4a4f57"; ctx.fillRect(0, 0, c.width, c.height); }
    // the item's agreed objects, for orientation
    ctx.strokeStyle = "rgba(220, 220, 220, 0.55)"; ctx.lineWidth = 1 / scale; ctx.setLineDash([]);
    for (const o of c.context) { ctx.beginPath(); ctx.rect(o.bbox[0], o.bbox[1], o.bbox[2] - o.bbox[0], o.bbox[3] - o.bbox[1]); ctx.stroke(); }
    if (side) {  // the other version, faint, for where it lies
      const other = which[0] === "a" ? "b" : "a";
      ctx.strokeStyle = COLORS[other]; ctx.globalAlpha = 0.45; ctx.lineWidth = 1.5 / scale; ctx.setLineDash([3 / scale, 4 / scale]);
      for (const v of c.versions[other]) { ctx.beginPath(); ctx.rect(v.bbox[0], v.bbox[1], v.bbox[2] - v.bbox[0], v.bbox[3] - v.bbox[1]); ctx.stroke(); }
      ctx.globalAlpha = 1;
    }
    for (const key of which) {
      ctx.strokeStyle = COLORS[key];
      ctx.lineWidth = ((S.choice === key ? 4 : 2.5) / scale);
      ctx.setLineDash(key === "b" ? [9 / scale, 6 / scale] : []);
      for (const v of c.versions[key]) { ctx.beginPath(); ctx.rect(v.bbox[0], v.bbox[1], v.bbox[2] - v.bbox[0], v.bbox[3] - v.bbox[1]); ctx.stroke(); }
    }
    ctx.setLineDash([]);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = "14px system-ui"; ctx.textBaseline = "top";
    const captions = side ? [[n ? "B · dashed blue" : "A · solid orange", COLORS[n ? "b" : "a"]]] : [["A · solid orange", COLORS.a], ["B · dashed blue", COLORS.b]];
    captions.forEach(([text, color], i) => {
      ctx.fillStyle = "rgba(0, 0, 0, 0.7)"; ctx.fillRect(6, 6 + i * 22, ctx.measureText(text).width + 12, 20);
      ctx.fillStyle = color; ctx.fillText(text, 12, 9 + i * 22);
    });
    const empty = which.filter((key) => !c.versions[key].length);
    empty.forEach((key, i) => {
      const text = `${key.toUpperCase()} drew nothing here${side ? " (faint: the other version)" : ""}`;
      const y = 6 + (captions.length + i) * 22;
      ctx.fillStyle = "rgba(0, 0, 0, 0.7)"; ctx.fillRect(6, y, ctx.measureText(text).width + 12, 20);
      ctx.fillStyle = "#ffffff"; ctx.fillText(text, 12, y + 3);
    });
    if (S.choice && which.length === 1 && which[0] === S.choice) {
      ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 3; ctx.strokeRect(1.5, 1.5, width - 3, rect.height - 3);
    }
  });
}

// --- loading --------------------------------------------------------------------------------

async function refreshList() {
  const page = await api(`/api/projects/${encodeURIComponent(S.c.project)}/batches/${S.c.batch_id}/adjudications?limit=1000`);
  S.list = page.items;
  renderList();
}

async function load(id) {
  try {
    S.c = await api(`/api/adjudications/${id}`);
  } catch (exc) {
    $("banner").replaceChildren(el("p", { class: "banner" }, `Dispute ${id}: ${exc.message} `, el("a", { href: "/review" }, "Back")));
    return;
  }
  if (id !== S.id) history.replaceState(null, "", `/adjudicate/${id}`);
  S.id = id; S.choice = null;
  document.querySelector("#topbar .crumbs").textContent = `${S.c.project} › ${S.c.batch} › dispute #${id}`;
  renderList(); renderDetail(); draw();
  if (S.c.image_url && S.imageUrl !== S.c.image_url) {
    S.image = null; S.imageUrl = S.c.image_url;
    const image = new Image();
    image.onload = () => { if (S.imageUrl === S.c.image_url) { S.image = image; draw(); } };
    image.src = S.c.image_url;
  }
}

document.addEventListener("keydown", (event) => {
  if (!S.c) return;
  const button = event.target instanceof HTMLButtonElement && !event.target.id.startsWith("take-");
  if (event.key === "Enter" && (event.target === $("reason") || !editing(event.target)) && !button) {
    if (S.c.status === "open") { event.preventDefault(); confirm(); }
    return;
  }
  if (editing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
  const at = S.list.findIndex((d) => d.id === S.id);
  switch (event.key) {
    case "1": choose("a"); draw(); break;
    case "2": choose("b"); draw(); break;
    case "o": case "O": S.mode = S.mode === "side" ? "overlay" : "side"; draw(); break;
    case "z": case "Z": S.whole = !S.whole; draw(); break;
    case "j": case "J": if (S.list[at + 1]) load(S.list[at + 1].id); break;
    case "k": case "K": if (at > 0) load(S.list[at - 1].id); break;
    default:
  }
});

async function main() {
  await topbar(`Adjudication › dispute #${S.id}`);
  await load(S.id);
  if (!S.c) return;
  const project = await api(`/api/projects/${encodeURIComponent(S.c.project)}`);
  project.classes.forEach((k, i) => S.classes.set(k.id, { ...k, color: PALETTE[i % PALETTE.length] }));
  await refreshList();
  renderDetail();
  new ResizeObserver(draw).observe($("stage"));
  document.body.dataset.ready = "true";
}

main();
