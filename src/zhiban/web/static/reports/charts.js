// Report charts: drawn by the vendored uPlot from the JSON blocks the page embeds (data-chart="<id>").
(function () {
  const palette = ["#0b63ce", "#9ec5f4", "#c62828", "#ef6c00", "#2e7d32"];
  function width(el) { return Math.max(240, Math.min(el.clientWidth || 320, 1000)); }
  // Categorical bars: later series are drawn narrower in front, so nested values (p50 in p90,
  // sleep hours in out of hours in total) read as one bar.
  function bars(el, labels, series, unit) {
    const xs = labels.map((_, i) => i);
    const n = series.length;
    const opts = {
      width: width(el), height: 220, legend: { show: true },
      scales: { x: { time: false, range: [-0.6, Math.max(labels.length - 0.4, 0.6)] }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
      axes: [
        { splits: () => xs, values: (u, splits) => splits.map(i => labels[i] ?? ""), size: labels.length > 4 ? 56 : 40,
          rotate: labels.length > 4 ? -30 : 0, gap: 4 },
        { label: unit || "", size: 56 },
      ],
      // The x "series" shows the hovered category's name in the legend.
      series: [{ label: " ", value: (u, v) => (v == null ? "" : labels[v] ?? "") }].concat(series.map((s, k) => ({
        label: s.label,
        fill: palette[(n - 1 - k) % palette.length],
        stroke: palette[(n - 1 - k) % palette.length],
        width: 0,
        paths: uPlot.paths.bars({ size: [0.75 - 0.5 * k / Math.max(n, 1), 80], align: 0 }),
        points: { show: false },
      }))),
    };
    const chart = new uPlot(opts, [xs].concat(series.map(s => s.values.map(v => v ?? null))), el);
    window.addEventListener("resize", () => chart.setSize({ width: width(el), height: 220 }));
  }
  function lines(el, data, names) {
    const opts = {
      width: width(el), height: 220,
      series: [{}].concat(names.map((name, k) => ({ label: name, stroke: palette[k * 2 % palette.length], width: 2, points: { show: data[0].length < 40 } }))),
      axes: [{}, { size: 40 }],
      scales: { y: { range: (u, lo, hi) => [0, hi > 0 ? hi + 1 : 1] } },
    };
    const chart = new uPlot(opts, data, el);
    window.addEventListener("resize", () => chart.setSize({ width: width(el), height: 220 }));
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-chart]").forEach(el => {
      const spec = JSON.parse(document.getElementById(el.dataset.chart).textContent);
      if (spec.kind === "lines") lines(el, spec.data, spec.names);
      else bars(el, spec.labels, spec.series, spec.unit);
    });
  });
})();
