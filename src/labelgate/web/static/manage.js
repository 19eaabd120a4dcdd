// The managers' page of one project: batches with their gates (advance a batch, see the gate
// it met or missed), the annotators' qualification, a batch's QA sample, the audit log with
// chain verification, and one item's lineage. Every number comes from the API
// (/api/projects/{p}/gates, /qualifications, /batches/{b}/qa-items, /batches/{b}/qa-plan,
// /audit/events, /audit/verify, /batches/{b}/items/{image}/lineage); the page only lays it out.
import { ocCurve } from "./charts.js";
import { api, el, fmt, toast, topbar } from "./common.js";

const STAGES = ["spec", "pilot", "production", "prelabel", "review", "qa", "delivery"];
const PAGE = 25;
const content = document.getElementById("content");
const project = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = `/api/projects/${encodeURIComponent(project)}`;
const M = { me: null, batches: [], audit: { offset: 0, filter: {} }, qa: { offset: 0 } };
window.__manage = M;

const num = (label) => ({ label, num: true });
function table(label, head, rows, attrs = {}) {
  return el("table", { "aria-label": label, ...attrs },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { class: h.num ? "num" : "", scope: "col" }, h.label ?? h)))),
    el("tbody", {}, ...(rows.length ? rows : [[el("span", { class: "muted" }, "none")]]).map((r) =>
      el("tr", {}, ...r.map((c, i) => el("td", { class: head[i]?.num ? "num" : "", colspan: rows.length ? null : head.length }, c))))));
}
function section(id, title, ...children) {
  return el("section", { class: "card", id, "aria-labelledby": `${id}-title` }, el("h2", { id: `${id}-title` }, title), ...children);
}
function errorLine(exc, retry) {
  return el("p", { class: "error" }, exc.message, " ", el("button", { type: "button", onclick: retry }, "Retry"));
}
const canManage = () => M.me.roles.some((r) => ["manager", "admin"].includes(r));
const valueText = (v, t) => (v === null || v === undefined ? `insufficient data / ${fmt(t)}` : `${fmt(v)} / ${fmt(t)}`);

function gateText(g) {
  if (!g) return el("span", { class: "cell-pending" }, "○ not evaluated");
  const mark = g.passed ? "✓ pass" : g.outcome === "waiting" ? "○ waiting" : "✗ fail";
  return el("span", { class: g.passed ? "cell-pass" : g.outcome === "waiting" ? "cell-pending" : "cell-fail" },
    `${g.gate}: ${valueText(g.value, g.threshold)} ${mark}`, g.outcome ? ` → ${g.outcome}` : "");
}

function stageCells(b) {
  return el("span", { class: "stage-cells" }, ...STAGES.map((s) => {
    const g = b.stages[s];
    const mark = !g ? "○" : g.passed ? "✓" : g.outcome === "waiting" ? "…" : "✗";
    const cls = !g ? "cell-pending" : g.passed ? "cell-pass" : g.outcome === "waiting" ? "cell-pending" : "cell-fail";
    const title = g ? `${s}: ${g.gate} ${valueText(g.value, g.threshold)}, cycle ${g.cycle}, ${g.outcome}` : `${s}: not evaluated`;
    return el("span", { class: cls, title }, `${mark} ${s}`);
  }));
}

// --- batches and gates ----------------------------------------------------------------------

function describeAdvance(batch, r) {
  const verdict = r.passed ? "✓ passed" : r.outcome === "waiting" ? "○ not yet" : "✗ failed";
  const move = {
    advanced: "moved on to the next stage",
    rework: `sent the defective items back to rework (cycle ${r.cycle + 1})`,
    waiting: "waits: nothing moved",
    blocked: "blocked: rework cycles exhausted, a manager must intervene",
  }[r.outcome] ?? r.outcome;
  return `${batch.name} · ${r.stage} gate ${r.gate}: ${valueText(r.value, r.threshold)} ${verdict}; ${move}.`;
}

async function advance(batch, button) {
  button.disabled = true;
  const out = document.getElementById("gate-result");
  try {
    const r = await api(`${base}/batches/${batch.id}/advance`, { method: "POST", body: {} });
    out.className = `gate-result banner ${r.passed ? "ok" : ""}`;
    out.replaceChildren(describeAdvance(batch, r));
    out.dataset.gate = r.gate; out.dataset.outcome = r.outcome;
    toast(`${batch.name}: ${r.outcome}`);
  } catch (exc) {
    out.className = "gate-result banner";
    out.replaceChildren(el("span", { class: "error" }, `${batch.name}: ${exc.message}`));
  }
  await renderBatches();
  const now = M.batches.find((b) => b.id === batch.id);
  if (now && out.dataset.gate) out.append(` Now at stage ${now.stage}, cycle ${now.rework_cycle}.`);
  await Promise.all([renderQa(), renderAudit()]);
}

async function renderBatches() {
  const card = document.getElementById("batches");
  try {
    const page = await api(`${base}/gates?limit=1000`);
    M.batches = page.items;
  } catch (exc) { card.replaceChildren(el("h2", {}, "Batches and gates"), errorLine(exc, renderBatches)); return; }
  const rows = M.batches.map((b) => [
    el("a", { href: `#lineage`, onclick: () => { document.getElementById("lineage-batch").value = b.id; } }, b.name),
    `${b.stage} / ${b.state}`, b.rework_cycle, b.items,
    b.open_adjudications ? el("a", { href: `/review` }, `${b.open_adjudications} open`) : "0",
    gateText(b.last_gate), stageCells(b),
    canManage() && b.stage !== "delivered"
      ? el("button", { type: "button", class: "primary", "data-batch": b.name, "aria-label": `Advance ${b.name}`, onclick: (e) => advance(b, e.target) }, "Advance")
      : el("span", { class: "muted" }, b.stage === "delivered" ? "delivered" : "read only"),
  ]);
  const result = document.getElementById("gate-result") || el("p", { id: "gate-result", class: "gate-result", role: "status", "aria-live": "polite" });
  card.replaceChildren(el("h2", { id: "batches-title" }, `Batches and gates (${M.batches.length})`),
    table("Batches", ["batch", "stage / state", num("cycle"), num("items"), "disputes", "current gate: value / threshold", "stages", "action"], rows),
    result);
  for (const select of document.querySelectorAll("select.batch-select")) fillBatches(select);
}

function fillBatches(select) {
  const current = select.value;
  const all = select.dataset.all === "true";
  select.replaceChildren(...(all ? [el("option", { value: "" }, "all batches")] : []),
    ...M.batches.map((b) => el("option", { value: b.id }, `${b.name} (${b.stage})`)));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

// --- qualification --------------------------------------------------------------------------

async function renderQualification() {
  const card = document.getElementById("qualification");
  try {
    const page = await api(`${base}/qualifications?limit=1000`);
    const rows = page.items.map((q) => [
      q.user, `v${q.spec_version}`, `${fmt(q.score)} / ${fmt(q.threshold)}`,
      el("span", { class: q.passed ? "cell-pass" : "cell-fail" }, q.passed ? "✓ passed" : "✗ failed"),
      el("span", { class: "chips" }, ...Object.entries(q.cells).map(([name, f1]) =>
        el("span", { class: q.failed.includes(name) ? "bad" : "", title: `F1 ${f1}` }, `${name.replace(/^(class|scene):/, "")} ${fmt(f1, 2)}`))),
      q.gold_images, q.latest ? "current" : el("span", { class: "muted" }, "superseded"),
      el("span", { class: "nowrap" }, stamp(q.at)),
    ]);
    card.replaceChildren(el("h2", { id: "qualification-title" }, `Qualification: pilot vs gold (${page.total})`),
      el("p", { class: "muted" }, "F1 at each class's IoU tier, per class / scene cell; a failed cell (red) fails the pilot."),
      table("Qualification", ["annotator", "spec", "score / required", "result", "per class / scene F1", num("gold images"), "attempt", "when"], rows));
  } catch (exc) { card.replaceChildren(el("h2", {}, "Qualification"), errorLine(exc, renderQualification)); }
}

// --- QA sample ------------------------------------------------------------------------------

async function renderQa() {
  const box = document.getElementById("qa-body");
  const batch = document.getElementById("qa-batch").value;
  if (!batch) { box.replaceChildren(el("p", { class: "muted" }, "No batches.")); return; }
  const cycle = document.getElementById("qa-cycle").value;
  try {
    const at = cycle !== "" ? `cycle=${Number(cycle)}` : "";
    const [q, plan] = await Promise.all([
      api(`${base}/batches/${batch}/qa-items?limit=${PAGE}&offset=${M.qa.offset}${at ? `&${at}` : ""}`),
      api(`${base}/batches/${batch}/qa-plan${at ? `?${at}` : ""}`),
    ]);
    const g = q.gate;
    const decision = g ? (g.decision === "release" ? "Release" : "Block") : q.planned === 0 ? "No sample drawn (the batch has not entered QA in this cycle)" : q.inspected < q.planned ? "Keep sampling" : "Sample complete: advance the batch to evaluate";
    const summary = el("p", { id: "qa-summary" },
      `Cycle ${q.cycle} · lot N = ${q.lot} · sample n = ${q.planned} · inspected ${q.inspected} · defects ${q.defects} in ${q.defective_images} images`,
      g ? ` · rate ${fmt(g.defect_rate)} · ${Math.round(100 * (g.confidence ?? 0.95))} % upper bound ${fmt(g.value)} (${g.bound}) vs limit ${fmt(g.threshold)}` : "",
      " · decision: ", el("strong", { class: g ? (g.passed ? "cell-pass" : "cell-fail") : "" }, decision),
      g && g.outcome === "rework" ? " → sent to rework" : "");
    const rows = q.items.map((i) => [`#${i.task_id}`, `${i.image_id} (${i.file_name})`, i.inspector ?? "–",
      i.inspected ? "✓ inspected" : "○ waiting",
      i.defects.length ? el("span", { class: "cell-fail" }, i.defects.map((d) => `${d.type}${d.object_key !== null ? ` #${d.object_key}` : ""}`).join(", ")) : (i.inspected ? "clean" : "–")]);
    box.replaceChildren(summary, planView(plan), table("QA sample", ["task", "image", "inspector", "status", "defects found"], rows), pager(M.qa, q.total, renderQa));
  } catch (exc) { box.replaceChildren(errorLine(exc, renderQa)); }
}

/** The plan the sample is judged under (n, c) and its OC curve with the limit (UX §6). */
function planView(plan) {
  if (!plan.oc.length) return el("p", { id: "qa-plan", class: "muted" }, "OC curve: no sample drawn in this cycle.");
  const c = plan.acceptance_number;
  const unit = plan.unit === "image" ? `images, hypergeometric on a lot of ${plan.lot_size}` : "objects, Clopper-Pearson";
  return el("div", { id: "qa-plan" },
    el("p", {}, `Plan: n = ${plan.sample_size} ${unit}; releases on `, c < 0 ? el("strong", { class: "cell-fail" }, "no count of defects (too small to show the limit)") : `at most c = ${c} defect${c === 1 ? "" : "s"}`,
      ` · a batch exactly at the limit ${fmt(plan.limit)} is released with p = ${fmt(plan.at_limit)} (at most ${fmt(1 - plan.confidence, 2)})`),
    ocCurve(plan));
}

function pager(state, total, render) {
  const from = total ? state.offset + 1 : 0;
  const to = Math.min(state.offset + PAGE, total);
  return el("div", { class: "pager" },
    el("button", { type: "button", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE); render(); } }, "‹ Newer"),
    el("span", {}, `${from}–${to} of ${total}`),
    el("button", { type: "button", disabled: to >= total, onclick: () => { state.offset += PAGE; render(); } }, "Older ›"));
}

// --- audit ------------------------------------------------------------------------------------

function detailsText(details) {
  const show = (v) => (typeof v === "number" ? fmt(v) : typeof v === "object" && v !== null ? JSON.stringify(v) : v);
  return Object.entries(details || {}).map(([k, v]) => `${k}: ${show(v)}`).join(" · ");
}

/** "2026-11-30 22:43:41" in the viewer's time zone. */
function stamp(t) {
  if (!t) return "–";
  const d = new Date(t);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

async function verify() {
  const out = document.getElementById("verify-result");
  out.replaceChildren("Verifying…");
  try {
    const r = await api(`${base}/audit/verify`);
    out.className = r.ok ? "cell-pass" : "verify-bad";
    out.replaceChildren(r.ok ? `✓ Chain intact: ${r.events} events verified` : `✗ Broken at event #${r.first_broken_id}: ${r.reason} (${r.events} events intact before it)`);
  } catch (exc) { out.replaceChildren(errorLine(exc, verify)); }
}

async function renderAudit() {
  const box = document.getElementById("audit-body");
  const f = M.audit.filter;
  const query = new URLSearchParams({ limit: PAGE, offset: M.audit.offset });
  for (const [k, v] of Object.entries(f)) if (v) query.set(k, v);
  try {
    const page = await api(`${base}/audit/events?${query}`);
    const rows = page.items.map((e) => [e.id, el("span", { class: "nowrap" }, stamp(e.at)), e.actor, e.action, el("span", { class: "nowrap" }, `${e.entity_type} ${e.entity_id}`),
      el("span", { class: "mono nowrap", title: `${e.before_digest ?? "none"} → ${e.after_digest ?? "none"}` }, `${e.before_digest ? e.before_digest.slice(0, 8) : "∅"} → ${e.after_digest ? e.after_digest.slice(0, 8) : "∅"}`),
      el("span", { class: "details-cell" }, detailsText(e.details)),
      el("span", { class: "mono", title: e.hash }, e.hash.slice(0, 10))]);
    box.replaceChildren(table("Audit events", [num("#"), "time", "actor", "action", "object", "before → after", "details", "hash"], rows, { id: "audit-table" }), pager(M.audit, page.total, renderAudit));
  } catch (exc) { box.replaceChildren(errorLine(exc, renderAudit)); }
}

function auditSection() {
  const form = el("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const v = (n) => e.target.elements[n].value.trim();
    M.audit.filter = { batch_id: v("batch_id"), task_id: v("task_id"), adjudication_id: v("adjudication_id"), action: v("action") };
    M.audit.offset = 0; renderAudit();
  } },
  el("label", {}, "Batch", el("select", { name: "batch_id", class: "batch-select", "data-all": "true" })),
  el("label", {}, "Task id", el("input", { name: "task_id", type: "number", min: 1, size: 6 })),
  el("label", {}, "Dispute id", el("input", { name: "adjudication_id", type: "number", min: 1, size: 6 })),
  el("label", {}, "Action", el("select", { name: "action" }, ...["", "batch.create", "batch.assign", "batch.advance", "annotation.save", "task.submit", "task.review", "qa.inspect", "adjudication.decide", "batch.export"]
    .map((a) => el("option", { value: a }, a || "any action")))),
  el("button", { type: "submit" }, "Filter"));
  return section("audit", "Audit log",
    el("p", {}, el("button", { type: "button", id: "verify", onclick: verify }, "Verify chain"), " ", el("span", { id: "verify-result", role: "status" })),
    form, el("div", { id: "audit-body" }));
}

// --- lineage --------------------------------------------------------------------------------

async function renderLineage(event) {
  event?.preventDefault();
  const box = document.getElementById("lineage-body");
  const batch = document.getElementById("lineage-batch").value;
  const image = document.getElementById("lineage-image").value;
  if (!batch || image === "") { box.replaceChildren(el("p", { class: "error" }, "Pick a batch and an image id.")); return; }
  try {
    const l = await api(`${base}/batches/${batch}/items/${Number(image)}/lineage`);
    const when = stamp;
    box.replaceChildren(
      el("p", {}, el("strong", {}, `Image ${l.image_id} (${l.file_name})`), ` in ${l.batch} (${l.batch_stage}): item ${l.state}; final revision `,
        l.final_revision_id ? `#${l.final_revision_id}` : "none yet", " · ", l.delivered ? el("strong", { class: "cell-pass" }, "✓ delivered") : "not delivered"),
      el("h3", {}, "Tasks"),
      el("ol", {}, ...l.tasks.map((t) => el("li", {}, `task #${t.task_id} · ${t.purpose} · cycle ${t.cycle} · ${t.assignee} · ${t.status}${t.submitted_at ? ` ${when(t.submitted_at)}` : ""}`))),
      el("h3", {}, "Revisions → review decisions"),
      el("ol", { id: "lineage-revisions" }, ...l.revisions.map((r) => el("li", {},
        el("span", { class: r.final ? "cell-pass" : "" }, `revision #${r.id} (task #${r.task_id}, no. ${r.number}${r.parent_id ? `, from #${r.parent_id}` : ""}) by ${r.author}, ${r.source}, ${r.objects} objects, ${when(r.at)}`),
        r.final ? el("strong", { class: "cell-pass" }, l.delivered ? " ← final, delivered" : " ← final") : "",
        r.reviews.length ? el("ul", {}, ...r.reviews.map((d) => el("li", {}, `${d.reviewer}: ${d.verdict}${d.defect_type ? ` (${d.defect_type})` : ""}${d.object_key !== null ? ` object #${d.object_key}` : ""}${d.comment ? ` “${d.comment}”` : ""}`))) : null))),
      el("h3", {}, "Disputes"),
      l.adjudications.length ? el("ol", { id: "lineage-disputes" }, ...l.adjudications.map((a) => el("li", {}, `#${a.id} ${a.status}`,
        a.decision ? ` by ${a.adjudicator}: ${a.decision.choice ? `took ${a.decision.choice.toUpperCase()}` : a.decision.keep ? "kept" : "dropped"}${a.decision.reason_code ? ` · ${a.decision.reason_code}` : ""}${a.decision.reason ? ` · “${a.decision.reason}”` : ""}` : ""))) : el("p", { class: "muted" }, "none"),
      el("h3", {}, "Defects"),
      l.defects.length ? el("ol", {}, ...l.defects.map((d) => el("li", {}, `${d.type} (found by ${d.found_by}${d.reporter ? `, ${d.reporter}` : ""}) against ${d.annotator ?? "–"}, cycle ${d.cycle}${d.resolved ? ", resolved" : ""}`))) : el("p", { class: "muted" }, "none"),
    );
  } catch (exc) { box.replaceChildren(el("p", { class: "error" }, exc.message)); }
}

function lineageSection() {
  return section("lineage", "Item lineage",
    el("form", { class: "filters", onsubmit: renderLineage },
      el("label", {}, "Batch", el("select", { id: "lineage-batch", class: "batch-select" })),
      el("label", {}, "Image id", el("input", { id: "lineage-image", type: "number", size: 8, required: true })),
      el("button", { type: "submit" }, "Show lineage")),
    el("div", { id: "lineage-body", class: "lineage" }));
}

// --- page -------------------------------------------------------------------------------------

async function main() {
  M.me = await topbar(project ? `Manage › ${project}` : "Manage");
  if (!project) {
    const projects = await api("/api/projects?limit=1000");
    content.replaceChildren(el("h1", {}, "Projects"), el("ul", {}, ...projects.items.map((p) => el("li", {}, el("a", { href: `/manage/${encodeURIComponent(p.name)}` }, p.name)))));
    document.body.dataset.ready = "true";
    return;
  }
  const qaControls = el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); M.qa.offset = 0; renderQa(); } },
    el("label", {}, "Batch", el("select", { id: "qa-batch", class: "batch-select", onchange: () => { M.qa.offset = 0; renderQa(); } })),
    el("label", {}, "Cycle (blank: current)", el("input", { id: "qa-cycle", type: "number", min: 0, size: 4 })),
    el("button", { type: "submit" }, "Show"));
  content.replaceChildren(
    el("nav", { class: "manage-nav", "aria-label": "Sections" }, ...[["batches", "Batches and gates"], ["qualification", "Qualification"], ["qa", "QA sample"], ["audit", "Audit log"], ["lineage", "Lineage"]]
      .map(([id, label]) => el("a", { href: `#${id}` }, label)), el("a", { href: `/dashboard/${encodeURIComponent(project)}` }, "Dashboards")),
    el("section", { class: "card", id: "batches" }, el("p", { class: "muted" }, "Loading batches…")),
    el("section", { class: "card", id: "qualification" }, el("p", { class: "muted" }, "Loading…")),
    section("qa", "QA sample", qaControls, el("div", { id: "qa-body" })),
    auditSection(), lineageSection());
  await renderBatches();
  await Promise.all([renderQualification(), renderQa(), renderAudit()]);
  document.body.dataset.ready = "true";
}

main();
