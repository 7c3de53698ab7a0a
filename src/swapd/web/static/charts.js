// The console's charts, drawn with uPlot (static/vendor/uplot) from the figures each chart's
// element carries in data-chart: {"times": [unix s], "values": [...], "label": "...",
// "color": "#..."}. Without JavaScript the CSS bars next to it stay.
(function () {
  "use strict";
  if (!window.uPlot) { return; }
  var lang = document.documentElement.lang || "en";
  var number = new Intl.NumberFormat(lang);
  document.querySelectorAll("[data-chart]").forEach(function (box) {
    var spec = JSON.parse(box.dataset.chart);
    var width = Math.max(260, box.clientWidth);
    var bars = window.uPlot.paths.bars({ size: [0.7, 60] });
    var options = {
      width: width,
      height: 170,
      legend: { show: false },
      cursor: { points: { show: false } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [
        { stroke: "#5b6576", grid: { show: false } },
        { stroke: "#5b6576", size: 60, values: function (u, ticks) { return ticks.map(function (v) { return number.format(v); }); } }
      ],
      series: [{}, { label: spec.label, stroke: spec.color, fill: spec.color, paths: bars, points: { show: false } }]
    };
    box.textContent = "";
    new window.uPlot(options, [spec.times, spec.values], box);
    var fallback = box.parentElement.querySelector(".bars");
    if (fallback) { fallback.hidden = true; }
  });
})();
