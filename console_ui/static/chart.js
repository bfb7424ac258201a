// The chart widget: history buckets (min, max and average per bucket, from the history
// queries) drawn with uPlot: the average as a line, min..max as a band. Ranges live (last 15
// minutes, extended by live values), 1h ... 1y and custom; drag across the chart to zoom into
// a range (its buckets are read again, finer), double-click or "Reset" to go back.
"use strict";

window.openblynkChart = function (w, ctx) {
  const { api, deviceId, RANGES, units } = ctx;
  const { h } = window.openblynk;
  const rangeButton = (key) => h("button", { type: "button", "data-range": key }, key);
  const bar = h("div", { class: "chart-bar", role: "toolbar", "aria-label": "Range" },
    Object.keys(RANGES).map(rangeButton), rangeButton("custom"),
    h("button", { type: "button", "data-reset": true, hidden: true }, "Reset zoom"));
  const when = (name, label) => h("input", { type: "datetime-local", name, "aria-label": label, required: true });
  const custom = h("form", { class: "chart-custom", hidden: true }, when("from", "From"), when("to", "To"),
    h("button", { type: "submit" }, "Show"));
  const plotEl = h("div", { class: "chart-plot" });
  const info = h("p", { class: "chart-info small muted" });
  w.body.replaceChildren(bar, custom, plotEl, info);
  const reset = bar.querySelector("[data-reset]");
  let rangeKey = "1d";
  let view = null;       // {start, end} in ms
  let plot = null;
  let data = [[], [], [], []];  // t (s), avg, min, max
  let zoomed = false;
  let latest = 0;        // the newest request: answers to older ones are stale and dropped

  function size() {
    return { width: Math.max(200, plotEl.clientWidth), height: Math.max(100, plotEl.clientHeight) };
  }

  function makePlot() {
    if (plot) plot.destroy();
    const color = getComputedStyle(w.el).getPropertyValue("--accent").trim() || "#2f7cf6";
    plot = new window.uPlot({
      ...size(),
      scales: { x: { time: true } },
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      series: [{}, { label: "average", stroke: color, width: 2, spanGaps: false },
               { label: "min", stroke: "transparent", points: { show: false } },
               { label: "max", stroke: "transparent", points: { show: false } }],
      bands: [{ series: [3, 2], fill: color + "33" }],
      axes: [{}, { size: 64, values: (u, vals) => vals.map((v) => v + units(w)) }],
      hooks: { setSelect: [(u) => {
        if (u.select.width < 5) return;
        const a = u.posToVal(u.select.left, "x") * 1000;
        const b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        zoomed = true;
        reset.hidden = false;
        show(Math.round(a), Math.round(b));
      }] },
    }, data, plotEl);
    plot.over.addEventListener("dblclick", () => { if (zoomed) choose(rangeKey); });
  }

  async function show(start, end) {
    const request = ++latest;
    view = { start, end };
    const points = Math.min(1000, Math.max(10, Math.floor(size().width / 2)));
    info.textContent = "loading…";
    try {
      const s = await api("GET", `/api/console/devices/${deviceId}/history?pin=${w.cfg.pin}&start=${start}&end=${end}&points=${points}`);
      if (request !== latest) return;  // a range chosen meanwhile: never draw over it
      data = [s.t.map((t) => (t + s.width_ms / 2) / 1000), s.avg, s.min, s.max];
      makePlot();
      plot.setScale("x", { min: start / 1000, max: end / 1000 });
      const from = new Date(start).toLocaleString(), to = new Date(end).toLocaleString();
      info.textContent = `${from} – ${to} · ${s.t.length} buckets of ${human(s.width_ms)} from ${s.source}`;
      w.el.dataset.chartStart = String(start);
      w.el.dataset.chartEnd = String(end);
      w.el.dataset.chartPoints = String(s.t.length);
      w.el.dataset.chartZoomed = zoomed ? "yes" : "no";
    } catch (err) {
      if (request === latest) info.textContent = err.message;
    }
  }

  function human(ms) {
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60e3) return `${(ms / 1000).toFixed(1)} s`;
    if (ms < 3600e3) return `${(ms / 60e3).toFixed(1)} min`;
    if (ms < 86400e3) return `${(ms / 3600e3).toFixed(1)} h`;
    return `${(ms / 86400e3).toFixed(1)} d`;
  }

  function choose(key) {
    rangeKey = key;
    zoomed = false;
    reset.hidden = true;
    w.body.querySelectorAll("[data-range]").forEach((b) => b.classList.toggle("active", b.dataset.range === key));
    custom.hidden = key !== "custom";
    if (key === "custom") return;
    const end = Date.now();
    show(end - RANGES[key], end);
  }

  bar.addEventListener("click", (e) => {
    const b = e.target.closest("[data-range]");
    if (b) choose(b.dataset.range);
    if (e.target.closest("[data-reset]")) choose(rangeKey);
  });
  custom.addEventListener("submit", (e) => {
    e.preventDefault();
    const a = Date.parse(custom.elements.from.value), b = Date.parse(custom.elements.to.value);
    if (Number.isNaN(a) || Number.isNaN(b) || b <= a) { info.textContent = "choose a start before the end"; return; }
    show(a, b);
  });

  // Live mode: every new value is a point at the right edge (the window slides).
  w.update = (v, ts) => {
    if (rangeKey !== "live" || zoomed || !plot || v === null || v === undefined || !ts) return;
    const n = Number(v);
    if (Number.isNaN(n)) return;
    const t = ts / 1000;
    data[0].push(t); data[1].push(n); data[2].push(n); data[3].push(n);
    const cut = t - RANGES.live / 1000;
    while (data[0].length && data[0][0] < cut) data.forEach((arr) => arr.shift());
    plot.setData(data, false);
    plot.setScale("x", { min: cut, max: t });
  };

  new ResizeObserver(() => { if (plot) plot.setSize(size()); }).observe(plotEl);
  choose("1d");
};
