"""``report.html``: the delivery report as one self-contained page (no network needed).

Figures (:mod:`labelgate.reports.plots`) are PNGs inlined as ``data:`` URIs beside the
tables they illustrate; the page loads nothing else, so it reads the same offline, from an
e-mail attachment or from an archive years later.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from labelgate.reports.plots import FIGURES, OPTIONAL_FIGURES, render_figures

__all__ = ["render_html"]

#: What each figure shows, for its caption and its alt text.
_CAPTIONS = {
    "gate_timeline": "Each row is one batch in one rework cycle; each cell the last verdict "
    "of that stage's gate (✓ passed, ✗ failed and sent to rework, … waiting) with the "
    "measured value. Blank cells were not reached in that cycle.",
    "iou_box_plots": "IoU of every honeypot object with its reference answer, paired at IoU "
    "≥ 0.1 so that loose boxes show: box p25–p75, line median, whiskers p10–p90; ◆ the "
    "class's IoU tier. A box left of its ◆ means the class misses its tier; a wide box "
    "means spread, a shifted one a shared bias.",
    "annotator_scatter": "Left: each annotator's mean box width and height relative to the "
    "reference on honeypots (right/up: looser boxes). Right: mean honeypot IoU against its "
    "standard deviation (bottom right: accurate and steady).",
    "missing_by_density": "Share of reference objects with no match at the class tier, by "
    "how many reference objects the image holds; whisker: one-sided 95 % Clopper-Pearson "
    "upper bound.",
    "defect_pareto": "Defects found (review, adjudication, QA) by type, most frequent first, "
    "stacked by the cohort of the annotator who made them; line: cumulative share.",
    "qa_oc_curve": "Probability that the QA gate releases a batch whose true defect rate is "
    "p: the spec's zero-acceptance design plan and each QA evaluation as it ran (its sample "
    "size n and the most defects c its upper bound still releases).",
    "cost_waterfall": "Expected program cost by category (rework-inclusive model), for this "
    "program at its measured defect rates and for a crowd and a managed cohort on the same "
    "volume and price; where work time was logged, the same program priced from its "
    "measured hours (downstream: the model's estimate).",
    "rework_cycles": "Objects labelled and defects found per batch in the first pass and in "
    "each rework cycle.",
    "prelabel_time": "Left: the share of each batch's model proposals that annotators "
    "accepted as they were, adjusted (class or geometry changed) or rejected, with counts. "
    "Right: measured active seconds per task labelled from scratch, for the control group "
    "(no proposals) and the pre-labelled tasks, and the seconds saved per task with its "
    "Welch interval (share saved in brackets).",
    "active_learning": "Share of the model's errors (missed, false and swapped objects) that "
    "sit on the images labelled so far, when each strategy picks the images to label next, "
    "against random selection (dashed): the steeper, the fewer images to label for the same "
    "correction. Lines: mean over seeds; bands: their range.",
}
_TITLES = {key: title for key, title, _ in (*FIGURES, *OPTIONAL_FIGURES)}

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
figure { margin: .8rem 0 1.2rem; } figure img { width: 100%; height: auto; display: block; }
figcaption { color: #57606a; font-size: 13px; margin-top: .35rem; max-width: 75ch; }
.empty { color: #57606a; font-style: italic; }
summary { cursor: pointer; color: #0969da; margin: .4rem 0; }
"""


def _figure(figures: dict[str, bytes], key: str, missing: str) -> str:
    """The figure as an inline PNG with its caption, or why there is none."""
    png = figures.get(key)
    if png is None:
        return f'<p class="empty">{html.escape(_TITLES.get(key, key))}: {html.escape(missing)}</p>'
    data = base64.b64encode(png).decode("ascii")
    caption = html.escape(_CAPTIONS.get(key, ""))
    return (
        f'<figure id="fig-{key}"><img src="data:image/png;base64,{data}" '
        f'alt="{html.escape(_TITLES.get(key, key))}. {caption}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


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


def render_html(report: dict[str, Any], figures: dict[str, bytes] | None = None) -> str:
    """The report document as HTML: gates, quality, annotators, defects, QA, cost, rework.

    ``figures`` are PNGs by key (:data:`labelgate.reports.plots.FIGURES`); drawn from the
    report when not given.
    """
    if figures is None:
        figures = render_figures(report)
    parts: list[str] = []
    project = html.escape(str(report.get("project", "")))
    spec = report.get("spec", {})
    parts.append(f"<h1>labelgate delivery report: {project}</h1>")
    parts.append(
        f'<p class="sub">spec version {_fmt(spec.get("version"))} · digest '
        f"{html.escape(str(spec.get('digest', ''))[:12])} · audit chain "
        f"{_audit(report)}{_generated(report)}</p>"
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
    measured = cost.get("measured") or {}
    if measured.get("total_usd") is not None:
        cards.append(("measured total (work log)", f"${measured['total_usd']:,.2f}"))
    parts.append(
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{v}</b>{html.escape(k)}</div>' for k, v in cards)
        + "</div>"
    )

    parts.append("<h2>Gate timeline</h2>")
    parts.append(_figure(figures, "gate_timeline", "no gate has been evaluated yet"))
    evaluations = len(report.get("stages", []))
    if evaluations > 30:  # a long program: the figure summarises, the table is one click away
        parts.append(f"<details><summary>all {evaluations:,} gate evaluations</summary>")
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
    if evaluations > 30:
        parts.append("</details>")

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
    parts.append(_figure(figures, "iou_box_plots", "no honeypot or gold answers yet"))
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
    parts.append(_figure(figures, "annotator_scatter", "no annotator has honeypot answers yet"))

    parts.append("<h2>Missing objects by scene density</h2>")
    parts.append(_figure(figures, "missing_by_density", "no honeypot answers yet"))
    parts.append(_density_table(quality))

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
    parts.append(_figure(figures, "defect_pareto", "no defects recorded"))

    parts.append("<h2>Root causes: what to fix in the guideline</h2>")
    hints = quality.get("root_causes") or []
    if hints:
        parts.append(
            "<ul>"
            + "".join(
                f"<li><b>{html.escape(str(h['kind']).replace('_', ' '))}</b> "
                f"({html.escape(str(h['subject']))}): {html.escape(h['guideline'])}</li>"
                for h in hints
            )
            + "</ul>"
        )
    else:
        parts.append(
            '<p class="sub">No confused class pair, class below 0.70 agreement, biased '
            "annotator or density-dependent miss rate with enough support.</p>"
        )

    calibration = quality.get("calibration") or {}
    parts.append("<h2>Tier calibration (blind double annotation)</h2>")
    rows = calibration.get("per_class") or []
    if rows:
        parts.append(
            _table(
                [
                    "class",
                    "pairs",
                    "IoU p10",
                    "IoU median",
                    "spec threshold",
                    "share meeting it",
                    "recommended",
                    "false precision",
                ],
                [
                    [
                        _fmt(r["name"]),
                        _fmt(r["pairs"]),
                        _fmt((r.get("iou") or {}).get("p10")),
                        _fmt((r.get("iou") or {}).get("median")),
                        _fmt(r.get("iou_threshold"), 2),
                        _fmt(r.get("share_meeting_threshold")),
                        _fmt(
                            f"{r['recommended_tier']} {r['recommended_iou_threshold']:.2f}"
                            if r.get("recommended_tier")
                            else None
                        ),
                        '<span class="fail">yes</span>' if r.get("false_precision") else "no",
                    ]
                    for r in rows
                ],
                numeric={1, 2, 3, 4, 5},
            )
        )
    else:
        parts.append('<p class="sub">No item was annotated twice: nothing to calibrate.</p>')

    parts.append("<h2>QA sampling plan</h2>")
    parts.append(_figure(figures, "qa_oc_curve", "no QA plan"))
    parts.append(_qa_table(report.get("qa_plan") or {}))

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
    parts.append(_measured_table(cost.get("measured") or {}))
    parts.append(_figure(figures, "cost_waterfall", "no objects labelled yet"))
    parts.append(_cohort_table(cost.get("cohorts") or {}))

    parts.append("<h2>Rework cycles</h2>")
    parts.append(_figure(figures, "rework_cycles", "no work submitted yet"))
    parts.append(
        _table(
            ["batch", "cycle", "tasks", "objects labelled", "defects found"],
            [
                [
                    _fmt(r["batch"]),
                    _fmt(r["cycle"]),
                    _fmt(r["tasks"]),
                    _fmt(r["objects"]),
                    _fmt(r["defects"]),
                ]
                for r in report.get("rework") or []
            ],
            numeric={1, 2, 3, 4},
        )
    )

    parts.append(_prelabel(batches, figures))
    parts.append(_active_learning(report.get("active_learning") or {}, figures))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>labelgate report: {project}</title><style>{_CSS}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _interval(entry: dict[str, Any] | None, scale: float = 1.0, unit: str = "") -> str:
    """``estimate [low, high]`` of a metrics interval, or why there is none."""
    if not entry:
        return '<span class="empty">not measurable</span>'
    digits = 1
    low, high = entry["ci_low"] * scale, entry["ci_high"] * scale
    return (
        f"{entry['estimate'] * scale:,.{digits}f}{unit} "
        f"[{low:,.{digits}f}, {high:,.{digits}f}]{unit}"
    )


def _prelabel(batches: list[dict[str, Any]], figures: dict[str, bytes]) -> str:
    """Pre-labeling per batch: what annotators did with the proposals, and the time saved."""
    out = ["<h2>Pre-labeling: proposals reviewed and time saved</h2>"]
    done = [(b["name"], b["prelabel"]) for b in batches if b.get("prelabel")]
    if not done:
        out.append('<p class="empty">No batch was pre-labelled.</p>')
        return "".join(out)
    out.append(
        '<p class="sub">Each proposal is accepted (kept as it was), adjusted (class or geometry '
        "changed; IoU of the final object with the proposal) or rejected (deleted) before its "
        "task can be submitted. Precision and recall compare the proposals with the labels "
        "submitted over them at each class's IoU tier.</p>"
    )
    out.append(_figure(figures, "prelabel_time", "not drawn"))
    rows = []
    for name, m in done:
        iou = m.get("adjustment_iou") or {}
        rows.append(
            [
                _fmt(name),
                _fmt(m["proposals"]),
                _share(m.get("acceptance_rate")),
                _share(m.get("adjust_rate")),
                _share(m.get("reject_rate")),
                f"{_fmt(iou.get('median'))} / {_fmt(iou.get('p10'))}",
                _fmt(m.get("precision")),
                _fmt(m.get("recall")),
            ]
        )
    out.append(
        _table(
            [
                "batch",
                "proposals",
                "accepted",
                "adjusted",
                "rejected",
                "adjusted IoU median / p10",
                "precision",
                "recall",
            ],
            rows,
            numeric={1, 2, 3, 4, 5, 6, 7},
        )
    )
    level = next((m["time"].get("confidence") for _, m in done), 0.95) or 0.95
    out.append(
        '<p class="sub">Time per task is the annotators\' measured active time (the editor '
        "reports it with each save) on tasks labelled from scratch, pre-labelled against the "
        f"control group that got no proposals; intervals at {100 * level:.0f} %: Welch's t for "
        "the seconds saved, a percentile bootstrap for the share saved.</p>"
    )
    time_rows = []
    for name, m in done:
        time = m["time"]
        pre, control = time["prelabelled"], time["control"]
        time_rows.append(
            [
                _fmt(name),
                f"{_fmt(pre.get('seconds_per_task'), 1)} (n={_fmt(pre['tasks'])})",
                f"{_fmt(control.get('seconds_per_task'), 1)} (n={_fmt(control['tasks'])})",
                _interval(time.get("seconds_saved_per_task"), unit=" s"),
                _interval(time.get("time_saved_fraction"), scale=100.0, unit=" %"),
            ]
        )
    out.append(
        _table(
            [
                "batch",
                "s per task, pre-labelled",
                "s per task, control",
                "seconds saved per task",
                "time saved",
            ],
            time_rows,
            numeric={1, 2, 3, 4},
        )
    )
    return "".join(out)


def _active_learning(al: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The active-learning section: where the curves come from, the figure, the last round."""
    out = ["<h2>Active learning: which images to label next</h2>"]
    if al.get("note"):
        css = "empty" if al.get("source") != "program" else "sub"
        out.append(f'<p class="{css}">{html.escape(al["note"])}</p>')
    out.append(_figure(figures, "active_learning", "no selection curves"))
    labelled = al.get("images_labeled") or []
    if labelled:
        last = len(labelled) - 1
        rows = [
            [
                _fmt(row["strategy"]),
                f"{row['mean'][last]:.1%}",
                f"{row['low'][last]:.1%} – {row['high'][last]:.1%}",
                _fmt(row.get("gain"), 2),
            ]
            for row in al.get("strategies") or []
        ]
        random = al["random"]
        rows.append(
            [
                "random",
                f"{random['mean'][last]:.1%}",
                f"{random['low'][last]:.1%} – {random['high'][last]:.1%}",
                "1.00",
            ]
        )
        out.append(
            _table(
                [
                    "strategy",
                    f"errors found after {labelled[last]:,} images",
                    "range over seeds",
                    "x random",
                ],
                rows,
                numeric={1, 3},
            )
        )
    return "".join(out)


def _audit(report: dict[str, Any]) -> str:
    audit = report.get("audit")
    if audit is None:
        return "not checked"
    if audit.get("ok"):
        return f"intact ({_fmt(audit.get('events'))} events)"
    return '<span class="fail">BROKEN</span>'


def _generated(report: dict[str, Any]) -> str:
    at = report.get("generated_at")
    return f" · computed at {html.escape(str(at))}" if at else ""


def _density_table(quality: dict[str, Any]) -> str:
    truth = {
        r["bucket"]: r for r in (quality.get("delivered_vs_truth") or {}).get("by_density") or []
    }
    headers = ["objects per image", "honeypot objects", "missed", "missed rate"]
    if truth:
        headers += ["delivered vs truth: objects", "missed", "missed rate"]
    rows = []
    for r in quality.get("by_density") or []:
        row = [
            _fmt(r["bucket"]),
            _fmt(r["ref_count"]),
            _fmt(r["missed"]),
            _fmt(r["missed_rate"], 4),
        ]
        if truth:
            t = truth.get(r["bucket"], {})
            n = t.get("ref_count", 0)
            rate = t.get("missed", 0) / n if n else None
            row += [_fmt(n), _fmt(t.get("missed")), _fmt(rate, 4)]
        rows.append(row)
    return _table(headers, rows, numeric=set(range(1, len(headers)))) if rows else ""


def _qa_table(qa: dict[str, Any]) -> str:
    if not qa or not qa.get("design"):
        return ""
    design = qa["design"]
    intro = (
        f'<p class="sub">Release only when the {qa["confidence"]:.0%} upper bound on the '
        f"defect rate ({html.escape(qa['unit'])}s) is at most {qa['limit']:.2%}. Design plan: "
        f"inspect {design['sample_size']:,}, release on {design['acceptance_number']} defects; "
        f"a batch exactly at the limit is released with probability "
        f"{design['consumer_risk']:.3f}.</p>"
    )
    rows = [
        [
            _fmt(r["batch"]),
            _fmt(r["cycle"]),
            _fmt(r["sample_size"]),
            _fmt(r["acceptance_number"]),
            _fmt(r["defects"]),
            _fmt(r["defect_rate"], 4),
            _fmt(r["upper_bound"], 4),
            _fmt(r["decision"]),
        ]
        for r in qa.get("as_run", [])
    ]
    return intro + _table(
        ["batch", "cycle", "sampled n", "accept ≤ c", "defects", "rate", "upper bound", "decision"],
        rows,
        numeric={1, 2, 3, 4, 5, 6},
    )


def _measured_table(measured: dict[str, Any]) -> str:
    """The program priced from its work log, beside the model (docs/cost.md)."""
    if not measured:
        return ""
    ratios = measured.get("ratio_by_category") or {}
    categories = (
        ("direct annotation", "direct_usd", "direct_hours"),
        ("QA / review", "qa_review_usd", "qa_review_hours"),
        ("rework cycles", "rework_usd", "rework_hours"),
        ("downstream remediation (model)", "downstream_usd", None),
    )
    rows = [
        [title, _fmt(measured[usd], 2), _fmt(measured[hours], 2) if hours else "—",
         _fmt(ratios.get(usd), 2)]
        for title, usd, hours in categories
    ]  # fmt: skip
    rows.append(
        [
            "<b>total</b>",
            f"<b>{_fmt(measured['total_usd'], 2)}</b>",
            _fmt(measured["total_hours"], 2),
            _fmt(measured.get("ratio_to_model"), 2),
        ]
    )
    cycles = _table(
        ["rework cycle", "items re-labelled", "hours", "USD"],
        [
            [_fmt(c["cycle"]), _fmt(c["units"]), _fmt(c["hours"], 2), _fmt(c["usd"], 2)]
            for c in measured.get("rework_cycles") or []
        ],
        numeric={0, 1, 2, 3},
    )
    return (
        "<h3>Measured: the work log priced</h3>"
        + _table(["category", "USD", "hours", "× model"], rows, numeric={1, 2, 3})
        + f'<p class="sub">Logged hours at ${_fmt(measured["annotator_hourly_usd"], 2)}/h '
        f"(annotation, rework) and ${_fmt(measured['review_hourly_usd'], 2)}/h (review, QA, "
        "adjudication), times each person's pool price multiple; a batch's first QA pass is "
        "overhead, all later work is rework. Hidden cost over direct: "
        f"{_fmt(measured.get('hidden_cost_fraction'))}.</p>"
        + (cycles if measured.get("rework_cycles") else "")
    )


def _cohort_table(cohorts: dict[str, Any]) -> str:
    if not cohorts:
        return ""
    rows = [
        [
            _fmt(name),
            _fmt(c.get("rates")),
            _fmt(c["price_multiple"], 2),
            _fmt(c["defect_rate"], 4),
            _fmt(c["total_usd"], 2),
            _fmt(c["hidden_cost_fraction"]),
            _fmt(c["escaped_defects"], 1),
        ]
        for name, c in ((n, cohorts[n]) for n in ("crowd", "managed") if n in cohorts)
    ]
    breakeven = cohorts.get("break_even_remediation_usd_per_defect")
    note = (
        f'<p class="sub">Cheaper here: <b>{html.escape(str(cohorts.get("cheaper")))}</b>, by '
        f"${_fmt(cohorts.get('saving_usd'), 2)}. "
        + (
            f"Above ${_fmt(breakeven, 2)} of downstream cost per escaped defect the cohort "
            "with fewer escapes is cheaper.</p>"
            if breakeven is not None
            else "</p>"
        )
    )
    return (
        _table(
            ["cohort", "rates", "price ×", "defect rate", "total USD", "hidden", "escaped defects"],
            rows,
            numeric={2, 3, 4, 5, 6},
        )
        + note
    )
