/* zhiban telemetry dashboard: charts from /api/v1/apps/{app}/series, breakdown table, range buttons and drag-to-zoom. */
(function () {
  "use strict";
  const T = window.ZhibanTelemetry;
  const cfg = JSON.parse(document.getElementById("telemetry-config").textContent);
  const S = cfg.strings;
  const COLORS = ["#0b63ce", "#2e7d32", "#c62828", "#ef6c00", "#6a1b9a", "#00838f"];
  const api = "/api/v1/apps/" + encodeURIComponent(cfg.app_id);
  const state = { range: cfg.ranges[0].seconds, from: null, to: null, zoomed: false, seq: 0 };
  const charts = new Map();

  function iso(sec) { return new Date(sec * 1000).toISOString(); }
  function span() {
    if (state.zoomed) return [state.from, state.to];
    const to = Date.now() / 1000;
    return [to - state.range, to];
  }
  function when(sec) {
    return new Intl.DateTimeFormat(undefined, { timeZone: cfg.tz, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).format(new Date(sec * 1000));
  }
  async function getJSON(url) {
    const r = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) throw new Error(r.status + " " + (await r.text()).slice(0, 200));
    return r.json();
  }
  function message(el, text) {
    const p = document.createElement("p");
    p.className = "muted tm-empty";
    p.textContent = text;
    el.replaceChildren(p);
  }

  async function loadChart(el, index, from, to, seq) {
    const metric = el.dataset.metric;
    const unit = cfg.units[metric];
    const q = new URLSearchParams({ metric: metric, from: iso(from), to: iso(to) });
    let body;
    try { body = await getJSON(api + "/series?" + q); } catch (e) { message(el, S["telemetry.load_failed"]); charts.delete(metric); return; }
    if (seq !== state.seq) return; // a newer range was asked for meanwhile
    const xs = body.points.map(p => Date.parse(p.start) / 1000);
    const ys = body.points.map(p => p.value);
    const latest = document.querySelector('[data-latest="' + metric + '"]');
    const last = ys.filter(v => v !== null).pop();
    if (latest) latest.textContent = last === undefined ? "" : T.fmt(unit, last);
    if (!ys.some(v => v !== null)) { message(el, S["telemetry.no_data"]); charts.delete(metric); return; }
    const data = [xs, ys];
    const old = charts.get(metric);
    if (old && old.root.isConnected) { old.setData(data); return; }
    el.replaceChildren();
    const color = COLORS[index % COLORS.length];
    const yRange = metric === "join_success_rate" ? (u, lo, hi) => [Math.max(0, Math.min(lo, 0.9)), 1.005]
      : unit === "mos" ? (u, lo, hi) => [1, 4.5] : undefined;
    const chart = T.lineChart(el, {
      // Joins are sparse (windows without a join have no rate): draw across those gaps.
      tz: cfg.tz, sync: "tm", yRange: yRange, legend: false, spanGaps: metric === "join_success_rate",
      series: [{ label: S["telemetry.metric." + metric], unit: unit, color: color, fill: color + "22" }],
      data: data, onZoom: zoom,
    });
    T.watchWidth(el, chart);
    charts.set(metric, chart);
  }

  function bar(fraction) {
    const outer = document.createElement("span");
    outer.className = "tm-bar";
    const inner = document.createElement("span");
    inner.style.width = Math.max(0, Math.min(100, 100 * fraction)).toFixed(1) + "%";
    outer.appendChild(inner);
    return outer;
  }
  async function loadBreakdown(from, to, seq) {
    const tbody = document.getElementById("tm-breakdown-rows");
    const metric = document.getElementById("tm-metric").value;
    const dimension = document.getElementById("tm-dimension").value;
    const unit = cfg.units[metric];
    const q = new URLSearchParams({ metric: metric, dimension: dimension, from: iso(from), to: iso(to), limit: "50" });
    let body;
    try { body = await getJSON(api + "/breakdown?" + q); } catch (e) { tbody.replaceChildren(row([S["telemetry.load_failed"]])); return; }
    if (seq !== state.seq) return;
    if (!body.rows.length) { tbody.replaceChildren(row([S["telemetry.no_data"]])); return; }
    const maxImpact = Math.max(...body.rows.map(r => r.impact));
    const maxSessions = Math.max(...body.rows.map(r => r.sessions), 1);
    const rows = body.rows.map(r => {
      const tr = document.createElement("tr");
      if (r.impact > 0) tr.className = "tm-hurts";
      const value = document.createElement("td");
      const strong = document.createElement("strong");
      strong.textContent = r.value;
      value.appendChild(strong);
      const m = document.createElement("td");
      m.textContent = T.fmt(unit, r.metric) + " ";
      const base = document.createElement("span");
      base.className = "muted";
      base.textContent = "(" + S["telemetry.baseline"] + " " + T.fmt(unit, r.baseline) + ")";
      m.appendChild(base);
      const sessions = document.createElement("td");
      sessions.textContent = r.sessions.toLocaleString() + " " + S["telemetry.sessions"];
      const impact = document.createElement("td");
      // The bar shows impact (sessions × how much worse); with nothing worse anywhere, the share of sessions.
      impact.appendChild(bar(maxImpact > 0 ? r.impact / maxImpact : r.sessions / maxSessions));
      const num = document.createElement("span");
      num.className = "muted";
      num.textContent = " " + (maxImpact > 0 ? r.impact.toFixed(1) : "");
      impact.appendChild(num);
      tr.append(value, m, sessions, impact);
      return tr;
    });
    tbody.replaceChildren(...rows);
  }
  function row(cells) {
    const tr = document.createElement("tr");
    for (const text of cells) {
      const td = document.createElement("td");
      td.colSpan = 4;
      td.className = "muted";
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  }

  function refresh() {
    const [from, to] = span();
    const seq = ++state.seq;
    document.getElementById("tm-span").textContent = when(from) + " – " + when(to) + (state.zoomed ? " · " + S["telemetry.zoomed"] : "");
    document.getElementById("tm-reset").hidden = !state.zoomed;
    document.querySelectorAll(".tm-plot[data-metric]").forEach((el, i) => loadChart(el, i, from, to, seq));
    loadBreakdown(from, to, seq);
  }
  function zoom(from, to) {
    if (!(to - from >= 60)) { const mid = (from + to) / 2; from = mid - 30; to = mid + 30; }
    state.zoomed = true; state.from = from; state.to = to;
    refresh();
  }

  document.querySelectorAll("[data-range]").forEach(btn => btn.addEventListener("click", () => {
    state.range = +btn.dataset.range; state.zoomed = false;
    document.querySelectorAll("[data-range]").forEach(b => b.setAttribute("aria-pressed", String(b === btn)));
    refresh();
  }));
  document.getElementById("tm-reset").addEventListener("click", () => { state.zoomed = false; refresh(); });
  document.getElementById("tm-metric").addEventListener("change", () => { const [f, t] = span(); loadBreakdown(f, t, state.seq); });
  document.getElementById("tm-dimension").addEventListener("change", () => { const [f, t] = span(); loadBreakdown(f, t, state.seq); });
  // Live ranges move on; a zoomed view stays where the viewer put it.
  setInterval(() => { if (!state.zoomed && !document.hidden) refresh(); }, 30000);
  refresh();
})();
