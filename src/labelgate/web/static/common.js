// Shared helpers of every page: API calls with the CSRF header, the top bar, toasts.

/** The CSRF token the login set as a readable cookie (the session cookie is HttpOnly). */
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)labelgate_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

/** fetch() against the API: JSON in and out; unsafe methods carry X-CSRF-Token. */
export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin", signal };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (response.status === 401 && !path.startsWith("/api/auth/")) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** document.createElement with attributes and children; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    // through the CSSOM: the pages' CSP refuses style attributes
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let toastTimer = 0;
/** A short message at the bottom of the page, also read out by screen readers. */
export function toast(message) {
  let node = document.getElementById("toast");
  if (!node) {
    node = el("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
    document.body.append(node);
  }
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 3000);
}

/** Fill the page's top bar: crumbs, extra nodes, the user and a logout button. */
export async function topbar(crumbs, ...extra) {
  const bar = document.getElementById("topbar");
  const me = await api("/api/me");
  const logout = el("button", {
    type: "button",
    onclick: async () => {
      try { await api("/api/auth/logout", { method: "POST" }); } finally { location.assign("/login"); }
    },
  }, "Log out");
  const nav = [];
  if (me.roles.some((r) => ["admin", "manager", "auditor"].includes(r))) nav.push(el("a", { href: "/dashboard" }, "Dashboards"));
  if (me.roles.some((r) => ["admin", "manager", "auditor"].includes(r))) nav.push(el("a", { href: "/manage" }, "Manage"));
  if (me.roles.some((r) => ["reviewer", "adjudicator", "admin", "manager"].includes(r))) nav.push(el("a", { href: "/review" }, "Review"));
  nav.push(el("a", { href: "/queue" }, "My queue"));
  const theme = el("button", {
    type: "button", "aria-pressed": String(document.body.classList.contains("dark")),
    onclick: (event) => {
      const dark = document.body.classList.toggle("dark");
      localStorage.setItem("labelgate.theme", dark ? "dark" : "light");
      event.target.setAttribute("aria-pressed", String(dark));
    },
  }, "Dark");
  bar.replaceChildren(
    el("span", { class: "crumbs" }, crumbs), ...nav, ...extra, el("span", { class: "spacer" }),
    theme, el("span", { class: "user", "data-testid": "user" }, `${me.name} (${me.roles.join(", ")})`), logout,
  );
  // QA inspectors: a link to their sampled items, only when they hold QA tasks (not awaited)
  if (me.roles.some((r) => ["reviewer", "admin", "manager"].includes(r))) {
    api("/api/qa").then((rows) => {
      if (!rows.length) return;
      const open = rows.reduce((n, r) => n + r.open, 0);
      const href = rows.length === 1 ? `/qa/${encodeURIComponent(rows[0].project)}/${rows[0].batch_id}` : "/qa";
      bar.querySelector(".crumbs").after(el("a", { href, id: "qa-link" }, `QA inspection (${open} open)`));
    }).catch(() => {});
  }
  return me;
}

if (localStorage.getItem("labelgate.theme") === "dark") document.body.classList.add("dark");

/** "0.93" style numbers; "–" for null. */
export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

/** Okabe-Ito for the first 8 classes, then Tol muted. */
export const PALETTE = [
  "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#FFFFFF",
  "#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499",
];
