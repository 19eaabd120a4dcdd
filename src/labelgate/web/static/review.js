// The review page: a submitted task (A) beside its blind twin (B), pairs by IoU vs tier,
// per-object verdicts with a defect type. Pairs, IoU and the consensus come from the server
// (/web/api/review/{task}, computed by the core); this page only draws and collects verdicts.
import { api, el, fmt, PALETTE, toast, topbar } from "./common.js";
import { ActiveTime } from "./worktime.js";

const TASK_ID = Number(location.pathname.split("/").pop());
const DEFECTS = ["missing", "extra", "wrong_class", "loose_geometry", "attribute_error", "duplicate", "invalid_geometry", "keypoint_error", "tight_geometry"];
const DEFECT_KEYS = { 1: "missing", 2: "extra", 3: "wrong_class", 4: "loose_geometry", 5: "attribute_error", 6: "duplicate", 7: "invalid_geometry", 8: "keypoint_error" };
const $ = (id) => document.getElementById(id);
const R = { ctx: null, a: [], b: [], rows: [], selected: 0, verdicts: new Map(), mode: "overlay", only: null, image: null, classes: new Map(), activeTime: new ActiveTime() };
window.__review = R;

const className = (id) => R.classes.get(id)?.name ?? `class ${id}`;
const colorOf = (id) => R.classes.get(id)?.color ?? "#999";

function buildRows() {
  const c = R.ctx;
  const byA = new Map(R.a.map((o) => [o.id, o]));
  const byB = new Map(R.b.map((o) => [o.id, o]));
  R.rows = [
    ...c.pairs.map((p) => ({ type: "pair", a: byA.get(p.a), b: byB.get(p.b), pair: p })),
    ...c.unmatched_a.map((id) => ({ type: "only A", a: byA.get(id), b: null })),
    ...c.unmatched_b.map((id) => ({ type: "only B", a: null, b: byB.get(id) })),
  ].filter((r) => r.a || r.b);
}

const disagreement = (row) => row.type !== "pair" || row.pair.below_tier || row.pair.class_swap || row.pair.attribute_diff.length;

function verdictText(row) {
  const v = R.verdicts.get(rowKey(row));
  if (!v) return "–";
  return v.verdict === "accept" ? "✓ accept" : `✗ ${v.defect_type}`;
}
const rowKey = (row) => (row.a ? `a${row.a.id}` : `b${row.b.id}`);

function renderList() {
  $("pairs").replaceChildren(...R.rows.map((row, i) => {
    const obj = row.a || row.b;
    const iou = row.type === "pair" ? el("span", { class: row.pair.below_tier ? "below" : "" }, `${fmt(row.pair.iou, 2)} / tier ${fmt(row.pair.tier, 2)}`) : row.type;
    return el("tr", {
      class: i === R.selected ? "selected" : "", tabindex: 0, "data-row": i, "aria-selected": String(i === R.selected),
      onclick: () => select(i),
    }, el("td", {}, row.a ? `A#${row.a.id}` : "", row.a && row.b ? " · " : "", row.b ? `B#${row.b.id}` : ""),
    el("td", {}, className(obj.class_id), row.pair?.class_swap ? ` ≠ ${className(row.pair.class_id_b)}` : "",
      row.pair?.attribute_diff.length ? ` (attr: ${row.pair.attribute_diff.join(", ")})` : ""),
    el("td", { class: "num" }, iou), el("td", {}, verdictText(row)));
  }));
}

function select(i) {
  R.selected = Math.max(0, Math.min(i, R.rows.length - 1));
  renderList(); renderDetail(); draw();
  $("pairs").querySelector(`tr[data-row="${R.selected}"]`)?.scrollIntoView({ block: "nearest" });
}

function setVerdict(row, verdict, defect) {
  if (!row) return;
  if (!row.a && verdict === "accept") { R.verdicts.delete(rowKey(row)); }
  else R.verdicts.set(rowKey(row), { verdict, defect_type: defect ?? null });
  $("live").textContent = `${rowKey(row)}: ${verdict}${defect ? ` ${defect}` : ""}`;
  renderList(); renderDetail();
}

function renderDetail() {
  const row = R.rows[R.selected];
  const c = R.ctx;
  const parts = [
    el("h2", {}, `Task #${TASK_ID}`),
    el("p", {}, c.twin_task_id ? `Blind twin: task #${c.twin_task_id} (B, dashed)` : "Single-annotated item: A only"),
    c.consensus ? el("p", {}, `Consensus: ${c.consensus.merged} merged, ${c.consensus.disputed} disputed`) : null,
    el("p", { class: "muted" }, "Names are hidden. Wheel zooms, drag pans, Z fits (both halves in sync). O: overlay / side by side; [ ]: A or B only; J/K: next/previous disagreement; A: accept; Shift+A: accept all pairs ≥ tier with equal attributes; 1–8: defect."),
  ];
  if (row) {
    const obj = row.a || row.b;
    parts.push(el("h3", {}, `${row.a ? `A#${row.a.id}` : `B#${row.b.id} (missing in A)`} · ${className(obj.class_id)}`));
    if (row.pair) parts.push(el("p", {}, `IoU ${fmt(row.pair.iou, 3)} / tier ${fmt(row.pair.tier, 2)}`, row.pair.below_tier ? el("strong", { class: "below" }, " below tier") : ""));
    const defect = el("select", { id: "defect-type", "aria-label": "Defect type" },
      ...DEFECTS.map((d, i) => el("option", { value: d, selected: d === (row.a ? "loose_geometry" : "missing") }, `${i < 8 ? `${i + 1} ` : ""}${d}`)));
    parts.push(
      el("p", {}, el("button", { type: "button", id: "accept", onclick: () => setVerdict(row, "accept") }, "Accept (A)")),
      el("p", {}, el("label", { for: "defect-type" }, "Defect "), defect, " ",
        el("button", { type: "button", id: "reject", class: "danger", onclick: () => setVerdict(row, "reject", defect.value) }, "Reject")),
    );
  }
  parts.push(
    el("div", { class: "field" }, el("label", { for: "severity" }, "Severity"),
      el("select", { id: "severity" }, ...["minor", "major", "critical"].map((s) => el("option", { value: s }, s)))),
    el("div", { class: "field" }, el("label", { for: "comment" }, "Note"), el("input", { id: "comment", type: "text" })),
    el("p", {}, el("button", { type: "button", id: "send-review", class: "primary", onclick: send }, `Send review (${R.verdicts.size} verdicts)`)),
  );
  $("detail").replaceChildren(...parts);
}

async function send() {
  const decisions = [];
  for (const row of R.rows) {
    const v = R.verdicts.get(rowKey(row));
    if (!v) continue;
    if (row.a) decisions.push({ object_id: row.a.id, verdict: v.verdict, defect_type: v.verdict === "reject" ? v.defect_type : null });
    else if (v.verdict === "reject") decisions.push({ object_id: -1, verdict: "reject", defect_type: "missing" });
  }
  // the active time since the page opened (or a refused try) goes with the decision
  const body = { decisions, severity: $("severity").value, comment: $("comment").value || null, work_seconds: R.activeTime.begin() };
  if (!body.comment) delete body.comment;
  try {
    const result = await api(`/api/review/${TASK_ID}`, { method: "POST", body });
    R.activeTime.acknowledge();
    $("banner").replaceChildren(el("p", { class: "banner ok" }, `Review recorded: ${result.accepted} accepted, ${result.rejected} rejected. `, el("a", { href: "/review" }, "Back to the queue")));
    toast("Review recorded");
  } catch (exc) {
    $("banner").replaceChildren(el("p", { class: "banner" }, `Review refused: ${exc.message}`));
  }
}

// --- drawing ------------------------------------------------------------------------------

function trace(ctx, obj) {
  if (obj.kind === "box") { const b = obj.bbox; ctx.rect(b[0], b[1], b[2] - b[0], b[3] - b[1]); }
  else if (obj.kind === "polygon") for (const ring of obj.polygon) { ring.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.closePath(); }
  else if (obj.kind === "keypoints") for (const [x, y, v] of obj.keypoints) if (v > 0) { ctx.moveTo(x + 3, y); ctx.arc(x, y, 3, 0, 7); }
}

function draw() {
  const stage = $("stage");
  const rect = stage.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const side = R.mode === "side";
  const canvases = [$("view-a"), $("view-b")];
  const width = side ? rect.width / 2 : rect.width;
  canvases[1].hidden = !side;
  canvases[1].style.left = `${width}px`;
  canvases[1].style.borderLeft = "2px solid #ffffff";
  if (!R.view || R.view.width !== width) {
    const fit = Math.min(width / R.ctx.width, rect.height / R.ctx.height) * 0.96;
    R.view = { width, scale: fit, tx: (width - R.ctx.width * fit) / 2, ty: (rect.height - R.ctx.height * fit) / 2 };
  }
  // one view for both halves: zoom and pan stay in sync side by side
  const { scale, tx, ty } = R.view;
  const row = R.rows[R.selected];
  const sets = side ? [["a"], ["b"]] : [R.only ? [R.only] : ["a", "b"]];
  sets.forEach((which, n) => {
    const canvas = canvases[n];
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(rect.height * dpr);
    canvas.style.width = `${width}px`; canvas.style.height = `${rect.height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#23262b"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * tx, dpr * ty);
    if (R.image) ctx.drawImage(R.image, 0, 0, R.ctx.width, R.ctx.height);
    else { ctx.fillStyle = "#6b7078"; ctx.fillRect(0, 0, R.ctx.width, R.ctx.height); }
    for (const key of which) {
      ctx.setLineDash(key === "b" ? [8 / scale, 5 / scale] : []);
      for (const obj of R[key]) {
        if (obj.kind === "tag") continue;
        const current = row && (row.a === obj || row.b === obj);
        ctx.strokeStyle = current ? "#ffffff" : colorOf(obj.class_id);
        ctx.lineWidth = (current ? 3 : 1.5) / scale;
        ctx.beginPath(); trace(ctx, obj); ctx.stroke();
      }
    }
    ctx.setLineDash([]);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.font = "13px system-ui";
    ctx.fillText(side ? (n ? "B (dashed)" : "A (solid)") : R.only ? `${R.only.toUpperCase()} only` : "A solid · B dashed", 8, 18);
  });
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
  const row = R.rows[R.selected];
  const key = event.key;
  if (DEFECT_KEYS[key]) { setVerdict(row, "reject", DEFECT_KEYS[key]); return; }
  const step = (direction) => {
    for (let i = R.selected + direction; i >= 0 && i < R.rows.length; i += direction) if (disagreement(R.rows[i])) { select(i); return; }
    toast("No more disagreements that way");
  };
  switch (key) {
    case "a": setVerdict(row, "accept"); break;
    case "A": {
      let n = 0;
      for (const r of R.rows) if (r.type === "pair" && !r.pair.below_tier && !r.pair.class_swap && !r.pair.attribute_diff.length) { R.verdicts.set(rowKey(r), { verdict: "accept", defect_type: null }); n += 1; }
      toast(`Accepted ${n} pairs at or above tier`); renderList(); renderDetail(); break;
    }
    case "j": case "J": step(1); break;
    case "k": case "K": step(-1); break;
    case "ArrowDown": select(R.selected + 1); event.preventDefault(); break;
    case "ArrowUp": select(R.selected - 1); event.preventDefault(); break;
    case "o": case "O": R.mode = R.mode === "overlay" ? "side" : "overlay"; R.only = null; R.view = null; draw(); break;
    case "z": R.view = null; draw(); break;
    case "[": R.mode = "overlay"; R.only = R.only === "a" ? null : "a"; draw(); break;
    case "]": R.mode = "overlay"; R.only = R.only === "b" ? null : "b"; draw(); break;
    default:
  }
});

function stagePoint(event) {
  const rect = $("stage").getBoundingClientRect();
  const x = event.clientX - rect.left;
  return [R.mode === "side" && x > R.view.width ? x - R.view.width : x, event.clientY - rect.top];
}

$("stage").addEventListener("wheel", (event) => {
  event.preventDefault();
  const [sx, sy] = stagePoint(event);
  const v = R.view;
  const scale = Math.min(Math.max(v.scale * Math.exp(-event.deltaY * 0.0015), 0.02), 40);
  const ix = (sx - v.tx) / v.scale; const iy = (sy - v.ty) / v.scale;
  R.view = { ...v, scale, tx: sx - ix * scale, ty: sy - iy * scale };
  requestAnimationFrame(draw);
}, { passive: false });
$("stage").addEventListener("pointerdown", (event) => {
  const start = [event.clientX, event.clientY, R.view.tx, R.view.ty];
  const move = (e) => { R.view = { ...R.view, tx: start[2] + e.clientX - start[0], ty: start[3] + e.clientY - start[1] }; requestAnimationFrame(draw); };
  const up = () => { window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up); };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
});

async function main() {
  await topbar(`Review › task #${TASK_ID}`);
  try {
    R.ctx = await api(`/web/api/review/${TASK_ID}`);
  } catch (exc) {
    $("banner").replaceChildren(el("p", { class: "banner" }, `Task ${TASK_ID}: ${exc.message} `, el("a", { href: "/review" }, "Back")));
    return;
  }
  document.querySelector("#topbar .crumbs").textContent = `${R.ctx.project} › review › task #${TASK_ID}`;
  const [project, a, b] = await Promise.all([
    api(`/api/projects/${encodeURIComponent(R.ctx.project)}`),
    api(`/api/review/${TASK_ID}`),
    R.ctx.twin_task_id ? api(`/api/review/${R.ctx.twin_task_id}`) : Promise.resolve({ objects: [] }),
  ]);
  project.classes.forEach((c, i) => R.classes.set(c.id, { ...c, color: PALETTE[i % PALETTE.length] }));
  R.a = a.objects; R.b = b.objects;
  buildRows();
  renderList(); renderDetail();
  new ResizeObserver(draw).observe($("stage"));
  const image = new Image();
  image.onload = () => { R.image = image; draw(); };
  image.src = R.ctx.image_url;
  document.body.dataset.ready = "true";
}

main();
