// A device's web dashboard: widgets bound to datastreams, live over the console WebSocket.
// Controls write through /api/console/devices/<id>/values/<pin> (the HTTP API's write path);
// on a datastream that waits for confirmation a control shows "waiting for device" until the
// device sends the value back (or reverts after CONFIRM_MS). Widget properties the device sets
// (label, color, isDisabled, isHidden, onLabel/offLabel, onBackColor/offBackColor, min/max/step)
// apply at once, read by widget_props.js as the app reads them (a colour only when it is one).
"use strict";

(function () {
  const CONFIRM_MS = 10000;
  const RANGES = { live: 15 * 60e3, "1h": 3600e3, "6h": 6 * 3600e3, "1d": 86400e3, "1w": 7 * 86400e3,
                   "1mo": 30 * 86400e3, "3mo": 90 * 86400e3, "1y": 365 * 86400e3 };
  const root = document.getElementById("dashboard");
  if (!root) return;
  const deviceId = root.dataset.device;
  const canControl = root.dataset.control === "yes";
  const widgets = [];
  const values = {};      // pin -> {value, ts}
  const props = {};       // pin -> {name: value}
  const { api, h, svg } = window.openblynk;  // h and svg build elements: server data enters as text only
  const P = window.openblynkProps;

  const num = (v) => (v === null || v === undefined || v === "" ? NaN : Number(v));

  function fmt(w, value) {
    if (value === null || value === undefined) return "—";
    const ds = w.cfg.ds || {};
    if (ds.type === "enum" && ds.enum && ds.enum[value] !== undefined) {
      const e = ds.enum[value];
      return typeof e === "object" && e !== null ? String(e.label || e.name || value) : String(e);
    }
    if (ds.type === "location") {
      const [lon, lat] = String(value).split(/[\x00,]/);
      return `${lat}, ${lon}`;
    }
    const n = num(value);
    if (!Number.isNaN(n) && ds.type === "double" && ds.decimals !== null && ds.decimals !== undefined) {
      return n.toFixed(ds.decimals);
    }
    return String(value);
  }
  const units = (w) => (w.cfg.ds && w.cfg.ds.units ? " " + w.cfg.ds.units : "");
  const range = (w) => {
    const p = props[w.cfg.pin] || {};
    const ds = w.cfg.ds || {};
    return { min: P.pick(p.min, w.cfg.min, ds.min, 0), max: P.pick(p.max, w.cfg.max, ds.max, 100),
             step: P.pick(p.step, w.cfg.step, ds.type === "double" ? 0.1 : 1, 1) };
  };

  // -- writing, with confirmation ---------------------------------------------------------
  async function write(w, value) {
    if (!canControl) { window.openblynk.toast("Your role cannot control this device", "bad"); return; }
    const wait = w.cfg.ds && w.cfg.ds.wait;
    if (wait) {
      clearTimeout(w.pendingTimer);
      w.pending = String(value);
      w.el.classList.add("pending");
      w.el.dataset.state = "waiting";
      w.status.textContent = "waiting for device…";
      w.update(String(value));
      w.pendingTimer = setTimeout(() => {
        w.pending = null;
        w.el.classList.remove("pending");
        w.el.dataset.state = "unconfirmed";
        w.status.textContent = "device did not confirm";
        w.update(w.confirmed);
      }, CONFIRM_MS);
    }
    try {
      const res = await api("POST", `/api/console/devices/${deviceId}/values/${w.cfg.pin}`, { value: String(value) });
      if (!wait) { w.confirmed = res.value; w.update(res.value); }
    } catch (err) {
      clearTimeout(w.pendingTimer);
      w.pending = null;
      w.el.classList.remove("pending");
      w.status.textContent = err.message;
      w.update(w.confirmed);
    }
  }

  function onValue(pin, value, ts, origin) {
    const prev = values[pin];
    if (prev && ts && prev.ts && ts < prev.ts) return;  // an older point (late batch) never replaces a newer one
    values[pin] = { value, ts };
    for (const w of widgets) {
      if (w.cfg.pin !== pin) continue;
      if (w.pending !== null && w.pending !== undefined) {
        if (origin === "server") continue;  // our own write: the device has not answered yet
        if (String(value) === w.pending) {
          clearTimeout(w.pendingTimer);
          w.pending = null;
          w.el.classList.remove("pending");
          w.el.dataset.state = "confirmed";
          w.status.textContent = "";
        }
      }
      if (origin !== "server" || !(w.cfg.ds && w.cfg.ds.wait)) w.confirmed = value;
      w.update(value, ts);
    }
  }

  function applyProps(pin) {
    for (const w of widgets) {
      if (w.cfg.pin !== pin) continue;
      const p = props[pin] || {};
      // a chart's range buttons are not controls of the device: they stay usable
      const controls = w.cfg.type === "chart" ? [] : w.el.querySelectorAll("button, input, select");
      P.applyCommon(w.el, w.title, w.cfg.title || (w.cfg.ds ? w.cfg.ds.name : `V${pin}`), p, controls, canControl);
      if (!P.color(p.color) && P.color(w.cfg.color)) w.el.style.setProperty("--accent", w.cfg.color);
      if (w.refresh) w.refresh();
      w.update(values[pin] ? values[pin].value : null);
    }
  }

  // -- widget kinds -----------------------------------------------------------------------
  const kinds = {
    switch(w) {
      const b = h("button", { type: "button", class: "toggle", role: "switch", "aria-checked": "false" },
                  h("span", { class: "knob" }), h("span", { class: "label" }));
      w.body.replaceChildren(b);
      const isOn = (v) => v !== null && v !== undefined && String(v) === String(w.cfg.on ?? "1");
      b.addEventListener("click", () => write(w, isOn(w.shown) ? (w.cfg.off ?? "0") : (w.cfg.on ?? "1")));
      w.update = (v) => {
        w.shown = v;
        const p = props[w.cfg.pin] || {};
        b.setAttribute("aria-checked", isOn(v) ? "true" : "false");
        b.querySelector(".label").textContent = isOn(v) ? (P.text(p.onLabel) ?? "ON") : (P.text(p.offLabel) ?? "OFF");
        const back = P.color(isOn(v) ? p.onBackColor : p.offBackColor);
        if (back) b.style.setProperty("background", back); else b.style.removeProperty("background");
      };
    },
    button(w) {
      // Blynk's two modes: push writes "on" while pressed and "off" when let go; switch flips
      // between them at each press (aria-pressed shows which one holds).
      const toggles = w.cfg.mode === "switch";
      const b = h("button", { type: "button", class: "push", "aria-pressed": toggles ? "false" : null });
      w.body.replaceChildren(b);
      const onValue = String(w.cfg.on ?? "1"), offValue = String(w.cfg.off ?? "0");
      const isOn = (v) => v !== null && v !== undefined && String(v) === onValue;
      if (toggles) {
        b.addEventListener("click", () => write(w, isOn(w.shown) ? offValue : onValue));
      } else {
        b.addEventListener("pointerdown", () => write(w, onValue));
        b.addEventListener("pointerup", () => write(w, offValue));
        b.addEventListener("keydown", (e) => { if ((e.key === " " || e.key === "Enter") && !e.repeat) { e.preventDefault(); write(w, onValue); } });
        b.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") write(w, offValue); });
      }
      w.update = (v) => {
        w.shown = v;
        const p = props[w.cfg.pin] || {};
        const on = isOn(v);
        b.textContent = on ? (P.text(p.onLabel) ?? "ON") : (P.text(p.offLabel) ?? (toggles ? "OFF" : "PUSH"));
        b.classList.toggle("on", on);
        if (toggles) b.setAttribute("aria-pressed", on ? "true" : "false");
      };
    },
    slider(w) {
      const out = h("output", { class: "big" });
      const input = h("input", { type: "range", "aria-label": w.title.textContent });
      w.body.replaceChildren(out, input);
      w.refresh = () => { const r = range(w); input.min = r.min; input.max = r.max; input.step = r.step; };
      w.refresh();
      input.addEventListener("input", () => { out.textContent = input.value + units(w); });
      input.addEventListener("change", () => write(w, input.value));
      w.update = (v) => { if (v !== null && v !== undefined) input.value = v; out.textContent = fmt(w, v) + units(w); };
    },
    numeric_input(w) {
      const input = h("input", { type: "number", inputmode: "decimal", "aria-label": w.title.textContent });
      w.body.replaceChildren(h("div", { class: "stepper" },
        h("button", { type: "button", "data-d": "-1", "aria-label": "Less" }, "−"), input,
        h("button", { type: "button", "data-d": "1", "aria-label": "More" }, "+")));
      const clamp = (x) => { const r = range(w); return Math.min(r.max, Math.max(r.min, x)); };
      w.refresh = () => { const r = range(w); input.min = r.min; input.max = r.max; input.step = r.step; };
      w.refresh();
      w.body.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => {
        const r = range(w);
        const base = Number.isNaN(num(input.value)) ? r.min : num(input.value);
        const next = clamp(Math.round((base + Number(b.dataset.d) * r.step) * 1e6) / 1e6);
        input.value = next;
        write(w, next);
      }));
      input.addEventListener("change", () => { if (!Number.isNaN(num(input.value))) write(w, clamp(num(input.value))); });
      w.update = (v) => { if (document.activeElement !== input) input.value = v === null || v === undefined ? "" : v; };
    },
    value(w) {
      const out = h("output", { class: "big" });
      w.body.replaceChildren(out);
      w.update = (v) => { out.textContent = fmt(w, v) + (v === null || v === undefined ? "" : units(w)); };
    },
    gauge(w) {
      const arc = "M15 70 A45 45 0 0 1 105 70";
      const fill = svg("path", { class: "fill", d: arc });
      const [tv, tmin, tmax] = [svg("text", { x: 60, y: 62, class: "gv" }), svg("text", { x: 15, y: 79, class: "gm" }),
                                svg("text", { x: 105, y: 79, class: "gm", "text-anchor": "end" })];
      w.body.replaceChildren(svg("svg", { viewBox: "0 0 120 80", class: "gauge", role: "img" },
                                 svg("path", { class: "track", d: arc }), fill, tv, tmin, tmax));
      const len = fill.getTotalLength ? fill.getTotalLength() : 141.4;
      fill.style.strokeDasharray = `${len}`;
      w.update = (v) => {
        const r = range(w);
        const n = num(v);
        const frac = Number.isNaN(n) ? 0 : Math.min(1, Math.max(0, (n - r.min) / (r.max - r.min || 1)));
        fill.style.strokeDashoffset = `${len * (1 - frac)}`;
        tv.textContent = fmt(w, v) + (Number.isNaN(n) ? "" : units(w));
        tmin.textContent = r.min; tmax.textContent = r.max;
      };
    },
    led(w) {
      const led = h("span", { class: "led", role: "img" });
      w.body.replaceChildren(led);
      w.update = (v) => {
        const n = num(v);
        const r = range(w);
        const on = !Number.isNaN(n) && n > r.min;
        led.classList.toggle("on", on);
        led.style.opacity = on ? String(0.35 + 0.65 * Math.min(1, (n - r.min) / ((r.max - r.min) || 1))) : "";
        led.setAttribute("aria-label", on ? "on" : "off");
      };
    },
    terminal(w) {
      // Opens with a backlog of recent lines (the string datastream's history); live lines that
      // arrive while it loads are kept and added after it, without repeating any.
      const pre = h("pre", { class: "term-out", "aria-live": "polite" });
      const input = h("input", { "aria-label": "Send to device", placeholder: "Type and press Enter", autocomplete: "off" });
      w.body.replaceChildren(pre, h("form", { class: "term-in" }, input, h("button", { type: "submit" }, "Send")));
      let last = -Infinity;
      let early = [];  // live lines seen before the backlog came
      w.body.querySelector("form").addEventListener("submit", (e) => {
        e.preventDefault();
        if (!input.value) return;
        write(w, input.value);
        input.value = "";
      });
      let atLast = new Set();  // the lines stamped `last` (two lines may share a millisecond)
      const add = (v, ts) => {
        // A line is a stored value with its time: redraws without one (our own write's answer,
        // a property change) add nothing, and a value seen already (backlog, then live) is skipped.
        if (v === null || v === undefined || typeof ts !== "number" || ts < last) return;
        if (ts === last && atLast.has(String(v))) return;
        if (ts > last) { last = ts; atLast = new Set(); }
        atLast.add(String(v));
        pre.appendChild(h("div", {}, String(v)));
        while (pre.childNodes.length > 200) pre.removeChild(pre.firstChild);
        pre.scrollTop = pre.scrollHeight;
      };
      w.update = (v, ts) => { if (early) early.push([v, ts]); else add(v, ts); };
      api("GET", `/api/console/devices/${deviceId}/lines?pin=${w.cfg.pin}&limit=100`)
        .then((data) => { for (const l of data.lines) add(l.value, l.ts); })
        .catch((err) => { w.status.textContent = err.message; })
        .finally(() => {
          const pending = early;
          early = null;
          for (const [v, ts] of pending) add(v, ts);
          w.el.dataset.backlog = "loaded";
        });
    },
    map(w) {
      const plane = svg("svg", { class: "map", viewBox: "0 0 360 180", preserveAspectRatio: "xMidYMid meet", role: "img" });
      const coords = h("p", { class: "coords small" });
      w.body.replaceChildren(plane, coords);
      const track = [];
      w.update = (v) => {
        if (v === null || v === undefined) { coords.textContent = "no location yet"; draw(); return; }
        const [lon, lat] = String(v).split(/[\x00,]/).map(Number);
        if (Number.isNaN(lon) || Number.isNaN(lat)) return;
        const lastPt = track[track.length - 1];
        if (!lastPt || lastPt[0] !== lon || lastPt[1] !== lat) track.push([lon, lat]);
        if (track.length > 500) track.shift();
        coords.textContent = `lat ${lat.toFixed(5)}, lon ${lon.toFixed(5)}`;
        draw();
      };
      function draw() {
        // A plain coordinate view (no map tiles: nothing is loaded from the internet).
        let [x0, x1, y0, y1] = [-180, 180, -90, 90];
        if (track.length) {
          const xs = track.map((p) => p[0]), ys = track.map((p) => p[1]);
          const pad = Math.max(0.01, (Math.max(...xs) - Math.min(...xs)) * 0.2, (Math.max(...ys) - Math.min(...ys)) * 0.2);
          [x0, x1, y0, y1] = [Math.min(...xs) - pad, Math.max(...xs) + pad, Math.min(...ys) - pad, Math.max(...ys) + pad];
          const span = Math.max(x1 - x0, (y1 - y0) * 2);
          const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
          [x0, x1, y0, y1] = [cx - span / 2, cx + span / 2, cy - span / 4, cy + span / 4];
        }
        const sx = (lon) => ((lon - x0) / (x1 - x0)) * 360;
        const sy = (lat) => 180 - ((lat - y0) / (y1 - y0)) * 180;
        const step = niceStep((x1 - x0) / 6);
        const grid = svg("g", { class: "graticule" });
        for (let g = Math.ceil(x0 / step) * step; g <= x1; g += step) {
          grid.append(svg("line", { x1: sx(g), y1: 0, x2: sx(g), y2: 180 }), svg("text", { x: sx(g) + 2, y: 176 }, `${+g.toFixed(5)}°`));
        }
        for (let g = Math.ceil(y0 / step) * step; g <= y1; g += step) {
          grid.append(svg("line", { x1: 0, y1: sy(g), x2: 360, y2: sy(g) }), svg("text", { x: 2, y: sy(g) - 2 }, `${+g.toFixed(5)}°`));
        }
        const path = track.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(2)} ${sy(p[1]).toFixed(2)}`).join(" ");
        const last = track[track.length - 1];
        plane.replaceChildren(...[grid, path && svg("path", { class: "track", d: path }),
                                  last && svg("circle", { class: "here", cx: sx(last[0]), cy: sy(last[1]), r: 4 })].filter(Boolean));
      }
      function niceStep(raw) {
        const p = Math.pow(10, Math.floor(Math.log10(raw)));
        return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
      }
    },
    chart(w) { window.openblynkChart(w, { api, deviceId, RANGES, fmt, units }); },
  };

  function build(el) {
    const cfg = JSON.parse(el.dataset.widget);
    const w = { el, cfg, body: el.querySelector(".widget-body"), title: el.querySelector(".widget-title"),
                pending: null, confirmed: null, update: () => {} };
    // the grid place, through the CSSOM (the page's policy refuses style="..." attributes)
    for (const [prop, v] of [["--x", cfg.x + 1], ["--y", cfg.y + 1], ["--w", cfg.w], ["--h", cfg.h]]) el.style.setProperty(prop, String(v));
    w.status = h("p", { class: "widget-status small" });
    el.appendChild(w.status);
    if (!cfg.ds) {
      w.body.replaceChildren(h("p", { class: "muted small" }, `No datastream on V${cfg.pin} any more: edit the template's dashboard.`));
      return w;
    }
    (kinds[cfg.type] || kinds.value)(w);
    return w;
  }

  // -- live -------------------------------------------------------------------------------
  function showPresence(online) {
    document.querySelectorAll(`[data-presence="${deviceId}"]`).forEach((s) => {
      s.textContent = online ? "Online" : "Offline";
      s.classList.toggle("online", online);
      s.classList.toggle("offline", !online);
    });
  }

  let socket = null;
  let retry = 1000;
  function connect() {
    const proto = window.location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${proto}://${window.location.host}/live?devices=${deviceId}`);
    socket.onopen = () => { retry = 1000; root.dataset.live = "connected"; };
    socket.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "value") onValue(msg.pin, msg.value, msg.ts, msg.origin);
      else if (msg.type === "property") {
        setProp(msg);
        if (loads) liveProps.push(msg);  // a load's snapshot, read meanwhile, must not undo it
        applyProps(msg.pin);
      } else if (msg.type === "presence") {
        showPresence(msg.online);
      } else if (msg.type === "hello") {
        showPresence(msg.online.includes(Number(deviceId)));  // online now, whatever the page was drawn with
        root.dataset.subscribed = "yes";  // the server watches the device for this page from now on
        if (root.dataset.loaded === "yes") load();  // reconnected: catch up on what was missed
      }
    };
    socket.onclose = () => {
      root.dataset.live = "closed";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  function setProp(msg) {
    props[msg.pin] = props[msg.pin] || {};
    if (msg.value === null) delete props[msg.pin][msg.name]; else props[msg.pin][msg.name] = msg.value;
  }

  // Properties that came live while a load was in flight: its snapshot may have been read
  // before them, so they are applied again after it (values carry their time and need not).
  let loads = 0;
  let liveProps = [];
  async function load() {
    loads += 1;
    try {
      const data = await api("GET", `/api/console/devices/${deviceId}/values`);
      for (const [pin, p] of Object.entries(data.properties)) props[Number(pin)] = p;
      liveProps.forEach(setProp);
      for (const v of data.values) onValue(v.pin, v.value, v.ts, "device");
      for (const w of widgets) applyProps(w.cfg.pin);
      root.dataset.loaded = "yes";
    } finally {
      loads -= 1;
      if (!loads) liveProps = [];
    }
  }

  function start() {
    root.querySelectorAll(".widget").forEach((el) => widgets.push(build(el)));
    connect();  // subscribe first, then read the current values: nothing falls in between
    load().catch((err) => window.openblynk.toast(err.message, "bad"));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
