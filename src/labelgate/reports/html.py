"""``report.html``: the delivery report as one self-contained page (no network needed)."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["render_html"]

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1d232a; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; font-size: 1.2rem;
     border-bottom: 1px solid #d8dee4; padding-bottom: .3rem; }
.sub { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: 13px; }
th, td { text-align: left; padding: .32rem .55rem; border-bottom: 1px solid #eaeef2; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.wait { color: #9a6700; } .cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #d8dee4; border-radius: 8px; padding: .7rem 1rem; min-width: 150px; }
.card b { display: block; font-size: 1.35rem; }
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(
        f'<th class="num">{html.escape(h)}</th>' if i in numeric else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(entry: dict[str, Any]) -> str:
    if entry["passed"]:
        return '<span class="pass">passed</span>'
    outcome = entry.get("outcome") or "failed"
    css = "wait" if outcome == "waiting" else "fail"
    return f'<span class="{css}">{html.escape(outcome)}</span>'


def render_html(report: dict[str, Any]) -> str:
    """The report document as HTML: gates, quality, annotators, defects, cost."""
    parts: list[str] = []
    project = html.escape(str(report.get("project", "")))
    spec = report.get("spec", {})
    parts.append(f"<h1>labelgate delivery report: {project}</h1>")
    parts.append(
        f'<p class="sub">spec version {_fmt(spec.get("version"))} · digest '
        f"{html.escape(str(spec.get('digest', ''))[:12])} · audit chain "
        f"{'intact' if report.get('audit', {}).get('ok') else 'BROKEN'}</p>"
    )
    batches = report.get("batches", [])
    cost = report.get("cost", {})
    model = cost.get("model", {})
    truth = report.get("quality", {}).get("delivered_vs_truth", {}).get("overall", {})
    cards = [
        (
            "batches delivered",
            f"{sum(b['state'] == 'delivered' for b in batches)} / {len(batches)}",
        ),
        ("rework cycles", _fmt(sum(b["rework_cycles"] for b in batches))),
        ("defects found", _fmt(report.get("defects", {}).get("total"))),
        ("delivered F1 vs truth", _fmt(truth.get("f1"))),
        ("modelled total", f"${model['total_usd']:,.2f}" if model else "—"),
    ]
    parts.append(
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{v}</b>{html.escape(k)}</div>' for k, v in cards)
        + "</div>"
    )

    parts.append("<h2>Gate timeline</h2>")
    parts.append(
        _table(
            ["batch", "cycle", "stage", "gate", "value", "threshold", "verdict"],
            [
                [
                    _fmt(g["batch"]),
                    _fmt(g["cycle"]),
                    _fmt(g["name"]),
                    _fmt(g["gate"]),
                    _fmt(g["value"], 4),
                    _fmt(g["threshold"], 4),
                    _verdict(g),
                ]
                for g in report.get("stages", [])
            ],
            numeric={1, 4, 5},
        )
    )

    quality = report.get("quality", {})
    parts.append("<h2>Per-class quality (honeypots against their reference answers)</h2>")
    parts.append(
        _table(
            ["class", "threshold", "objects", "precision", "recall", "F1", "IoU p10", "IoU median"],
            [
                [
                    _fmt(c["name"]),
                    _fmt(c.get("iou_threshold"), 2),
                    _fmt(c["ref_count"]),
                    _fmt(c["precision"]),
                    _fmt(c["recall"]),
                    _fmt(c["f1"]),
                    _fmt((c.get("iou") or {}).get("p10")),
                    _fmt((c.get("iou") or {}).get("median")),
                ]
                for c in quality.get("per_class", [])
            ],
            numeric={1, 2, 3, 4, 5, 6, 7},
        )
    )
    parts.append("<h2>Annotators</h2>")
    parts.append(
        _table(
            [
                "annotator",
                "cohort",
                "pilot score",
                "qualified",
                "honeypot F1",
                "objects",
                "defect rate",
                "rework tasks",
            ],
            [
                [
                    _fmt(a["annotator"]),
                    _fmt(a["cohort"]),
                    _fmt((a.get("qualification") or {}).get("score")),
                    _fmt((a.get("qualification") or {}).get("passed")),
                    _fmt(a.get("honeypot_f1")),
                    _fmt(a["objects_labelled"]),
                    _fmt(a.get("defect_rate"), 4),
                    _fmt(a["rework_tasks"]),
                ]
                for a in quality.get("per_annotator", [])
            ],
            numeric={2, 4, 5, 6, 7},
        )
    )

    defects = report.get("defects", {})
    cohorts = defects.get("by_type_and_cohort", {})
    kinds = sorted({k for counts in cohorts.values() for k in counts})
    parts.append("<h2>Defects by type and annotator cohort</h2>")
    parts.append(
        _table(
            ["cohort", *kinds, "total"],
            [
                [_fmt(c), *[_fmt(counts.get(k, 0)) for k in kinds], _fmt(sum(counts.values()))]
                for c, counts in cohorts.items()
            ],
            numeric=set(range(1, len(kinds) + 2)),
        )
    )

    if model:
        parts.append("<h2>Cost (rework-inclusive model, measured defect rates)</h2>")
        parts.append(
            _table(
                ["category", "USD"],
                [
                    ["direct annotation", _fmt(model["direct_usd"], 2)],
                    ["QA / review", _fmt(model["qa_review_usd"], 2)],
                    ["rework cycles", _fmt(model["rework_usd"], 2)],
                    ["downstream remediation", _fmt(model["downstream_usd"], 2)],
                    ["<b>total</b>", f"<b>{_fmt(model['total_usd'], 2)}</b>"],
                    ["hidden cost over the quoted price", _fmt(model["hidden_cost_fraction"])],
                ],
                numeric={1},
            )
        )
        parts.append(
            f'<p class="sub">{_fmt(cost.get("units"))} first-pass objects at '
            f"${_fmt(cost.get('unit_price_usd'), 3)}; measured first-pass defect rate "
            f"{_fmt(cost.get('measured_defect_rate'), 4)}, rework defect rate "
            f"{_fmt(cost.get('measured_rework_defect_rate'), 4)}; "
            f"{_fmt(cost.get('reworked_objects'))} objects re-labelled in rework.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>labelgate report: {project}</title><style>{_CSS}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )
