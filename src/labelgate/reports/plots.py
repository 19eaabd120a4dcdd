"""The delivery report's figures: one function per figure, report dict in, PNG bytes out.

Every function reads only the report document (:func:`labelgate.reports.program_report.
build_report`), so each plotted number is also in ``report.json``; it returns ``None``
when the document holds nothing to draw. Figures are drawn on a bare
:class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot, no global figure state,
no display, safe in a server thread. ``docs/report.md`` says what each one shows.

Colours are Okabe-Ito (distinguishable with the common colour-vision deficiencies), and
no status is told by colour alone: passed/failed cells carry a mark, cohorts a marker shape.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter
from matplotlib.transforms import Bbox

from labelgate.core._typing import FloatArray
from labelgate.core.sampling import clopper_pearson_upper
from labelgate.workflow.stages import Stage

__all__ = [
    "FIGURES",
    "OPTIONAL_FIGURES",
    "active_learning_curve",
    "annotator_scatter",
    "cost_waterfall",
    "defect_pareto",
    "gate_timeline",
    "iou_box_plots",
    "missing_by_density",
    "prelabel_time",
    "qa_oc_curve",
    "render_figures",
    "rework_cycles",
]

#: Okabe-Ito, in the order colours are handed out.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
INK = "#1d232a"
MUTED = "#57606a"
GRID = "#e3e7eb"
PASS, FAIL, WAIT, IDLE = "#cdebd3", "#f7c9c5", "#fbe7b0", "#f2f4f6"
#: Pixels per inch of the PNGs; figures are 9 in wide, about 1,350 px: sharp on HiDPI
#: screens when the page shows them at its 1,100 px column.
DPI = 150
WIDTH = 9.0
#: Most rows the gate timeline draws, and batches the rework figure draws; the newest are
#: kept (the tables under them list everything).
MAX_ROWS = 24
MAX_BATCHES = 40
#: Points a scatter names; past it, only the :data:`EXTREMES` farthest out are named.
MAX_NAMED = 12
EXTREMES = 6

# Any: matplotlib's stubs key rc_context by a Literal of every rcParam name, which a plain
# dict of strings never satisfies
_STYLE: Any = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same look on every machine
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 8.0,
    "axes.labelsize": 9.5,
    "axes.labelcolor": INK,
    "axes.edgecolor": "#8c959f",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "text.color": INK,
    "svg.fonttype": "none",
}


@contextmanager
def _figure(height: float, ncols: int = 1, **kwargs: Any) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure of ``ncols`` axes in the house style (``layout="constrained"``)."""
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, ncols, squeeze=False, **kwargs)[0]
        yield figure, list(axes)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # no Software/date chunks: the same report draws the same bytes
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return buffer.getvalue()


def _percent(digits: int = 0) -> PercentFormatter:
    return PercentFormatter(xmax=1.0, decimals=digits)


def _fmt_value(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _fmt_against(value: float | None, threshold: float | None) -> str:
    """``value`` with enough digits that it never reads as its threshold when it differs.

    >>> _fmt_against(0.9795, 0.98), _fmt_against(0.98, 0.98), _fmt_against(0.5, None)
    ('0.9795', '0.98', '0.5')
    """
    text = _fmt_value(value)
    if value is None or threshold is None or value == threshold or abs(value) >= 100:
        return text
    for digits in range(4, 8):
        if text != _fmt_value(threshold):
            break
        text = f"{value:.{digits}g}"
    return text


# --- gate timeline ---------------------------------------------------------------------------

_STAGES = [s.value for s in Stage if s is not Stage.DELIVERED]


def gate_timeline(report: dict[str, Any]) -> bytes | None:
    """Batches x cycles down, the seven stages across; each cell the gate's last verdict.

    A cell reads ``✓ value`` (passed), ``✗ value`` (failed: rework) or ``… value``
    (waiting); blank cells were never reached in that cycle.
    """
    stages = report.get("stages") or []
    if not stages:
        return None
    rows: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for g in stages:  # in evaluation order: the last evaluation of a cell wins
        rows.setdefault((g["batch"], int(g["cycle"])), {})[g["name"]] = g
    keys = list(rows)[-MAX_ROWS:]
    columns = [s for s in _STAGES if any(s in rows[k] for k in keys)] + sorted(
        {n for k in keys for n in rows[k]} - set(_STAGES)
    )
    colours = np.full((len(keys), len(columns)), IDLE, dtype=object)
    labels = np.full((len(keys), len(columns)), "", dtype=object)
    for i, key in enumerate(keys):
        for j, stage in enumerate(columns):
            g = rows[key].get(stage)
            if g is None:
                continue
            waiting = not g["passed"] and g.get("outcome") == "waiting"
            mark = "✓" if g["passed"] else ("…" if waiting else "✗")
            colours[i, j] = PASS if g["passed"] else (WAIT if waiting else FAIL)
            labels[i, j] = f"{mark} {_fmt_against(g['value'], g['threshold'])}"
    thresholds = {g["name"]: g["threshold"] for g in stages}  # the last one in force
    headers = [
        f"{s}\nthreshold {_fmt_value(thresholds[s])}" if thresholds.get(s) is not None else s
        for s in columns
    ]
    height = 1.2 + 0.32 * len(keys)
    with _figure(height) as (figure, (ax,)):
        ax.grid(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        table = ax.table(
            cellText=labels.tolist(),
            cellColours=colours.tolist(),
            rowLabels=[f"{b} · cycle {c}" for b, c in keys],
            colLabels=headers,
            cellLoc="center",
            loc="upper center",
            bbox=Bbox.from_bounds(0.16, 0.0, 0.84, 1.0),
        )
        table.auto_set_font_size(False)
        table.set_fontsize(8.5)
        for cell in table.get_celld().values():
            cell.set_edgecolor("white")
            cell.set_linewidth(1.5)
        for (r, c), cell in table.get_celld().items():
            if r == 0:
                cell.set_text_props(weight="bold", fontsize=8)
                cell.set_facecolor("white")
                cell.set_height(cell.get_height() * 1.6)
            if c == -1:
                cell.set_facecolor("white")
                cell.set_text_props(ha="right")
        ax.set_axis_off()
        shown = "" if len(keys) == len(rows) else f" (newest {len(keys)} of {len(rows)} rows)"
        ax.set_title(f"Gate verdicts per batch and rework cycle{shown}", pad=14)
        return _png(figure)


# --- per-class IoU ---------------------------------------------------------------------------


def iou_box_plots(report: dict[str, Any]) -> bytes | None:
    """Per class: box p25-p75, median, whiskers p10-p90 of honeypot IoU; the tier as ◆.

    Classes with no paired objects are listed with "no pairs" rather than a box.
    """
    rows = (report.get("quality") or {}).get("iou_distribution") or []
    if not rows:
        return None
    rows = rows[::-1]  # first class on top
    y = np.arange(len(rows), dtype=np.float64)
    quantile = {
        key: np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=np.float64)
        for key in ("p10", "p25", "median", "p75", "p90", "min")
    }
    tier = np.array(
        [np.nan if r["iou_threshold"] is None else r["iou_threshold"] for r in rows],
        dtype=np.float64,
    )
    drawn = ~np.isnan(quantile["median"])
    low = np.nanmin(np.concatenate([quantile["p10"], tier, [0.9]]))
    left = max(0.0, math.floor((low - 0.03) * 20) / 20)
    height = 0.9 + 0.36 * len(rows)
    with _figure(max(height, 2.2)) as (figure, (ax,)):
        ax.hlines(y[drawn], quantile["p10"][drawn], quantile["p90"][drawn], color=MUTED, lw=1.2)
        ax.vlines(
            np.concatenate([quantile["p10"][drawn], quantile["p90"][drawn]]),
            np.concatenate([y[drawn] - 0.15, y[drawn] - 0.15]),
            np.concatenate([y[drawn] + 0.15, y[drawn] + 0.15]),
            color=MUTED,
            lw=1.2,
        )
        ax.barh(
            y[drawn],
            (quantile["p75"] - quantile["p25"])[drawn],
            left=quantile["p25"][drawn],
            height=0.56,
            color="#cfe3f3",
            edgecolor=PALETTE[0],
            lw=1.2,
            zorder=2,
        )
        ax.vlines(
            quantile["median"][drawn], y[drawn] - 0.28, y[drawn] + 0.28, color=INK, lw=2, zorder=3
        )
        ax.scatter(tier, y, marker="D", s=28, color=PALETTE[3], zorder=4, label="class IoU tier")
        ax.set_yticks(y, [r["name"] for r in rows])
        ax.set_xlim(left, 1.0)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("IoU with the reference answer")
        for k, r in enumerate(rows):  # one note per class, in a column right of the axes
            note = (
                f"n={r['paired']:,} · {r['below_threshold']:,} below tier"
                if drawn[k]
                else f"no pairs ({r['ref_count']:,} ref.)"
            )
            ax.annotate(
                note,
                (1.0, y[k]),
                xycoords=("axes fraction", "data"),
                xytext=(10, 0),
                textcoords="offset points",
                ha="left",
                va="center",
                fontsize=8,
                color=MUTED,
                annotation_clip=False,
            )
        handles = [
            Patch(facecolor="#cfe3f3", edgecolor=PALETTE[0], label="p25–p75 (line: median)"),
            Line2D([], [], color=MUTED, label="whiskers: p10–p90"),
            Line2D([], [], color=PALETTE[3], marker="D", ls="", label="class tier (threshold)"),
        ]
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3)
        ax.set_title("IoU of honeypot objects against their reference, per class", pad=24)
        return _png(figure)


# --- annotators ------------------------------------------------------------------------------


def annotator_scatter(report: dict[str, Any]) -> bytes | None:
    """Left: box-size bias (width vs height, % over the reference); right: IoU mean vs spread.

    One point per annotator with honeypot answers, shaped and coloured by cohort.
    """
    people = [
        a
        for a in (report.get("quality") or {}).get("per_annotator") or []
        if a.get("honeypot_bias") and a.get("honeypot_iou")
    ]
    people = [
        a
        for a in people
        if a["honeypot_bias"].get("log_width_ratio") is not None
        and a["honeypot_iou"].get("mean") is not None
    ]
    if not people:
        return None
    width = 100 * np.expm1([a["honeypot_bias"]["log_width_ratio"] for a in people])
    height_bias = 100 * np.expm1([a["honeypot_bias"]["log_height_ratio"] for a in people])
    mean = np.array([a["honeypot_iou"]["mean"] for a in people], dtype=np.float64)
    spread = np.sqrt(
        np.array([a["honeypot_iou"].get("variance") or 0.0 for a in people], dtype=np.float64)
    )
    cohorts = sorted({a.get("cohort") or "unknown" for a in people})
    cohort_of = np.array([cohorts.index(a.get("cohort") or "unknown") for a in people])
    names = [a["annotator"] for a in people]
    with _figure(4.0, ncols=2) as (figure, (bias_ax, spread_ax)):
        for k, cohort in enumerate(cohorts):
            mine = cohort_of == k
            style: dict[str, Any] = {
                "color": PALETTE[k % len(PALETTE)],
                "marker": MARKERS[k % len(MARKERS)],
                "s": 46,
                "edgecolor": "white",
                "linewidth": 0.6,
                "zorder": 3,
            }
            bias_ax.scatter(width[mine], height_bias[mine], label=cohort, **style)
            spread_ax.scatter(mean[mine], spread[mine], label=cohort, **style)
        reach = max(2.0, float(np.max(np.abs(np.concatenate([width, height_bias])))) * 1.25)
        bias_ax.set_xlim(-reach, reach)
        bias_ax.set_ylim(-reach, reach)
        bias_ax.axhline(0, color="#8c959f", lw=0.8)
        bias_ax.axvline(0, color="#8c959f", lw=0.8)
        for x, y, text, ha, va in (
            (0.98, 0.98, "looser", "right", "top"),
            (0.02, 0.02, "tighter", "left", "bottom"),
        ):
            bias_ax.text(x, y, text, transform=bias_ax.transAxes, ha=ha, va=va, color=MUTED)
        bias_ax.set_xlabel("width vs reference (mean over honeypot pairs)")
        bias_ax.set_ylabel("height vs reference")
        digits = 1 if reach < 5 else 0
        signed = FuncFormatter(lambda v, _: "0%" if abs(v) < 1e-9 else f"{v:+.{digits}f}%")
        for axis in (bias_ax.xaxis, bias_ax.yaxis):
            axis.set_major_formatter(signed)
            axis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10], symmetric=True))
        bias_ax.set_title("Box-size bias: loose or tight, on which axis?")
        spread_ax.set_xlabel("mean IoU on honeypots (higher is better)")
        spread_ax.set_ylabel("IoU standard deviation (lower is steadier)")
        spread_ax.set_title("IoU level vs consistency")
        spread_ax.set_ylim(bottom=0, top=max(0.01, float(spread.max()) * 1.3))
        spread_ax.margins(x=0.25)
        for ax, xs, ys in ((bias_ax, width, height_bias), (spread_ax, mean, spread)):
            _label_points(ax, names, xs, ys)
        if len(people) > MAX_NAMED:  # in the legend's row, left of it
            figure.text(
                0.005,
                0.995,
                f"{len(people)} annotators; named: the {EXTREMES} farthest from the middle",
                color=MUTED,
                fontsize=8,
                va="top",
            )
        handles, labels = bias_ax.get_legend_handles_labels()
        figure.legend(
            handles,
            [f"cohort: {c}" for c in labels],
            loc="outside upper right",
            ncols=min(len(labels), 5),
        )
        return _png(figure)


def _label_points(ax: Axes, names: list[str], xs: FloatArray, ys: FloatArray) -> None:
    """Name each point on the side facing away from its nearest neighbour.

    Past :data:`MAX_NAMED` points, only the :data:`EXTREMES` farthest from the median are named:
    they are the ones a reader looks for, and more names would cover the points.
    """
    span_x = float(np.ptp(ax.get_xlim())) or 1.0
    span_y = float(np.ptp(ax.get_ylim())) or 1.0
    if len(xs) > MAX_NAMED:
        far = np.hypot((xs - np.median(xs)) / span_x, (ys - np.median(ys)) / span_y)
        keep = np.sort(np.argsort(-far, kind="stable")[:EXTREMES])
        names, xs, ys = [names[k] for k in keep], xs[keep], ys[keep]
    dx = (xs[:, None] - xs[None, :]) / span_x
    dy = (ys[:, None] - ys[None, :]) / span_y
    distance = np.hypot(dx, dy)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argmin(distance, axis=1) if len(xs) > 1 else np.zeros(len(xs), np.int64)
    right = (dx[np.arange(len(xs)), nearest] >= 0) | (len(xs) == 1)
    up = (dy[np.arange(len(xs)), nearest] >= 0) | (len(xs) == 1)
    # near an edge, the name goes inwards: never over the tick labels or off the axes
    low_x, high_x = ax.get_xlim()
    place = (xs - low_x) / (high_x - low_x)
    right = np.where(place < 0.2, True, np.where(place > 0.8, False, right))
    for name, x, y, r, u in zip(names, xs.tolist(), ys.tolist(), right.tolist(), up.tolist()):
        ax.annotate(
            name,
            (x, y),
            xytext=(6 if r else -6, 4 if u else -4),
            textcoords="offset points",
            ha="left" if r else "right",
            va="bottom" if u else "top",
            fontsize=8,
        )


# --- missing rate by density -----------------------------------------------------------------


def missing_by_density(report: dict[str, Any]) -> bytes | None:
    """Share of reference objects missed, per density bucket; whisker: 95 % upper bound.

    Honeypots against their reference answers, and, when the truth is known (the demo),
    what was delivered against it. Buckets with no reference objects say so.
    """
    quality = report.get("quality") or {}
    series = []
    if any(r["ref_count"] for r in quality.get("by_density") or []):
        series.append(("honeypots vs reference", quality["by_density"]))
    truth = (quality.get("delivered_vs_truth") or {}).get("by_density") or []
    if any(r["ref_count"] for r in truth):
        series.append(("delivered vs truth", truth))
    if not series:
        return None
    buckets = [r["bucket"] for r in series[0][1]]
    x = np.arange(len(buckets), dtype=np.float64)
    bar = 0.8 / len(series)
    counts, rates, uppers = [], [], []
    for _, rows in series:
        by_bucket = {r["bucket"]: r for r in rows}
        n = np.array([by_bucket.get(b, {}).get("ref_count", 0) for b in buckets])
        missed = np.array([by_bucket.get(b, {}).get("missed", 0) for b in buckets])
        counts.append(n)
        rates.append(np.divide(missed, n, out=np.zeros(len(n)), where=n > 0))
        uppers.append(
            np.array(
                [
                    clopper_pearson_upper(int(m), int(t), 0.95) if t else 0.0
                    for m, t in zip(missed, n)
                ]
            )
        )
    # a bucket of 8 objects has a 31 % bound: scale to the buckets of >= 30 objects, clip
    # the whiskers of smaller ones and print their bound instead
    n_all, bound_all = np.concatenate(counts), np.concatenate(uppers)
    solid = bound_all[n_all >= 30]
    scale = float(solid.max()) if len(solid) else float(bound_all.max())
    top = max(1.25 * max(scale, float(np.max(rates))), 0.02)
    with _figure(3.4) as (figure, (ax,)):
        for k, (label, _) in enumerate(series):
            n, rate, upper = counts[k], rates[k], uppers[k]
            offset = x + (k - (len(series) - 1) / 2) * bar
            ax.bar(offset, rate, width=bar * 0.92, color=PALETTE[k], label=label, zorder=2)
            shown = np.minimum(upper, top * 0.82)
            ax.errorbar(
                offset[n > 0],
                rate[n > 0],
                yerr=[np.zeros(int((n > 0).sum())), (shown - rate)[n > 0]],
                fmt="none",
                ecolor=INK,
                elinewidth=0.9,
                capsize=3,
                zorder=3,
            )
            for xi, ni, ri, ui, si in zip(offset, n, rate, upper, shown):
                if not ni:
                    continue
                text = f"{ri:.1%}\nn={ni:,}" + (f"\n↑ {ui:.1%}" if ui > si else "")
                ax.annotate(
                    text,
                    (xi, si),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7.5,
                    color=MUTED,
                )
        for xi, *ns in zip(x, *counts):
            if not any(ns):
                ax.annotate(
                    "no objects",
                    (xi, 0),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7.5,
                    color=MUTED,
                )
        ax.set_xticks(x, [f"{b} objects" for b in buckets])
        ax.set_ylim(0, top)
        ax.yaxis.set_major_formatter(_percent(1 if top < 0.05 else 0))
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("reference objects per image")
        ax.set_ylabel("reference objects missed")
        ax.legend(loc="upper left")
        ax.set_title("Missing rate by scene density (whisker: 95 % upper bound)")
        return _png(figure)


# --- defect Pareto ---------------------------------------------------------------------------


def defect_pareto(report: dict[str, Any]) -> bytes | None:
    """Defect types, most frequent first, stacked by annotator cohort; line: cumulative share."""
    cohorts = (report.get("defects") or {}).get("by_type_and_cohort") or {}
    kinds = sorted({k for counts in cohorts.values() for k in counts})
    if not kinds:
        return None
    names = list(cohorts)
    counts = np.array([[cohorts[c].get(k, 0) for k in kinds] for c in names], dtype=np.float64)
    order = np.argsort(-counts.sum(axis=0), kind="stable")
    counts, kinds = counts[:, order], [kinds[i] for i in order]
    totals = counts.sum(axis=0)
    x = np.arange(len(kinds))
    with _figure(3.6) as (figure, (ax,)):
        bottom = np.zeros(len(kinds))
        for k, cohort in enumerate(names):
            ax.bar(
                x,
                counts[k],
                bottom=bottom,
                width=0.62,
                color=PALETTE[k % len(PALETTE)],
                hatch=("", "//", "..", "xx", "\\\\")[k % 5],
                edgecolor="white",
                label=cohort,
                zorder=2,
            )
            bottom += counts[k]
        for xi, total in zip(x, totals):
            # inside a tall bar (the cumulative line passes just above the first one)
            inside = total > 0.2 * totals.max()
            ax.annotate(
                f"{total:,.0f}",
                (xi, total),
                xytext=(0, -4 if inside else 3),
                textcoords="offset points",
                ha="center",
                va="top" if inside else "bottom",
                color="white" if inside else INK,
                fontweight="bold" if inside else "normal",
                fontsize=8.5,
                zorder=4,
            )
        ax.set_xticks(x, [k.replace("_", " ") for k in kinds])
        ax.set_ylabel("defects")
        ax.set_ylim(0, totals.max() * 1.15)
        ax.grid(axis="x", visible=False)
        share = ax.twinx()
        share.plot(x, np.cumsum(totals) / totals.sum(), color=INK, marker="o", ms=4, lw=1.4)
        share.axhline(0.8, color=MUTED, ls="--", lw=0.9)
        share.text(x[-1] + 0.35, 0.8, "80 %", va="bottom", ha="right", color=MUTED, fontsize=8)
        share.set_ylim(0, 1.05)
        share.yaxis.set_major_formatter(_percent())
        share.set_ylabel("cumulative share")
        share.grid(False)
        share.spines["right"].set_visible(True)
        ax.legend(title="annotator cohort", loc="center right", title_fontsize=8.5)
        ax.set_title("Defect Pareto by type and annotator cohort")
        return _png(figure)


# --- QA plan ---------------------------------------------------------------------------------


def qa_oc_curve(report: dict[str, Any]) -> bytes | None:
    """Probability that the QA gate releases a batch, against its true defect rate.

    The spec's zero-acceptance design plan in bold; each QA evaluation as run (its sample
    size and the acceptance number its bound allows) thinner. Dashed: the limit; dotted:
    the consumer risk ``1 - confidence`` that a batch at the limit is released.
    """
    qa = report.get("qa_plan") or {}
    if not qa.get("rates"):
        return None
    rates = np.array(qa["rates"], dtype=np.float64)
    limit, confidence = qa["limit"], qa["confidence"]
    design = qa["design"]
    with _figure(3.6) as (figure, (ax,)):
        seen: set[tuple[int, int, int | None]] = set()
        drawn = 0
        for run in qa.get("as_run", []):
            key = (run["sample_size"], run["acceptance_number"], run["lot_size"])
            if key in seen:
                continue
            seen.add(key)
            label = None
            if drawn < 6:  # past six, the legend would hide the curves
                c = run["acceptance_number"]
                label = f"{run['batch']} cycle {run['cycle']}: n={run['sample_size']:,}, " + (
                    f"c={c}" if c >= 0 else "too small to release"
                )
            ax.plot(
                rates,
                run["oc"],
                color=PALETTE[(1 + drawn) % len(PALETTE)] if drawn < 6 else "#b8bfc6",
                lw=1.2,
                ls=("-", "--", "-.", ":")[drawn % 4],
                label=label,
            )
            drawn += 1
        ax.plot(
            rates,
            qa["oc"],
            color=PALETTE[0],
            lw=2.4,
            label=f"design plan: n={design['sample_size']:,}, c={design['acceptance_number']}",
            zorder=3,
        )
        ax.axvline(limit, color=PALETTE[3], ls="--", lw=1)
        ax.axhline(1 - confidence, color=MUTED, ls=":", lw=1)
        at_limit = float(np.interp(limit, rates, qa["oc"]))
        ax.annotate(
            f"limit {limit:.1%}: released with p = {at_limit:.3f}",
            (limit, at_limit),
            xytext=(8, 18),
            textcoords="offset points",
            color=PALETTE[3],
            fontsize=8.5,
            arrowprops={"arrowstyle": "-", "color": PALETTE[3], "lw": 0.8},
        )
        ax.set_xlim(0, rates.max())
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_formatter(_percent(1))
        ax.set_xlabel(f"true defect rate of the batch (unit: {qa.get('unit', 'object')})")
        ax.set_ylabel("probability QA releases it")
        ax.legend(loc="upper right")
        ax.set_title(
            f"QA plan operating characteristic (limit {limit:.1%} at {confidence:.0%} confidence)"
        )
        return _png(figure)


# --- cost ------------------------------------------------------------------------------------

_COST_STEPS = (
    ("direct", "direct_usd", PALETTE[0]),
    ("QA /\nreview", "qa_review_usd", PALETTE[1]),
    ("rework", "rework_usd", PALETTE[3]),
    ("down-\nstream", "downstream_usd", PALETTE[4]),
)


def cost_waterfall(report: dict[str, Any]) -> bytes | None:
    """Direct → QA → rework → downstream → total, for this program, a crowd and a managed cohort.

    Panels share the USD axis, so totals compare by height.
    """
    cost = report.get("cost") or {}
    panels: list[tuple[str, dict[str, Any]]] = []
    if cost.get("model"):
        panels.append(("this program (measured rates)", cost["model"]))
    if cost.get("measured"):
        panels.append(("this program (measured hours)", cost["measured"]))
    cohorts = cost.get("cohorts") or {}
    for name in ("crowd", "managed"):
        if name in cohorts:
            rates = cohorts[name].get("rates", "")
            panels.append((f"{name} ({rates} rates)", cohorts[name]))
    if not panels:
        return None
    with _figure(3.8, ncols=len(panels), sharey=True) as (figure, axes):
        for ax, (title, model) in zip(axes, panels):
            steps = np.array([model[key] for _, key, _ in _COST_STEPS], dtype=np.float64)
            starts = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
            x = np.arange(len(steps) + 1)
            ax.bar(
                x[:-1],
                steps,
                bottom=starts,
                width=0.66,
                color=[c for _, _, c in _COST_STEPS],
                zorder=2,
            )
            ax.bar(x[-1], steps.sum(), width=0.66, color="#6e7781", zorder=2)
            # connectors from each step's top to the next step's bottom
            ends = np.cumsum(steps)
            ax.hlines(ends, x[:-1] + 0.33, x[1:] - 0.33, color=MUTED, lw=0.8)
            for xi, value, top in zip(x, [*steps, steps.sum()], [*ends, steps.sum()]):
                ax.annotate(
                    f"${value:,.0f}",
                    (xi, top),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7.5,
                )
            ax.set_xticks(
                x,
                [label for label, _, _ in _COST_STEPS] + ["total"],
                fontsize=9 if len(panels) < 4 else 7.5,
            )
            ax.grid(axis="x", visible=False)
            hidden = model.get("hidden_cost_fraction")
            extra = f"\nhidden {hidden:.0%} over direct" if hidden is not None else ""
            ax.set_title(f"{textwrap.fill(title, 22)}{extra}", fontsize=9.5)
        axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.0f}"))
        axes[0].set_ylabel(
            "USD (model expectation; measured: logged hours)"
            if cost.get("measured")
            else "USD (expected, rework-inclusive model)"
        )
        top = max(sum(model[key] for _, key, _ in _COST_STEPS) for _, model in panels)
        axes[0].set_ylim(0, top * 1.12)
        figure.suptitle(
            "Cost waterfall: this program (model, measured hours), crowd vs managed"
            if cost.get("measured")
            else "Cost waterfall: crowd vs managed",
            x=0.01,
            ha="left",
            fontweight="bold",
            fontsize=10.5,
        )
        return _png(figure)


# --- rework ----------------------------------------------------------------------------------


def rework_cycles(report: dict[str, Any]) -> bytes | None:
    """Per batch: objects labelled and defects found in each cycle (0: first pass)."""
    rows = report.get("rework") or []
    if not rows:
        return None
    batches = list(dict.fromkeys(r["batch"] for r in rows))[-MAX_BATCHES:]
    rows = [r for r in rows if r["batch"] in batches]
    cycles = sorted({r["cycle"] for r in rows})
    index = {b: k for k, b in enumerate(batches)}
    # NaN: that batch never reached that cycle (no bar), unlike a cycle with 0 defects
    objects = np.full((len(cycles), len(batches)), np.nan)
    defects = np.full((len(cycles), len(batches)), np.nan)
    for r in rows:
        objects[cycles.index(r["cycle"]), index[r["batch"]]] = r["objects"]
        defects[cycles.index(r["cycle"]), index[r["batch"]]] = r["defects"]
    x = np.arange(len(batches), dtype=np.float64)
    # a few batches: cycles side by side, each labelled; many: cycles stacked in one bar
    stacked = len(batches) > 8
    bar = 0.7 if stacked else 0.8 / len(cycles)
    shades = mpl.colormaps["Blues"](np.linspace(0.85, 0.35, len(cycles)))
    with _figure(3.6, ncols=2) as (figure, axes):
        for ax, values, what in (
            (axes[0], objects, "objects labelled"),
            (axes[1], defects, "defects found"),
        ):
            bottom = np.zeros(len(batches))
            for k, cycle in enumerate(cycles):
                offset = x if stacked else x + (k - (len(cycles) - 1) / 2) * bar
                label = "first pass" if cycle == 0 else f"rework cycle {cycle}"
                ax.bar(
                    offset,
                    values[k],
                    bottom=bottom if stacked else None,
                    width=bar * 0.92,
                    color=shades[k],
                    label=label,
                    zorder=2,
                )
                if stacked:
                    bottom += np.nan_to_num(values[k])
                else:
                    known = ~np.isnan(values[k])
                    for xi, v in zip(offset[known], values[k][known]):
                        ax.annotate(
                            f"{v:,.0f}",
                            (xi, v),
                            xytext=(0, 2),
                            textcoords="offset points",
                            ha="center",
                            fontsize=7.5,
                        )
            every = max(1, math.ceil(len(batches) / 12))  # at most 12 batch names per axis
            ax.set_xticks(x[::every], batches[::every])
            if len(batches) > 4:
                ax.tick_params(axis="x", labelrotation=45)
                for text in ax.get_xticklabels():
                    text.set_horizontalalignment("right")
                    text.set_rotation_mode("anchor")
            ax.grid(axis="x", visible=False)
            ax.set_ylabel(what)
            highest = np.nansum(values, axis=0).max() if stacked else np.nanmax(values)
            ax.set_ylim(0, max(float(highest), 1.0) * 1.15)
            ax.set_title(f"{what.capitalize()} per cycle")
        figure.legend(
            *axes[0].get_legend_handles_labels(), loc="outside upper right", ncols=len(cycles)
        )
        return _png(figure)


# --- active learning --------------------------------------------------------------------------


def active_learning_curve(report: dict[str, Any]) -> bytes | None:
    """Share of the model's errors on the images labelled so far: each strategy vs random.

    Lines are the mean over seeds, bands the lowest to highest seed; random selection is
    the dashed grey line (its band: the spread of the random draws). The title says whether
    the curves were replayed on this program's pre-labels or simulated.
    """
    al = report.get("active_learning") or {}
    if not al.get("strategies") or not al.get("images_labeled"):
        return None
    # every curve starts at the origin: nothing labelled, nothing found
    x = np.r_[0.0, np.array(al["images_labeled"], dtype=np.float64)]

    def curve(values: list[float]) -> FloatArray:
        return np.concatenate([[0.0], np.asarray(values, dtype=np.float64)])

    simulated = al.get("source") != "program"
    seeds = len(al.get("seeds", []))
    with _figure(3.8) as (figure, (ax,)):
        random = al["random"]
        ax.fill_between(
            x, curve(random["low"]), curve(random["high"]), color="#8c959f", alpha=0.18, lw=0
        )
        ax.plot(x, curve(random["mean"]), color=MUTED, ls="--", lw=1.6, label="random selection")
        for i, row in enumerate(al["strategies"]):
            colour = PALETTE[i % len(PALETTE)]
            if row["high"] != row["low"]:
                ax.fill_between(
                    x, curve(row["low"]), curve(row["high"]), color=colour, alpha=0.15, lw=0
                )
            gain = f" ({row['gain']:.1f}x random)" if row.get("gain") is not None else ""
            ax.plot(
                x,
                curve(row["mean"]),
                color=colour,
                marker=MARKERS[i % len(MARKERS)],
                ms=4,
                lw=1.6,
                label=f"{row['strategy']}{gain}",
            )
        ax.set_xlim(0, x.max() * 1.02)
        ax.set_ylim(0, None)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(_percent())
        pool = al.get("pool_images")
        ax.set_xlabel(f"images labelled (of a pool of {pool:,})" if pool else "images labelled")
        ax.set_ylabel("share of the model's errors found")
        ax.legend(loc="upper left")
        where = (
            f"SIMULATED on generated data, {seeds} seeds"
            if simulated
            else "replayed on this program's pre-labels"
        )
        ax.set_title(f"Active learning: label efficiency ({where})")
        band = "bands: lowest to highest seed" if simulated else "band: spread of random draws"
        ax.annotate(
            band,
            (1, 0),
            xycoords="axes fraction",
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            va="bottom",
            color=MUTED,
            fontsize=8,
        )
        return _png(figure)


# --- pre-labeling ------------------------------------------------------------------------------


def prelabel_time(report: dict[str, Any]) -> bytes | None:
    """Per pre-labelled batch: what became of the proposals, and the time saved per task.

    Left: accepted / adjusted / rejected shares of the proposals (stacked, with counts).
    Right: measured seconds per task (tasks labelled from scratch), control against
    pre-labelled, and the seconds saved with its interval written beside them. ``None``
    when no batch was pre-labelled.
    """
    done = [b for b in report.get("batches") or [] if b.get("prelabel")][-MAX_BATCHES:]
    if not done:
        return None
    names = [b["name"] for b in done]
    metrics = [b["prelabel"] for b in done]
    y = np.arange(len(done), dtype=np.float64)[::-1]  # the first batch on top
    kinds = (
        ("accept", "accepted", PALETTE[2]),
        ("adjust", "adjusted", PALETTE[1]),
        ("reject", "rejected", PALETTE[3]),
    )

    def per_task(group: str) -> FloatArray:
        values = [m["time"][group]["seconds_per_task"] for m in metrics]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    control, treated = per_task("control"), per_task("prelabelled")
    with _figure(1.5 + 0.45 * len(done), ncols=2) as (figure, axes):
        ax = axes[0]
        left = np.zeros(len(done))
        totals = np.array([max(m["proposals"], 1) for m in metrics], dtype=np.float64)
        for key, label, colour in kinds:
            counts = np.array([m["decisions"][key] for m in metrics], dtype=np.float64)
            share = counts / totals
            ax.barh(y, share, left=left, height=0.6, color=colour, label=label, zorder=2)
            for yi, xi, s, n in zip(y, left, share, counts):
                if s >= 0.08:  # room for the count inside its bar
                    ax.text(xi + s / 2, yi, f"{n:,.0f}", ha="center", va="center", fontsize=7.5)
            left += share
        ax.set_yticks(y, names)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(_percent())
        ax.grid(axis="y", visible=False)
        ax.set_title("What annotators did with the proposals")

        ax = axes[1]
        bar = 0.36
        ax.barh(y + bar / 2, control, height=bar, color="#8c959f", label="control", zorder=2)
        ax.barh(y - bar / 2, treated, height=bar, color=PALETTE[0], label="pre-labelled", zorder=2)
        known = np.r_[control[np.isfinite(control)], treated[np.isfinite(treated)], 1.0]
        for yi, m in zip(y, metrics):
            saved = m["time"].get("seconds_saved_per_task")
            fraction = m["time"].get("time_saved_fraction")
            if saved is None:
                text = "saved: not measurable"
            else:
                share_text = f" ({100 * fraction['estimate']:.0f} %)" if fraction else ""
                text = (
                    f"saved {_fmt_value(saved['estimate'])} s{share_text}\n"
                    f"[{_fmt_value(saved['ci_low'])}, {_fmt_value(saved['ci_high'])}] s"
                )
            ax.annotate(
                text,
                (1, yi),
                xycoords=("axes fraction", "data"),
                xytext=(-2, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=7.5,
            )
        ax.set_xlim(0, float(known.max()) * 1.7)  # room on the right for the text
        ax.set_yticks(y, names)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("measured seconds per task")
        level = metrics[0]["time"].get("confidence") or 0.95
        ax.set_title(f"Seconds per task; saved, {100 * level:.0f} % interval")
        handles = [h for a in axes for h in a.get_legend_handles_labels()[0]]
        labels = [label for a in axes for label in a.get_legend_handles_labels()[1]]
        figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
        return _png(figure)


#: Every figure, in the page's order: (key, title, function).
FIGURES: tuple[tuple[str, str, Callable[[dict[str, Any]], bytes | None]], ...] = (
    ("gate_timeline", "Gate timeline", gate_timeline),
    ("iou_box_plots", "Per-class IoU distributions", iou_box_plots),
    ("annotator_scatter", "Annotator bias and variance", annotator_scatter),
    ("missing_by_density", "Missing rate by density", missing_by_density),
    ("defect_pareto", "Defect Pareto", defect_pareto),
    ("qa_oc_curve", "QA plan OC curve", qa_oc_curve),
    ("cost_waterfall", "Cost waterfall", cost_waterfall),
    ("rework_cycles", "Rework cycles", rework_cycles),
    ("active_learning", "Active learning", active_learning_curve),
)


#: Figures only a program that uses the feature has (never an empty chart otherwise).
OPTIONAL_FIGURES: tuple[tuple[str, str, Callable[[dict[str, Any]], bytes | None]], ...] = (
    ("prelabel_time", "Pre-labels: decisions and time saved", prelabel_time),
)


def render_figures(report: dict[str, Any]) -> dict[str, bytes]:
    """Every figure the report has data for, as PNG bytes by key.

    :data:`FIGURES` in order, then :data:`OPTIONAL_FIGURES`.

    Examples
    --------
    >>> render_figures({"stages": []})
    {}
    """
    out: dict[str, bytes] = {}
    for key, _, draw in (*FIGURES, *OPTIONAL_FIGURES):
        png = draw(report)
        if png is not None:
            out[key] = png
    return out
