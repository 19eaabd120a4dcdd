// Managers' dashboards: gates per batch and stage, per-class quality, annotators, QA sampling
// and cost, all drawn from GET /api/projects/{p}/report (the report JSON, built by the server).
import { api, el, fmt, topbar } from "./common.js";

const STAGES = ["spec", "pilot", "production", "prelabel", "review", "qa", "delivery"];
const SVG = "http://www.w3.org/2000/svg";
const content = document.getElementById("content");
const project = decodeURIComponent(location.pathname.split("/")[2] || "");

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** A number, or why there is none ("insufficient data (n=12, need 50)"). */
function value(v, n, need) {
  if (v === null || v === undefined) return el("span", { class: "muted" }, n !== undefined ? `insufficient data (n=${n}${need ? `, need ${need}` : ""})` : "–");
  return fmt(v);
}

function table(label, head, rows) {
  return el("table", { "aria-label": label },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { class: h.num ? "num" : "" }, h.label ?? h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c, i) => el("td", { class: head[i].num ? "num" : "" }, c))))));
}

function gates(report) {
  const latest = new Map();
  for (const s of report.stages) latest.set(`${s.batch}|${s.name}`, s);
  const cell = (batch, stage) => {
    const s = latest.get(`${batch.name}|${stage}`);
    if (!s) return el("span", { class: "cell-pending" }, "○ pending");
    const text = `${s.passed ? "✓ pass" : "✗ fail"} ${fmt(s.value)} / ${fmt(s.threshold)}`;
    return el("span", { class: s.passed ? "cell-pass" : "cell-fail", title: `${s.gate}, cycle ${s.cycle}, ${s.outcome ?? ""}` }, text);
  };
  const head = ["batch", "stage / state", ...STAGES.map((s) => ({ label: s }))];
  const rows = report.batches.map((b) => [b.name, `${b.stage} / ${b.state} (rework ${b.rework_cycles})`, ...STAGES.map((s) => cell(b, s))]);
  const timeline = table("Gate timeline", ["batch", "stage", "gate", "cycle", { label: "value", num: true }, { label: "threshold", num: true }, "result", "outcome"],
    report.stages.map((s) => [s.batch, s.name, s.gate, s.cycle, fmt(s.value), fmt(s.threshold), s.passed ? "✓ pass" : "✗ fail", s.outcome ?? "–"]));
  return el("section", { class: "card", id: "gates" }, el("h2", {}, "Gates: batches × stages (value / threshold)"), table("Gates", head, rows),
    el("details", {}, el("summary", {}, `Timeline (${report.stages.length} evaluations)`), timeline));
}

function boxPlots(dist) {
  const rowH = 22; const left = 110; const width = 520; const plot = width - left - 20;
  const x = (v) => left + v * plot;
  const height = dist.length * rowH + 30;
  const root = svg("svg", { width, height, role: "img", "aria-label": "IoU per class: box plots with the class tier" });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) root.append(svg("line", { x1: x(t), x2: x(t), y1: 0, y2: height - 20, stroke: "#8888", "stroke-dasharray": "2 3" }), svg("text", { x: x(t) - 8, y: height - 6 }, t));
  dist.forEach((d, i) => {
    const y = i * rowH + 12;
    root.append(svg("text", { x: 4, y: y + 4 }, d.name));
    if (d.median === null || d.median === undefined) { root.append(svg("text", { x: left, y: y + 4 }, `insufficient data (n=${d.paired})`)); return; }
    root.append(
      svg("line", { x1: x(d.min), x2: x(d.max), y1: y, y2: y, stroke: "currentColor" }),
      svg("rect", { x: x(d.p25), y: y - 6, width: Math.max(1, x(d.p75) - x(d.p25)), height: 12, fill: "#56B4E9", stroke: "#0072B2" }),
      svg("line", { x1: x(d.median), x2: x(d.median), y1: y - 7, y2: y + 7, stroke: "#000", "stroke-width": 2 }),
      svg("line", { x1: x(d.iou_threshold), x2: x(d.iou_threshold), y1: y - 9, y2: y + 9, stroke: "#D55E00", "stroke-width": 2 }, svg("title", {}, `tier ${d.iou_threshold}`)),
    );
  });
  return root;
}

function quality(report) {
  const q = report.quality;
  const rows = q.per_class.map((c) => [c.name, fmt(c.iou_threshold, 2), c.ref_count, c.matched, c.missed, c.extra, c.class_swaps,
    value(c.precision, c.ref_count), value(c.recall, c.ref_count), value(c.f1, c.ref_count), value(c.iou?.median, c.matched), value(c.iou?.p10, c.matched),
    c.bias ? `${fmt(c.bias.log_width_ratio, 3)} / ${fmt(c.bias.log_height_ratio, 3)}` : "–"]);
  const num = (label) => ({ label, num: true });
  const density = (q.by_density || []).map((d) => [d.bucket, d.ref_count, d.missed, value(d.missed_rate, d.ref_count)]);
  return el("section", { class: "card", id: "quality" }, el("h2", {}, "Per-class quality (honeypots vs reference)"),
    table("Per-class quality", ["class", num("tier"), num("ref"), num("matched"), num("missed"), num("extra"), num("swaps"), num("precision"), num("recall"), num("F1"), num("IoU median"), num("IoU p10"), "log w / h bias"], rows),
    el("div", { class: "dash-grid" },
      el("div", {}, el("h3", {}, "IoU per class (box p25–p75, median, whiskers min–max; orange: tier)"), boxPlots(q.iou_distribution || [])),
      el("div", {}, el("h3", {}, "Missing rate by scene density"), table("Missing by density", ["objects per image", num("ref"), num("missed"), num("missing rate")], density))));
}

function annotators(report) {
  const num = (label) => ({ label, num: true });
  const rows = report.quality.per_annotator.map((a) => [a.annotator, a.cohort ?? "–",
    a.qualification ? `${a.qualification.passed ? "✓" : "✗"} ${fmt(a.qualification.score)}` : "–",
    value(a.honeypot_f1), value(a.honeypot_iou?.median),
    a.honeypot_bias ? `${fmt(a.honeypot_bias.log_width_ratio, 3)} / ${fmt(a.honeypot_bias.log_height_ratio, 3)}` : "–",
    a.objects_labelled, Object.entries(a.defects || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "none",
    value(a.defect_rate, a.objects_labelled), a.rework_tasks, ...worked(a.work)]);
  return el("section", { class: "card", id: "annotators" }, el("h2", {}, "Annotators"),
    table("Annotators", ["annotator", "cohort", "pilot vs gold", num("honeypot F1"), num("IoU median"), "log w / h bias", num("objects"), "defects by type", num("defect rate"), num("rework tasks"), num("annotation h"), num("objects / h"), num("rework h")], rows),
    el("p", { class: "muted" }, "Hours are measured active time (the work log: input gaps over a minute are breaks); objects per hour counts each task's objects as last saved with a time."));
}

/** A number with a fixed count of decimals ("1.50", money "$36.00"); "–" for null. */
const fixed = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const usd = (v) => (v === null || v === undefined ? "–" : `$${fixed(v)}`);

/** Measured time of one annotator: annotation hours, objects per hour, rework hours. */
function worked(work) {
  if (!work) return [el("span", { class: "muted" }, "no time logged"), "–", "–"];
  const rate = work.objects_per_hour;
  return [fixed(work.annotate_hours), rate === null || rate === undefined ? el("span", { class: "muted" }, "no time") : fixed(rate, 1), fixed(work.rework_hours)];
}

function ocCurve(rates, oc, limit) {
  const width = 480; const height = 220; const left = 40; const bottom = 30;
  const maxRate = rates[rates.length - 1] || 0.06;
  const x = (r) => left + (r / maxRate) * (width - left - 10);
  const y = (p) => 10 + (1 - p) * (height - bottom - 10);
  const root = svg("svg", { width, height, role: "img", "aria-label": "Operating characteristic: chance of release at true defect rate p" });
  root.append(svg("line", { x1: left, x2: width - 10, y1: y(0), y2: y(0), stroke: "currentColor" }), svg("line", { x1: left, x2: left, y1: y(0), y2: y(1), stroke: "currentColor" }));
  root.append(svg("text", { x: 4, y: y(1) + 4 }, "1"), svg("text", { x: 4, y: y(0) }, "0"), svg("text", { x: width - 160, y: height - 6 }, `true defect rate (max ${fmt(maxRate, 2)})`));
  root.append(svg("polyline", { points: rates.map((r, i) => `${x(r)},${y(oc[i])}`).join(" "), fill: "none", stroke: "#0072B2", "stroke-width": 2 }));
  if (limit) root.append(svg("line", { x1: x(limit), x2: x(limit), y1: y(0), y2: y(1), stroke: "#D55E00", "stroke-dasharray": "4 3" }, svg("title", {}, `limit ${limit}`)));
  return root;
}

function qa(report) {
  const plan = report.qa_plan || {};
  const design = plan.design;
  const rows = (plan.as_run || []).map((r) => [r.batch, r.cycle, r.sample_size, r.acceptance_number, r.defects, fmt(r.defect_rate), fmt(r.upper_bound), el("strong", {}, r.decision)]);
  return el("section", { class: "card", id: "qa" }, el("h2", {}, "QA sampling"),
    el("p", {}, `Unit ${plan.unit ?? "–"}, limit ${fmt(plan.limit)}, confidence ${fmt(plan.confidence)}; `,
      design ? `design: n = ${design.sample_size}, accept ≤ ${design.acceptance_number} defects` : "no sampling plan for this limit"),
    table("QA decisions", ["batch", "cycle", { label: "n", num: true }, { label: "accept ≤", num: true }, { label: "defects", num: true }, { label: "rate", num: true }, { label: "95 % upper bound", num: true }, "decision"], rows),
    plan.rates && plan.oc ? el("div", {}, el("h3", {}, "OC curve of the design (orange: limit)"), ocCurve(plan.rates, plan.oc, plan.limit)) : null);
}

/** The work log priced (report cost.measured) beside the model, category by category. */
function measured(c) {
  const w = c.measured;
  if (!w) return el("p", { class: "muted", id: "cost-measured" }, "Cost so far: no work time logged yet (the pages send it with each save and decision).");
  const m = c.model || {};
  const ratios = w.ratio_by_category || {};
  const num = (label) => ({ label, num: true });
  const rows = [["direct annotation", "direct_usd", "direct_hours"], ["QA / review", "qa_review_usd", "qa_review_hours"], ["rework cycles", "rework_usd", "rework_hours"], ["downstream (model's estimate)", "downstream_usd", null]]
    .map(([label, key, hours]) => [label, usd(w[key]), hours ? fixed(w[hours]) : "–", usd(m[key]), fixed(ratios[key])]);
  rows.push([el("strong", {}, "total"), el("strong", {}, usd(w.total_usd)), fixed(w.total_hours), usd(m.total_usd), fixed(w.ratio_to_model)]);
  return el("div", { id: "cost-measured" },
    el("h3", {}, `Cost so far (measured): ${usd(w.total_usd)} over ${fixed(w.total_hours)} h${w.ratio_to_model !== null && w.ratio_to_model !== undefined ? `, ${fixed(w.ratio_to_model)} × the model's ${usd(w.model_total_usd)}` : ""}`),
    table("Cost so far vs model", ["category", num("measured $"), num("hours"), num("model $"), num("× model")], rows),
    el("p", { class: "muted" }, `Logged hours at ${usd(w.annotator_hourly_usd)}/h (annotation, rework) and ${usd(w.review_hourly_usd)}/h (review, QA, adjudication), times each person's price multiple.`));
}

function cost(report) {
  const c = report.cost || {};
  const m = c.model;
  if (!m) return el("section", { class: "card", id: "cost" }, el("h2", {}, "Cost"), el("p", { class: "muted" }, "insufficient data (no labelled units yet)"), c.measured ? measured(c) : null);
  const parts = [["direct", m.direct_usd], ["QA / review", m.qa_review_usd], ["rework", m.rework_usd], ["downstream (escaped defects)", m.downstream_usd], ["total", m.total_usd]];
  const max = m.total_usd || 1;
  const width = 520;
  let acc = 0;
  const chart = svg("svg", { width, height: parts.length * 26 + 10, role: "img", "aria-label": "Cost waterfall" });
  parts.forEach(([label, v], i) => {
    const total = i === parts.length - 1;
    const x0 = total ? 0 : acc; acc += total ? 0 : v;
    chart.append(svg("rect", { x: 240 + (x0 / max) * 260, y: i * 26 + 4, width: Math.max(1, (v / max) * 260), height: 18, fill: total ? "#0072B2" : "#E69F00" }),
      svg("text", { x: 0, y: i * 26 + 17 }, `${label} $${fmt(v, 2)}`));
  });
  const cohorts = c.cohorts ? table("Cohorts", ["cohort", { label: "defect rate", num: true }, { label: "total $", num: true }, { label: "hidden", num: true }],
    ["crowd", "managed"].filter((k) => c.cohorts[k]).map((k) => [k, fmt(c.cohorts[k].defect_rate), fmt(c.cohorts[k].total_usd, 2), fmt(c.cohorts[k].hidden_cost_fraction, 2)])) : null;
  return el("section", { class: "card", id: "cost" }, el("h2", {}, "Cost so far vs model"),
    el("p", {}, `${c.units} units at $${fmt(c.unit_price_usd, 3)}; measured defect rate ${fmt(c.measured_defect_rate)}; rework so far $${fmt(c.actual_rework_usd, 2)} (model: $${fmt(m.rework_usd, 2)}); hidden cost ${fmt(100 * m.hidden_cost_fraction, 1)} % over direct labour.`),
    chart, measured(c), cohorts);
}

function defects(report) {
  const d = report.defects || {};
  const rows = Object.entries(d.by_type || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v]);
  return el("section", { class: "card", id: "defects" }, el("h2", {}, `Defects (${d.total ?? 0})`),
    table("Defects by type", ["type", { label: "count", num: true }], rows),
    el("p", { class: "muted" }, `found by: ${Object.entries(d.by_found_by || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "–"}`));
}

/** "estimate [low, high]" of a metrics interval, or why there is none. */
function interval(entry, scale = 1, unit = "") {
  if (!entry) return el("span", { class: "muted" }, "not measurable (needs control and pre-labelled tasks)");
  const f = (v) => fmt(v * scale, 1);
  return `${f(entry.estimate)}${unit} [${f(entry.ci_low)}, ${f(entry.ci_high)}]${unit}`;
}

function prelabels(report) {
  const done = report.batches.filter((b) => b.prelabel);
  const section = el("section", { class: "card", id: "prelabel" }, el("h2", {}, "Pre-labels: proposals reviewed and time saved"));
  if (!done.length) { section.append(el("p", { class: "muted" }, "No batch was pre-labelled.")); return section; }
  const num = (label) => ({ label, num: true });
  const share = (v) => (v === null || v === undefined ? "–" : `${fmt(100 * v, 1)} %`);
  const rows = done.map((b) => {
    const m = b.prelabel; const iou = m.adjustment_iou || {};
    return [b.name, m.proposals, `${share(m.acceptance_rate)} (${m.decisions.accept})`, `${share(m.adjust_rate)} (${m.decisions.adjust})`,
      `${share(m.reject_rate)} (${m.decisions.reject})`, iou.count ? `${fmt(iou.median)} / ${fmt(iou.p10)}` : "–",
      value(m.precision, m.compared), value(m.recall, m.compared)];
  });
  const times = done.map((b) => {
    const t = b.prelabel.time; const pre = t.prelabelled; const control = t.control;
    return [b.name, `${fmt(pre.seconds_per_task, 1)} (n=${pre.tasks})`, `${fmt(control.seconds_per_task, 1)} (n=${control.tasks})`,
      interval(t.seconds_saved_per_task, 1, " s"), interval(t.time_saved_fraction, 100, " %")];
  });
  const level = done[0].prelabel.time.confidence ?? 0.95;
  section.append(
    table("Pre-label decisions", ["batch", num("proposals"), num("accepted"), num("adjusted"), num("rejected"), num("adjusted IoU median / p10"), num("precision"), num("recall")], rows),
    el("p", { class: "muted" }, `Measured active time per task labelled from scratch, pre-labelled vs the control group; ${Math.round(100 * level)} % intervals (Welch's t for seconds, bootstrap for the share).`),
    table("Time saved by pre-labels", ["batch", num("s per task, pre-labelled"), num("s per task, control"), num("seconds saved per task"), num("time saved")], times));
  return section;
}

async function main() {
  await topbar(project ? `Dashboards › ${project}` : "Dashboards");
  if (!project) {
    const projects = await api("/api/projects?limit=1000");
    content.replaceChildren(el("h1", {}, "Projects"), el("ul", {}, ...projects.items.map((p) => el("li", {}, el("a", { href: `/dashboard/${encodeURIComponent(p.name)}` }, p.name)))));
    document.body.dataset.ready = "true";
    return;
  }
  const started = performance.now();
  let report;
  try {
    report = await api(`/api/projects/${encodeURIComponent(project)}/report`);
  } catch (exc) {
    content.replaceChildren(el("p", { class: "error" }, `Could not build the report: ${exc.message} `, el("button", { type: "button", onclick: () => location.reload() }, "Retry")));
    return;
  }
  content.replaceChildren(
    el("p", { class: "muted" }, `computed at ${new Date().toLocaleString()} in ${Math.round(performance.now() - started)} ms · spec v${report.spec?.version ?? "–"}`),
    gates(report), quality(report), annotators(report), prelabels(report), qa(report), cost(report), defects(report));
  document.body.dataset.ready = "true";
}

main();
