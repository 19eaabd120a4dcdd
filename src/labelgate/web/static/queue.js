// My queue: returned work first, then in progress, then new; Enter starts the first task.
import { api, el, topbar } from "./common.js";

const ORDER = { returned: 0, rework: 0, in_progress: 1, assigned: 2, submitted: 3 };
const LABEL = { assigned: "new", in_progress: "in progress", returned: "returned", rework: "returned", submitted: "submitted" };

async function main() {
  await topbar("My queue");
  const body = document.getElementById("queue-body");
  const status = document.getElementById("queue-status");
  let items;
  try {
    const page = await api("/api/me/tasks?limit=1000");
    items = page.items;
    status.textContent = `${page.total} tasks`;
  } catch (exc) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "error" }, `Could not load the queue: ${exc.message} `,
      el("button", { type: "button", onclick: () => location.reload() }, "Retry"))));
    return;
  }
  items.sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || a.task_id - b.task_id);
  sessionStorage.setItem("labelgate.queue", JSON.stringify(items.filter((t) => t.status !== "submitted").map((t) => t.task_id)));
  if (!items.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5 }, "No tasks.")));
    return;
  }
  body.replaceChildren(...items.map((t) => el("tr", { "data-task": t.task_id },
    el("td", {}, t.status === "submitted" ? `#${t.task_id}` : el("a", { href: `/annotate/${t.task_id}` }, `Task #${t.task_id}`)),
    el("td", {}, t.project), el("td", {}, t.batch ?? "–"),
    el("td", {}, LABEL[t.status] ?? t.status), el("td", { class: "num" }, `${t.width}×${t.height}`),
  )));
  const first = items.find((t) => t.status !== "submitted");
  const start = document.getElementById("start-next");
  start.disabled = !first;
  start.addEventListener("click", () => first && location.assign(`/annotate/${first.task_id}`));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && first && document.activeElement === document.body) location.assign(`/annotate/${first.task_id}`);
  });
  start.focus();
}

main();
