// Small inline SVG charts for the pages (no library): the OC curve of a QA sampling plan.
import { fmt } from "./common.js";

const NS = "http://www.w3.org/2000/svg";

/** document.createElementNS with attributes and children (strings become text). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    // through the CSSOM: the pages' CSP refuses style attributes
    if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const pct = (v) => `${(100 * v).toFixed(v < 0.1 ? 1 : 0)} %`;

/**
 * Operating characteristic: the chance a plan releases a batch at each true defect rate.
 * @param {{rates: number[], oc: number[], limit: number, confidence: number, sample_size: number,
 *          acceptance_number: number, at_limit: number, unit: string}} plan
 */
export function ocCurve(plan, { width = 520, height = 240 } = {}) {
  const left = 46; const right = 14; const top = 14; const bottom = 40;
  const maxRate = plan.rates[plan.rates.length - 1] || 1;
  const x = (r) => left + (r / maxRate) * (width - left - right);
  const y = (p) => top + (1 - p) * (height - top - bottom);
  const c = plan.acceptance_number;
  const title = `OC curve: n = ${plan.sample_size}, c = ${c < 0 ? "none (too small to release)" : c}; released with p = ${fmt(plan.at_limit)} at the limit ${pct(plan.limit)}`;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "oc-curve", "data-n": plan.sample_size, "data-c": c },
    svg("title", {}, title));
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    root.append(svg("line", { x1: left, x2: width - right, y1: y(p), y2: y(p), stroke: "#8886", "stroke-dasharray": p ? "2 3" : null }),
      svg("text", { x: left - 6, y: y(p) + 4, "text-anchor": "end" }, fmt(p, 2)));
  }
  for (let i = 0; i <= 3; i += 1) {
    const r = (maxRate * i) / 3;
    root.append(svg("text", { x: x(r), y: height - bottom + 16, "text-anchor": "middle" }, pct(r)));
  }
  root.append(
    svg("line", { x1: left, x2: left, y1: y(0), y2: y(1), stroke: "currentColor" }),
    svg("text", { x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle" }, `true defect rate of the batch (per ${plan.unit})`),
    svg("text", { x: 12, y: (top + height - bottom) / 2, transform: `rotate(-90 12 ${(top + height - bottom) / 2})`, "text-anchor": "middle" }, "P(release)"),
    // 1 - confidence: the most a plan may release a batch at the limit
    svg("line", { x1: left, x2: width - right, y1: y(1 - plan.confidence), y2: y(1 - plan.confidence), stroke: "#999", "stroke-dasharray": "1 3" }),
    svg("polyline", { class: "oc-line", points: plan.rates.map((r, i) => `${x(r).toFixed(1)},${y(plan.oc[i]).toFixed(1)}`).join(" "), fill: "none", stroke: "#0072B2", "stroke-width": 2.2 }),
    svg("line", { class: "oc-limit", x1: x(plan.limit), x2: x(plan.limit), y1: y(0), y2: y(1), stroke: "#D55E00", "stroke-width": 1.5, "stroke-dasharray": "5 3" }),
    svg("circle", { cx: x(plan.limit), cy: y(plan.at_limit), r: 4, fill: "#D55E00" }),
    svg("text", { class: "oc-limit-label", x: x(plan.limit) + 6, y: top + 12, style: "fill: #D55E00" }, `limit ${pct(plan.limit)}: P(release) = ${fmt(plan.at_limit)}`),
    svg("text", { class: "oc-plan", x: width - right - 4, y: top + 30, "text-anchor": "end" }, `n = ${plan.sample_size}, c = ${c < 0 ? "–" : c}`),
  );
  return root;
}
