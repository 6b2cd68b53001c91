"""The report's style sheet and script, embedded in every report (nothing is fetched).

Kept as text here rather than as package data so the wheel needs no new
data-file rule; the script only reads the JSON embedded beside it.
"""

# ruff: noqa: E501  (the embedded script and style sheet keep their own line lengths)
from __future__ import annotations

__all__ = ["CSS", "SCRIPT"]

CSS = """
:root { --crit:#8b0000; --high:#d9480f; --med:#e0a800; --low:#3b7dd8; --info:#6c757d; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 16px 24px; color: #1d2329; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; border-bottom: 2px solid #dde3ea;
     padding-bottom: 3px; margin-top: 28px; } h3 { font-size: 14px; margin: 14px 0 4px; }
table { border-collapse: collapse; margin: 6px 0 10px; } th, td { border: 1px solid #d4dae1;
        padding: 3px 8px; text-align: left; vertical-align: top; } th { background: #f1f4f7; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 12px 28px; }
.chart { width: 100%; height: 320px; } .chart.tall { height: 430px; }
.sev { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 12px; }
.sev.critical { background: var(--crit); } .sev.high { background: var(--high); }
.sev.medium { background: var(--med); color: #222; } .sev.low { background: var(--low); }
.sev.info { background: var(--info); }
.controls { display: flex; gap: 14px; flex-wrap: wrap; align-items: end; margin: 8px 0; }
.controls label { display: flex; flex-direction: column; font-size: 12px; color: #4a5561; }
.ok { color: #1e7a34; font-weight: 600; } .bad { color: #b00020; font-weight: 600; }
#detail { min-height: 2.5em; background: #f8f9fb; border-left: 4px solid #c5ccd4; padding: 6px 10px; }
.muted { color: #66717d; } code { font-size: 12px; word-break: break-all; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; } .controls, .noprint { display: none; }
  section { break-inside: avoid-page; } .grid { grid-template-columns: 1fr 1fr; }
  h2 { break-after: avoid; } tr { break-inside: avoid; }
}
"""

SCRIPT = r"""
(function () {
  const D = JSON.parse(document.getElementById('pg-data').textContent);
  const SEV = {critical: '#8b0000', high: '#d9480f', medium: '#e0a800', low: '#3b7dd8', info: '#6c757d'};
  const ORDER = ['critical', 'high', 'medium', 'low', 'info'];
  const cfg = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ['toImage']};
  const iso = (m) => new Date((D.t0 + m * 60) * 1000).toISOString();
  const drawn = [];
  const plot = (id, traces, layout) => {
    const base = {margin: {l: 60, r: 18, t: 34, b: 46}, font: {size: 11}, legend: {orientation: 'h'}};
    drawn.push(Plotly.newPlot(id, traces, Object.assign(base, layout), cfg));
  };

  // findings by code, stacked by severity
  const codes = [...new Set(D.findings.map((f) => f[2]))].sort();
  plot('chart-codes', ORDER.map((s) => ({
    type: 'bar', name: s, marker: {color: SEV[s]}, x: codes,
    y: codes.map((c) => D.findings.filter((f) => f[2] === c && f[3] === s).length),
  })), {barmode: 'stack', title: {text: 'Findings by code and severity'}, xaxis: {automargin: true, tickangle: -25}});

  // control charts
  D.spc.forEach((c, i) => {
    const x = c.points.map((p) => iso(p[0]));
    const v = c.points.map((p) => p[1]);
    const sig = c.points.map((p) => p[4] ? p[1] : null);
    plot('chart-spc-' + i, [
      {type: 'scatter', mode: 'lines+markers', name: c.kind === 'p' ? '% of ' + c.unit : 'per 100 ' + c.unit,
       x, y: v, line: {color: '#1f4e79'}},
      {type: 'scatter', mode: 'lines', name: 'centre', x, y: x.map(() => c.centre), line: {color: '#2b8a3e', dash: 'dash'}},
      {type: 'scatter', mode: 'lines', name: 'UCL (3\u03c3)', x, y: c.points.map((p) => p[3]), line: {color: '#b00020', shape: 'hvh', width: 1}},
      {type: 'scatter', mode: 'lines', name: 'LCL (3\u03c3)', x, y: c.points.map((p) => p[2]), line: {color: '#b00020', shape: 'hvh', width: 1, dash: 'dot'}},
      {type: 'scatter', mode: 'markers', name: 'signal', x, y: sig, marker: {color: '#b00020', size: 11, symbol: 'x'}},
    ], {title: {text: c.title}, xaxis: {type: 'date'}});
  });

  if (D.compare) {
    const cc = Object.keys(D.compare.by_code).sort();
    plot('chart-compare', ['appeared', 'disappeared', 'changed'].map((k, j) => ({
      type: 'bar', name: k, x: cc, y: cc.map((c) => D.compare.by_code[c][j]),
      marker: {color: ['#b00020', '#2b8a3e', '#e0a800'][j]},
    })), {barmode: 'group', title: {text: 'What-if: findings that change, by code'}});
  }

  // per patient: filters, timeline, findings table
  const selP = document.getElementById('f-patient');
  const selC = document.getElementById('f-code');
  const selS = document.getElementById('f-severity');
  Object.keys(D.patients).forEach((p) => selP.add(new Option(p + (D.counts[p] ? ' (' + D.counts[p] + ')' : ''), p)));
  codes.forEach((c) => selC.add(new Option(c, c)));
  ORDER.forEach((s) => selS.add(new Option(s, s)));
  selP.value = D.first;
  const keep = (f) => (!selC.value || f[2] === selC.value) && (!selS.value || f[3] === selS.value);
  const LANES = ['Drug running', 'Bags', 'Dose', 'Hospital', 'Premedication', 'Supervision', 'Reactions & holds', 'Findings'];

  function spans(list, lane, color, name) {
    return {type: 'bar', orientation: 'h', name, y: list.map(() => lane), base: list.map((s) => iso(s[0])),
      x: list.map((s) => (s[1] - s[0]) * 60000), marker: {color, line: {color: '#fff', width: 1}},
      hovertext: list.map((s) => (s[2] || name) + ': ' + iso(s[0]).slice(0, 16) + ' to ' + iso(s[1]).slice(0, 16)),
      hoverinfo: 'text'};
  }
  function marks(p, kind, lane, color, symbol) {
    const m = p.marks.filter((k) => k[1] === kind);
    return {type: 'scatter', mode: 'markers', name: lane, x: m.map((k) => iso(k[0])), y: m.map(() => lane),
      marker: {color, symbol, size: 9}, hovertext: m.map((k) => k[2] + ' (' + k[3] + ')'), hoverinfo: 'text+x'};
  }
  function timeline() {
    const pid = selP.value;
    const p = D.patients[pid];
    const fs = D.findings.filter((f) => f[0] === pid && keep(f));
    const traces = [
      spans(p.run, 'Drug running', '#2f6f9f', 'running'), spans(p.bags, 'Bags', '#8fb3d9', 'bag'),
      spans(p.hosp, 'Hospital', '#9c6ade', 'in hospital'), spans(p.holds, 'Reactions & holds', '#f4a9a8', 'hold'),
      marks(p, 'dose', 'Dose', '#1f4e79', 'diamond'), marks(p, 'cycle', 'Dose', '#000', 'line-ns-open'),
      marks(p, 'premed', 'Premedication', '#2b8a3e', 'circle'),
      marks(p, 'supervision', 'Supervision', '#5c7cfa', 'square'), marks(p, 'restart', 'Supervision', '#999', 'triangle-up'),
      marks(p, 'reaction', 'Reactions & holds', '#b00020', 'star'), marks(p, 'flush', 'Reactions & holds', '#8b0000', 'x'),
      {type: 'scatter', mode: 'markers', name: 'finding', x: fs.map((f) => iso(f[1])), y: fs.map(() => 'Findings'),
       marker: {color: fs.map((f) => SEV[f[3]]), size: 13, symbol: 'diamond', line: {color: '#000', width: 1}},
       customdata: fs.map((f) => D.findings.indexOf(f)),
       hovertext: fs.map((f) => f[3] + ' ' + f[2] + ': ' + f[4] + '<br>evidence: ' + f[5]), hoverinfo: 'text+x'},
    ];
    const el = document.getElementById('chart-timeline');
    const done = Plotly.react(el, traces, {
      margin: {l: 130, r: 18, t: 34, b: 40}, font: {size: 11}, showlegend: false, barmode: 'overlay',
      title: {text: 'Patient ' + pid + (p.ind ? ' (' + p.ind.replace(/_/g, ' ') + ')' : '')},
      xaxis: {type: 'date'}, yaxis: {categoryorder: 'array', categoryarray: LANES, range: [-0.5, LANES.length - 0.5]},
    }, cfg);
    if (!el.dataset.bound) {
      el.dataset.bound = '1';
      done.then(() => el.on('plotly_click', (ev) => {
        const pt = ev.points.find((q) => q.customdata !== undefined);
        if (pt) show(D.findings[pt.customdata]);
      }));
    }
    return done;
  }
  function show(f) {
    const d = document.getElementById('detail');
    d.textContent = '';
    const b = document.createElement('b');
    b.textContent = f[3] + ' ' + f[2] + ' (' + f[6] + ') at ' + iso(f[1]).replace('.000', '');
    d.append(b, document.createElement('br'), f[4], document.createElement('br'), 'Evidence: ' + f[5] + '; id ' + f[7]);
  }
  function table() {
    const tb = document.querySelector('#findings-table tbody');
    const pid = document.getElementById('f-all').checked ? '' : selP.value;
    const rows = D.findings.filter((f) => (!pid || f[0] === pid) && keep(f));
    tb.textContent = '';
    rows.slice(0, 1000).forEach((f) => {
      const tr = tb.insertRow();
      [iso(f[1]).slice(0, 16).replace('T', ' '), f[0], f[3], f[2], f[4], f[5]].forEach((v, j) => {
        const td = tr.insertCell();
        if (j === 2) { const s = document.createElement('span'); s.className = 'sev ' + v; s.textContent = v; td.append(s); }
        else td.textContent = v;
      });
      tr.onclick = () => { selP.value = f[0]; refresh(); show(f); };
    });
    document.getElementById('findings-shown').textContent =
      rows.length > 1000 ? '1000 of ' + rows.length + ' shown' : rows.length + ' shown';
  }
  function refresh() { table(); return timeline(); }
  [selP, selC, selS, document.getElementById('f-all')].forEach((e) => e.addEventListener('change', refresh));
  drawn.push(refresh());
  window.pgReady = Promise.all(drawn).then(() => {
    document.body.dataset.chartsDrawn = String(document.querySelectorAll('.js-plotly-plot').length);
    return document.body.dataset.chartsDrawn;
  });
})();
"""
