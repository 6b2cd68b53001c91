"""One self-contained HTML file from a :class:`ReportData`.

Tables are written as HTML (they print and read without a script); charts are
drawn by Plotly from JSON embedded in the page. Plotly because its wheel
carries the minified library (``plotly.offline.get_plotlyjs()``), so a report
embeds it whole and opens offline, and one library draws the bar charts, the
control charts and the date-axis timelines. A Content-Security-Policy meta tag
forbids the page any request, so a viewer's browser cannot leak a patient id.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pumpguard import __version__
from pumpguard.report_assets import CSS, SCRIPT
from pumpguard.report_build import ReportData, to_json_text
from pumpguard.report_metrics import PatientTimeline
from pumpguard.report_rates import finding_ts, rates

__all__ = ["render_html"]

_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; connect-src 'none'"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], num: Sequence[int] = ()) -> str:
    th = "".join(
        f'<th class="num">{_e(h)}</th>' if i in num else f"<th>{_e(h)}</th>"
        for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        tds = "".join(
            f'<td class="num">{_e(c)}</td>' if i in num else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _summary(d: ReportData) -> str:
    pop = d.population
    ref = d.pack
    rows: list[tuple[str, object]] = [
        ("patients", len(pop.patients)),
        ("cycles started", pop.cycles),
        ("patient-days on drug", f"{pop.patient_days:.1f}"),
        ("bags hung", pop.bags),
        ("restarts (after a pause, or any start after \u2265 threshold)", pop.restarts),
        ("restarts after a long interruption", len(pop.moments("long_restart"))),
        ("findings", len(d.findings)),
    ]
    if pop.start is not None:
        span = f"{_day(pop.start)} to {_day(pop.end)}"
        rows.append(("event time covered", span))
    pack = "unknown (no finding and no pack)"
    if ref is not None:
        pack = f"{ref.name} {ref.version}, edition {ref.edition}, site {ref.site or '(none)'}"
    params_sha = (ref.parameters_sha256 if ref else None) or "-"
    facts = _table(["measure", "value"], rows, num=(1,))
    sev = _table(["severity", "findings"], d.by_severity.items(), num=(1,))
    return (
        f"<section id='summary'><h2>Summary</h2><div class='grid'><div>{facts}</div><div>"
        f"<h3>Rule pack</h3><p>{_e(pack)}<br>sha256 <code>{_e(ref.sha256 if ref else '-')}</code>"
        f"<br>parameters sha256 <code>{_e(params_sha)}</code></p>"
        f"<h3>Findings by severity</h3>{sev}</div></div></section>"
    )


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _inputs(d: ReportData) -> str:
    rows = [(i.file, i.format, i.records, i.events, i.rejected) for i in d.inputs]
    files = _table(["input", "format", "records", "events", "rejected"], rows, num=(2, 3, 4))
    shown = d.rejects[:50]
    rej = (
        _table(
            ["where", "level", "reason"],
            [(f"{r.source}:{r.position}", r.level, r.reason) for r in shown],
        )
        if shown
        else "<p>No rejects.</p>"
    )
    more = (
        f"<p class='muted'>{len(d.rejects) - 50} more not shown.</p>" if len(d.rejects) > 50 else ""
    )
    src = f"<p>Findings file: <code>{_e(d.findings_file or '(from this run)')}</code></p>"
    integrity = "".join(f"<li>{_e(x)}</li>" for x in d.integrity) or "<li>not checked</li>"
    return (
        f"<section id='inputs'><h2>Inputs, rejects and integrity</h2>{src}{files}"
        f"<h3>Rejects ({len(d.rejects)})</h3>{rej}{more}"
        f"<h3>Tamper evidence</h3><ul>{integrity}</ul></section>"
    )


def _rates(d: ReportData) -> str:
    rrows = [
        (r.label, r.count, f"{r.exposure:.1f} {r.unit}", _pct(r.per_100))
        for r in rates(d.population, d.findings)
    ]
    crows = [
        (c.requirement, c.label, c.numerator, c.denominator, _pct(c.percent), c.code)
        for c in d.compliance
    ]
    return (
        "<section id='rates'><h2>Rates and compliance</h2>"
        + _table(["rate", "numerator", "denominator", "per 100"], rrows, num=(1, 3))
        + _table(
            ["requirement", "compliance", "numerator", "denominator", "%", "counted against"],
            crows,
            num=(2, 3, 4),
        )
        + "<p class='muted'>Numerators count the moments with no finding of the code shown; "
        "denominators come from the events (restarts after the pack's reinitiation threshold, "
        "bags hung, cycles 1 and 2, the moments the label asks premedication for).</p></section>"
    )


def _charts(d: ReportData) -> str:
    spc = "".join(f"<div class='chart' id='chart-spc-{i}'></div>" for i in range(len(d.charts)))
    return (
        "<section id='charts'><h2>Findings and weekly control charts</h2>"
        "<div class='chart' id='chart-codes'></div>"
        + _table(
            ["code", "severity", "findings"],
            [(c, s, n) for (c, s), n in sorted(d.by_code.items())],
            num=(2,),
        )
        + f"<div class='grid'>{spc}</div>"
        "<p class='muted'>u-charts: weekly count per 100 units of exposure; p-chart: weekly "
        "percentage; centre line pooled over all weeks, limits at 3 standard errors.</p></section>"
    )


def _compare(d: ReportData) -> str:
    c = d.compare
    if c is None:
        return ""
    from pumpguard.compare import compare_rows

    return (
        f"<section id='whatif'><h2>What-if: {_e(c.a_label)} against {_e(c.b_label)}</h2>"
        "<div class='chart' id='chart-compare'></div>"
        + _table(
            ["code", "appeared", "disappeared", "changed", "same"],
            [(k, *v) for k, v in sorted(c.by_code().items())],
            num=(1, 2, 3, 4),
        )
        + _table(["patient", "code", "change", "time", "A", "B"], compare_rows(c)[:500])
        + "</section>"
    )


def _patients_section() -> str:
    return (
        "<section id='patients'><h2>Per patient</h2><div class='controls'>"
        "<label>patient<select id='f-patient'></select></label>"
        "<label>code<select id='f-code'><option value=''>all codes</option></select></label>"
        "<label>severity<select id='f-severity'><option value=''>all</option></select></label>"
        "<label><span><input type='checkbox' id='f-all'> table: all patients</span></label>"
        "</div><div class='chart tall' id='chart-timeline'></div>"
        "<div id='detail' class='muted'>Click a finding (on the timeline or in the table) for "
        "its message and evidence.</div><h3>Findings <span class='muted' id='findings-shown'>"
        "</span></h3><table id='findings-table'><thead><tr><th>time (UTC)</th><th>patient</th>"
        "<th>severity</th><th>code</th><th>message</th><th>evidence</th></tr></thead><tbody>"
        "</tbody></table></section>"
    )


def _patient_json(tl: PatientTimeline, t0: float) -> dict[str, Any]:
    def m(ts: float) -> int:
        return round((ts - t0) / 60)

    def short(label: str) -> str:
        return label.removeprefix(tl.patient_id + "-")

    return {
        "ind": tl.indication,
        "run": [[m(s.start), m(s.end)] for s in tl.running],
        "bags": [[m(s.start), m(s.end), short(s.label)] for s in tl.bags],
        "hosp": [[m(s.start), m(s.end)] for s in tl.hospital],
        "holds": [[m(s.start), m(s.end), s.label] for s in tl.holds],
        "marks": [[m(k.ts), k.kind, k.label, short(k.event_id)] for k in tl.marks],
    }


def _data(d: ReportData) -> dict[str, Any]:
    pop = d.population
    t0 = float(int(pop.start or 0) // 86400 * 86400)
    pids = sorted(set(pop.patients) | {f.patient_id for f in d.findings})
    patients = {
        p: _patient_json(pop.patients[p], t0)
        if p in pop.patients
        else {"ind": None, "run": [], "bags": [], "hosp": [], "holds": [], "marks": []}
        for p in pids
    }
    findings = [
        [
            f.patient_id,
            round((finding_ts(f) - t0) / 60),
            f.code,
            f.severity.value,
            f.message,
            ", ".join(f.evidence),
            f.rule_id,
            f.finding_id,
        ]
        for f in d.findings
    ]
    counts: dict[str, int] = {}
    for f in d.findings:
        counts[f.patient_id] = counts.get(f.patient_id, 0) + 1
    worst = sorted(d.findings, key=lambda f: (-f.severity.rank, f.patient_id))
    spc = [
        {
            "title": c.title,
            "kind": c.kind,
            "unit": c.unit,
            "centre": c.centre,
            "points": [
                [round((p.week - t0) / 60), p.value, p.lcl, p.ucl, p.signal] for p in c.points
            ],
        }
        for c in d.charts
    ]
    out: dict[str, Any] = {
        "t0": t0,
        "patients": patients,
        "findings": findings,
        "counts": counts,
        "first": worst[0].patient_id if worst else (pids[0] if pids else ""),
        "spc": spc,
        "compare": None,
    }
    if d.compare is not None:
        out["compare"] = {"by_code": {k: v[:3] for k, v in d.compare.by_code().items()}}
    return out


def render_html(d: ReportData, plotly_js: str | None = None) -> str:
    """The whole report as one HTML document (Plotly, style, data and script inside)."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    title = "pumpguard audit report"
    if d.pack is not None:
        title += f": {d.pack.name} {d.pack.version} ({d.pack.edition})"
    made = f"pumpguard {__version__}"
    return "".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">",
            f"<meta name='viewport' content='width=device-width'><title>{_e(title)}</title>",
            f"<style>{CSS}</style><script>{plotly_js}</script></head><body>",
            (
                f"<h1>{_e(title)}</h1><p class='muted'>Made by {_e(made)} from the findings and "
                "the events below; every chart is drawn from the data embedded in this file.</p>"
            ),
            _summary(d),
            _rates(d),
            _charts(d),
            _compare(d),
            _patients_section(),
            _inputs(d),
            f"<script type='application/json' id='pg-data'>{to_json_text(_data(d))}</script>",
            f"<script>{SCRIPT}</script></body></html>",
        ]
    )
