/* zhiban telemetry: number formatting and a uPlot factory shared by the dashboard and the session inspector. */
(function () {
  "use strict";
  function fmt(unit, v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    switch (unit) {
      case "ratio": return (100 * v).toFixed(v < 0.1 ? 2 : 1) + "%";
      case "pct": return v.toFixed(2) + "%";
      case "ms": return Math.round(v).toLocaleString() + " ms";
      case "mos": return v.toFixed(2);
      default: return Math.round(v).toLocaleString();
    }
  }
  // Axis ticks: short, so the axis stays narrow on a phone.
  function tick(unit, v) {
    if (v === null || v === undefined) return "";
    if (unit === "ratio") return +(100 * v).toPrecision(3) + "%";
    if (unit === "pct") return +v.toPrecision(3) + "%";
    if (unit === "mos") return v.toFixed(1);
    if (Math.abs(v) >= 10000) return Math.round(v / 1000) + "k";
    return String(+v.toPrecision(4));
  }
  // Time ticks in the viewer's zone, 24-hour clock; dates once the view spans more than a day.
  function timeTicks(tz) {
    const hm = new Intl.DateTimeFormat(undefined, { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const hms = new Intl.DateTimeFormat(undefined, { timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
    const md = new Intl.DateTimeFormat(undefined, { timeZone: tz, month: "2-digit", day: "2-digit" });
    return (u, splits) => {
      const span = u.scales.x.max - u.scales.x.min;
      return splits.map(ts => {
        const d = new Date(ts * 1e3);
        if (span > 3 * 86400) return md.format(d);
        if (span > 86400) return md.format(d) + " " + hm.format(d);
        return span > 900 ? hm.format(d) : hms.format(d);
      });
    };
  }
  function plotWidth(el) { return Math.max(240, Math.floor(el.clientWidth || 320)); }
  // A line chart in the viewer's zone; `onZoom(fromSec, toSec)` is called after a drag across the chart.
  function lineChart(el, opts) {
    const tz = opts.tz || "UTC";
    const series = [{}].concat(opts.series.map(s => ({
      label: s.label, stroke: s.color, width: 2, spanGaps: !!opts.spanGaps,
      fill: s.fill || undefined,
      points: { show: false },
      value: (u, v) => fmt(s.unit, v),
    })));
    const chart = new uPlot({
      width: plotWidth(el), height: opts.height || 180,
      tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), tz),
      cursor: { drag: { x: !!opts.onZoom, y: false, setScale: false }, sync: opts.sync ? { key: opts.sync } : undefined },
      legend: { show: opts.legend !== false, live: true },
      scales: { x: { time: true }, y: { range: opts.yRange || ((u, lo, hi) => [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1]) } },
      axes: [
        { size: 30, space: 70, values: timeTicks(tz) },
        { size: 56, space: 30, values: (u, splits) => splits.map(v => tick(opts.series[0].unit, v)) },
      ],
      series: series,
      hooks: opts.onZoom ? {
        setSelect: [u => {
          if (u.select.width < 8) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          opts.onZoom(from, to);
        }],
      } : {},
    }, opts.data, el);
    return chart;
  }
  function watchWidth(el, chart, height) {
    let last = el.clientWidth;
    window.addEventListener("resize", () => {
      if (el.clientWidth !== last) { last = el.clientWidth; chart.setSize({ width: plotWidth(el), height: height || 180 }); }
    });
  }
  window.ZhibanTelemetry = { fmt: fmt, tick: tick, lineChart: lineChart, watchWidth: watchWidth };
})();
