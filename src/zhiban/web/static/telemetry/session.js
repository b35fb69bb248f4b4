/* zhiban session inspector: freeze and loss per report interval, in the viewer's zone. */
(function () {
  "use strict";
  const T = window.ZhibanTelemetry;
  const d = JSON.parse(document.getElementById("telemetry-session").textContent);
  const s = JSON.parse(document.getElementById("telemetry-strings").textContent);
  const el = document.getElementById("tm-session-plot");
  if (!el || !d.t.length) return;
  const chart = T.lineChart(el, {
    tz: d.tz, height: 200,
    series: [
      { label: s.video, unit: "pct", color: "#c62828" },
      { label: s.audio, unit: "pct", color: "#ef6c00" },
      { label: s.loss, unit: "pct", color: "#0b63ce" },
    ],
    data: [d.t, d.video_freeze, d.audio_freeze, d.loss],
  });
  T.watchWidth(el, chart, 200);
})();
