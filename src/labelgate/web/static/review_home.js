// Reviewers' and adjudicators' start page: per project and batch, the review queue, the
// caller's QA sample and the open disputes (each opens the adjudication page: A or B, with a reason).
import { api, el, fmt, topbar } from "./common.js";

const content = document.getElementById("content");

async function batchSection(project, batch, me) {
  const canReview = me.roles.some((r) => ["reviewer", "manager", "admin"].includes(r));
  const canAdjudicate = me.roles.some((r) => ["adjudicator", "manager", "admin"].includes(r));
  const base = `/api/projects/${encodeURIComponent(project)}/batches/${batch.id}`;
  const section = el("section", { class: "card", "aria-label": `Batch ${batch.name}` },
    el("h3", {}, `${batch.name} · stage ${batch.stage} · ${batch.state} · ${batch.items} items`));
  if (canReview) {
    try {
      const queue = await api(`${base}/review-queue?limit=1000`);
      section.append(el("p", {}, `Review queue (${queue.total}): `,
        ...(queue.items.length ? queue.items.map((t) => [el("a", { href: `/review/${t.task_id}` }, `task #${t.task_id}`), " "]) : ["empty"])));
    } catch (exc) { section.append(el("p", { class: "error" }, `review queue: ${exc.message}`)); }
  }
  if (canAdjudicate) {
    try {
      const disputes = await api(`${base}/adjudications?limit=1000`);
      const table = el("table", { "aria-label": `Open disputes of ${batch.name}` },
        el("thead", {}, el("tr", {}, el("th", {}, "Dispute"), el("th", {}, "Image"), el("th", {}, "Reason"), el("th", {}, "Class"), el("th", {}, "Box"), el("th", {}, "Decision"))),
        el("tbody", {}, ...disputes.items.map((d) => el("tr", {}, el("td", {}, `#${d.id}`), el("td", {}, d.image_id), el("td", {}, d.reason),
          el("td", {}, d.payload?.class_id ?? "–"), el("td", {}, (d.payload?.bbox || []).map((v) => fmt(v, 0)).join(", ")),
          el("td", {}, el("a", { href: `/adjudicate/${d.id}`, "aria-label": `Adjudicate dispute ${d.id}` }, "Adjudicate: A or B, with a reason"))))));
      section.append(el("h4", {}, `Open disputes (${disputes.total}), oldest first`), disputes.items.length ? table : el("p", { class: "muted" }, "none"));
    } catch (exc) { section.append(el("p", { class: "error" }, `disputes: ${exc.message}`)); }
  }
  return section;
}

async function main() {
  const me = await topbar("Review");
  const open = el("form", { class: "card", onsubmit: (event) => { event.preventDefault(); location.assign(`/review/${Number(event.target.elements.task.value)}`); } },
    el("label", { for: "task" }, "Open a submitted task by id "), el("input", { id: "task", name: "task", type: "number", min: 1, required: true }), " ", el("button", { type: "submit" }, "Open"));
  const parts = [open];
  const projects = await api("/api/projects?limit=1000");
  for (const { name } of projects.items) {
    parts.push(el("h2", {}, name));
    try {
      const batches = await api(`/api/projects/${encodeURIComponent(name)}/batches?limit=1000`);
      for (const batch of batches.items) parts.push(await batchSection(name, batch, me));
      if (!batches.items.length) parts.push(el("p", { class: "muted" }, "No batches."));
    } catch (exc) { parts.push(el("p", { class: "error" }, exc.message)); }
  }
  if (!projects.items.length) parts.push(el("p", {}, "No projects to review."));
  content.replaceChildren(...parts);
  document.body.dataset.ready = "true";
}

main();
