// openblynk app: the installable phone app's one script. Hash routes (#/devices, #/devices/<id>,
// #/scenes, #/notifications, #/add) inside one cached shell; data from /app/api/* and the console's
// JSON routes, writes through the console's checked API with the CSRF header; live values and
// presence over /live, the unread count over /live/notices. A device shows its template's mobile
// dashboard (widgets.js) or, without one, a card a datastream. DOM is built with textContent only.
// Values are never shown as live when they may not be: while the network or the /live socket is
// down they are greyed and say "offline since <time>".
"use strict";

(function () {
  const view = () => document.getElementById("view");
  let session = null;
  let socket = null;
  let offlineSince = null;
  let route = "";
  let dashboard = null;  // the open device's mobile dashboard, if its template has one

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function toast(message, kind) {
    const el = document.getElementById("toast");
    el.textContent = message;
    el.className = "show " + (kind || "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.className = ""; }, 3500);
  }

  const clock = (ms) => new Date(ms).toLocaleTimeString();

  // Network state: offline (the browser says so, or a request could not reach the server) or
  // the live socket down both grey the values and say since when.
  function showNet() {
    const net = document.getElementById("net");
    const offline = document.body.dataset.net === "offline";
    const liveDown = document.body.dataset.live === "closed";
    if (offline || liveDown) {
      if (offlineSince === null) offlineSince = Date.now();
      const text = (offline ? "Offline" : "Live updates paused") + " since " + clock(offlineSince);
      net.textContent = text;
      net.hidden = false;
      document.querySelectorAll(".stale-note").forEach((el) => { el.textContent = "offline since " + clock(offlineSince); });
    } else {
      offlineSince = null;
      net.hidden = true;
      net.textContent = "";
    }
  }
  function setNet(state) { document.body.dataset.net = state; showNet(); }
  function setLive(state) { document.body.dataset.live = state; showNet(); }
  window.addEventListener("offline", () => setNet("offline"));
  window.addEventListener("online", () => { setNet("online"); render(); });

  async function api(method, url, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
    let res;
    try {
      res = await fetch(url, { method, headers, credentials: "same-origin",
                               body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      setNet("offline");
      throw new Error("You are offline");
    }
    setNet("online");
    if (res.status === 401 || (res.redirected && new URL(res.url).pathname === "/login")) {
      window.location.assign("/login?next=%2Fapp");
      throw new Error("Please sign in");
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      const message = (data && data.error && data.error.message) || (data && data.detail) || `${res.status} ${res.statusText}`;
      throw new Error(message);
    }
    return data;
  }

  function openSocket(path, onMessage, onState) {
    const proto = window.location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${window.location.host}${path}`);
    ws.onopen = () => onState("connected");
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    ws.onclose = (ev) => onState(ev.code === 4008 ? "refused" : "closed");
    return ws;
  }

  // /live for the devices the current view shows; reconnects with a growing delay.
  let liveRetry = 1000;
  function watch(ids, onMessage) {
    if (socket) { socket.onclose = null; socket.onmessage = null; socket.close(); socket = null; }
    if (!ids.length) { setLive("none"); return; }
    if (document.body.dataset.live !== "closed") setLive("connecting");  // not live until this socket's hello
    const mine = openSocket(`/live?devices=${ids.join(",")}`, (msg) => {
      // live from the server's hello on: it is subscribed and has checked access by then
      if (socket !== mine) return;
      if (msg.type === "hello") {
        liveRetry = 1000;
        setLive("connected");
        // online now: a change between drawing the view and subscribing would be missed otherwise
        msg.devices.forEach((id) => onMessage({ type: "presence", device: id, online: msg.online.includes(id) }));
      } else onMessage(msg);
    }, (state) => {
      if (socket !== mine || state === "connected") return;
      setLive("closed");
      if (state === "refused") return;
      window.setTimeout(() => { if (socket === mine) watch(ids, onMessage); }, liveRetry);
      liveRetry = Math.min(liveRetry * 2, 30000);
    });
    socket = mine;
  }

  // The bell: unread count over /live/notices.
  let bellRetry = 1000;
  function bell() {
    openSocket("/live/notices", (msg) => {
      if (msg.type !== "unread" || !Number.isInteger(msg.count)) return;
      const badge = document.getElementById("bell-count");
      badge.textContent = String(msg.count);
      badge.hidden = msg.count === 0;
      document.getElementById("bell").setAttribute("aria-label", `Notifications: ${msg.count} unread`);
      if (route === "notifications") render();
    }, (state) => {
      document.body.dataset.bell = state;
      if (state === "closed") { window.setTimeout(bell, bellRetry); bellRetry = Math.min(bellRetry * 2, 30000); }
      if (state === "connected") bellRetry = 1000;
    });
  }

  const can = (...perms) => session !== null && perms.some((p) => session.can.includes(p));

  function title(text) { document.getElementById("app-title").textContent = text; }

  function fail(err) {
    view().replaceChildren(h("p", { class: "empty", id: "view-error" }, err.message));
  }

  // Devices: search, online status (live).
  async function devicesView() {
    title("Devices");
    const search = h("input", { type: "search", class: "search", placeholder: "Search devices", "aria-label": "Search devices" });
    const list = h("ul", { class: "list", id: "devices" });
    view().replaceChildren(search, list);
    let timer = null;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(fill, 250); });
    async function fill() {
      const devices = await api("GET", `/app/api/devices?q=${encodeURIComponent(search.value)}`);
      list.replaceChildren(...devices.map((d) => h("li", {},
        h("a", { class: "row", href: `#/devices/${d.id}`, "data-device": d.id },
          h("span", { class: "grow" }, h("span", { class: "title" }, d.name), h("span", { class: "sub" }, d.template)),
          h("span", { class: `status ${d.online ? "online" : "offline"}`, "data-presence": d.id }, d.online ? "Online" : "Offline")))));
      if (!devices.length) list.append(h("li", { class: "empty" }, search.value ? "No device matches." : "No devices yet: add one."));
      watch(devices.slice(0, 1000).map((d) => d.id), (msg) => { if (msg.type === "presence") presence(msg); });
    }
    await fill();
  }

  function presence(msg) {
    document.querySelectorAll(`[data-presence="${msg.device}"]`).forEach((el) => {
      el.textContent = msg.online ? "Online" : "Offline";
      el.classList.toggle("online", msg.online);
      el.classList.toggle("offline", !msg.online);
    });
  }

  // A device: latest values live, controls for writable datastreams, its timeline.
  async function deviceView(id) {
    const [device, values] = await Promise.all([api("GET", `/app/api/devices/${id}`), api("GET", `/api/console/devices/${id}/values`)]);
    title(device.name);
    const latest = new Map(values.values.map((v) => [v.pin, v.value]));
    const status = h("span", { class: `status ${values.online ? "online" : "offline"}`, "data-presence": device.id }, values.online ? "Online" : "Offline");
    const timeline = h("ul", { class: "timeline", id: "timeline" });
    let body;
    let chart = null;
    dashboard = null;
    if (device.dashboard.length) {  // the template's mobile dashboard
      dashboard = window.openblynkWidgets.dashboard(device, latest, { h, write, chart: historyChart, props: values.properties });
      body = [dashboard.element];
    } else {  // none yet: a card a datastream and a chart
      const cards = h("div", { class: "cards", id: "datastreams" }, device.datastreams.map((ds) => card(device, ds, latest.get(ds.pin))));
      chart = liveChart(device);
      body = [device.datastreams.length ? cards : h("p", { class: "empty" }, "This device's template has no datastreams."),
              chart ? chart.element : null];
    }
    view().replaceChildren(
      h("a", { href: "#/devices", class: "button back" }, "‹ Devices"),
      h("p", {}, status, " ", h("span", { class: "muted" }, device.template)),
      ...body.filter(Boolean),
      h("h2", { class: "section-title" }, "Timeline"), timeline);
    watch([device.id], (msg) => {
      if (msg.type === "presence") presence(msg);
      else if (msg.type === "property") { if (dashboard) dashboard.property(msg.pin, msg.name, msg.value); }
      else if (msg.type === "value") { showValue(msg.pin, msg.value, msg.ts); if (chart) chart.add(msg.pin, msg.value, msg.ts); }
    });
    const entries = await api("GET", `/api/console/devices/${id}/timeline?limit=50`);
    timeline.replaceChildren(...entries.map((e) => h("li", {},
      h("time", { datetime: e.ts }, new Date(e.ts).toLocaleString()), " · ", h("strong", {}, e.code || e.kind),
      e.description ? h("span", { class: "muted" }, " ", e.description) : null)));
    if (!entries.length) timeline.append(h("li", { class: "empty" }, "Nothing happened yet."));
  }

  // A chart of a numeric datastream: the averages of the last ``seconds`` (the console's history
  // route), with each live value appended. Drawn as an SVG polyline (attributes only, no style);
  // ``holder`` carries data-points and data-last (what it shows, for the tests and assistive tech).
  const SVG_NS = "http://www.w3.org/2000/svg";
  function historyChart(deviceId, firstPin, seconds, holder) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 300 100");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("class", "chart-line");
    svg.append(line);
    const range = h("span", { class: "muted chart-range" });
    const span = seconds * 1000;
    let points = [];
    let pin = firstPin;
    holder.dataset.points = "0";
    function draw() {
      const end = Date.now();
      const start = end - span;
      points = points.filter((p) => p[0] >= start);
      const ys = points.map((p) => p[1]);
      const lo = Math.min(...ys);
      const hi = Math.max(...ys);
      const height = hi - lo || 1;
      line.setAttribute("points", points.map((p) =>
        `${((p[0] - start) / span * 300).toFixed(1)},${(95 - (p[1] - lo) / height * 90).toFixed(1)}`).join(" "));
      holder.dataset.points = String(points.length);
      holder.dataset.last = points.length ? String(points[points.length - 1][1]) : "";
      svg.setAttribute("aria-label", points.length ? `${points.length} points from ${lo} to ${hi}` : "no data in this period");
      range.textContent = points.length ? `${lo} – ${hi}` : "No data in this period";
    }
    async function load() {
      const end = Date.now();
      const s = await api("GET", `/api/console/devices/${deviceId}/history?pin=${pin}&start=${end - span}&end=${end}&points=120`);
      const stored = s.t.map((t, i) => [t, s.avg[i]]).filter((p) => Number.isFinite(p[1]));
      const last = stored.length ? stored[stored.length - 1][0] : -Infinity;
      // values that arrived live while the history was read stay on the chart
      points = stored.concat(points.filter((p) => p[0] > last));
      draw();
      holder.dataset.history = "loaded";
    }
    load().catch((err) => toast(err.message, "bad"));
    return {
      svg,
      range,
      show(newPin) { pin = newPin; points = []; load().catch((err) => toast(err.message, "bad")); },
      add(value, ts, valuePin) {
        const y = parseFloat(value);
        if ((valuePin !== undefined && valuePin !== pin) || !Number.isFinite(y)) return;
        points.push([Number.isFinite(ts) ? ts : Date.now(), y]);
        draw();
      },
    };
  }

  // Without a mobile dashboard: the last hour of a numeric datastream of the user's choice.
  function liveChart(device) {
    const numeric = device.datastreams.filter((ds) => ds.type === "integer" || ds.type === "double");
    if (!numeric.length) return null;
    const select = h("select", { "aria-label": "Chart datastream" }, numeric.map((ds) => h("option", { value: ds.pin }, ds.name)));
    const element = h("section", { class: "card chart-card", id: "chart" }, h("h3", {}, "Last hour"), select);
    const chart = historyChart(device.id, numeric[0].pin, 3600, element);
    element.append(chart.svg, chart.range, h("span", { class: "stale-note" }));
    select.addEventListener("change", () => chart.show(parseInt(select.value, 10)));
    return { element, add: (pin, value, ts) => chart.add(value, ts, pin) };
  }

  function card(device, ds, value) {
    const out = h("output", { class: "value", "data-pin": ds.pin }, value === undefined || value === null ? "—" : value);
    const body = [h("h3", {}, ds.name), out, ds.units ? h("span", { class: "muted" }, ds.units) : null,
                  h("span", { class: "stale-note" })];
    if (device.can_control && ds.control === "switch") {
      const sw = h("button", { type: "button", role: "switch", class: "switch", "aria-label": ds.name,
                               "aria-checked": value === "1" ? "true" : "false", "data-switch": ds.pin });
      sw.addEventListener("click", () => write(device.id, ds.pin, sw.getAttribute("aria-checked") === "true" ? "0" : "1"));
      body.push(sw);
    } else if (device.can_control && ds.control === "slider") {
      const step = ds.type === "integer" ? 1 : (ds.max - ds.min) / 100;
      const slider = h("input", { type: "range", min: ds.min, max: ds.max, step, value: value === undefined ? ds.min : value,
                                  "aria-label": ds.name, "data-slider": ds.pin });
      slider.addEventListener("change", () => write(device.id, ds.pin, slider.value));
      body.push(slider);
    }
    return h("section", { class: "card", "data-datastream": ds.pin }, body);
  }

  // A value to show: live (with its time) or the answer to the user's own write (``written``:
  // the live feed brings it too, so widgets that add up values, a chart or a terminal, skip it).
  function showValue(pin, value, ts, written) {
    if (dashboard) dashboard.update(pin, value, ts, written === true);
    document.querySelectorAll(`[data-pin="${pin}"]`).forEach((el) => { el.textContent = value === null ? "—" : value; });
    document.querySelectorAll(`[data-switch="${pin}"]`).forEach((el) => el.setAttribute("aria-checked", value === "1" ? "true" : "false"));
    document.querySelectorAll(`[data-slider="${pin}"]`).forEach((el) => { if (value !== null && document.activeElement !== el) el.value = value; });
  }

  async function write(deviceId, pin, value) {
    try {
      const done = await api("POST", `/api/console/devices/${deviceId}/values/${pin}`, { value });
      showValue(pin, done.value, undefined, true);
      toast("Sent");
    } catch (err) {
      toast(err.message, "bad");
    }
  }

  // Scenes: scene automations the user may run.
  async function scenesView() {
    title("Scenes");
    if (!can("automations.view")) { view().replaceChildren(h("p", { class: "empty" }, "You may not see automations.")); return; }
    const page = await api("GET", "/api/console/automations?size=200");
    const scenes = page.content.filter((a) => a.condition && a.condition.type === "scene");
    const list = h("ul", { class: "list", id: "scenes" }, scenes.map((s) => {
      const run = h("button", { type: "button", class: "primary", disabled: !can("automations.execute") || !s.enabled }, "Run");
      run.addEventListener("click", async () => {
        run.disabled = true;
        try { await api("POST", `/api/console/automations/${s.id}/run`); toast(`${s.name} started`); } catch (err) { toast(err.message, "bad"); }
        run.disabled = false;
      });
      return h("li", { class: "row", "data-scene": s.id }, h("span", { class: "grow" }, h("span", { class: "title" }, s.name),
        h("span", { class: "sub" }, s.enabled ? `${s.actions.length} action(s)` : "disabled")), run);
    }));
    view().replaceChildren(scenes.length ? list : h("p", { class: "empty" }, "No scenes yet."));
  }

  async function notificationsView() {
    title("Notifications");
    const page = await api("GET", "/api/console/notifications?size=50");
    const all = h("button", { type: "button", disabled: !page.content.some((n) => !n.read_at) }, "Mark all read");
    all.addEventListener("click", async () => { await api("POST", "/api/console/notifications/read-all"); render(); });
    const list = h("ul", { class: "list", id: "notifications" }, page.content.map((n) => {
      const item = h("li", { class: `row ${n.read_at ? "" : "unread"}`, "data-notification": n.id },
        h("span", { class: "grow" }, h("span", { class: "title" }, n.title),
          h("span", { class: "sub" }, n.body), h("span", { class: "sub" }, new Date(n.created_at).toLocaleString())));
      if (n.device_id) item.append(h("a", { class: "button", href: `#/devices/${n.device_id}` }, "Open"));
      if (!n.read_at) {
        const read = h("button", { type: "button" }, "Read");
        read.addEventListener("click", async () => { await api("POST", `/api/console/notifications/${n.id}/read`); render(); });
        item.append(read);
      }
      return item;
    }));
    view().replaceChildren(all, page.content.length ? list : h("p", { class: "empty" }, "No notifications yet."));
  }

  // Add a device: the manual token flow (name + template, then the token to put in the firmware),
  // and the claim page for devices that came with a claim code.
  async function addView() {
    title("Add device");
    const parts = [];
    if (can("devices.edit", "devices.edit.own")) {
      parts.push(h("p", {}, "Got a device with a claim code or QR code? ", h("a", { href: "/claim", id: "claim-link" }, "Claim it")));
    }
    if (can("devices.edit") && can("templates.view")) {
      const templates = await api("GET", "/api/console/templates");
      const name = h("input", { name: "name", required: true, maxlength: 100 });
      const template = h("select", { name: "template" }, templates.map((t) => h("option", { value: t.id }, t.name)));
      const error = h("p", { class: "error-text", role: "alert" });
      const result = h("div", { id: "add-result" });
      const form = h("form", { class: "stack", id: "add-device" },
        h("label", {}, "Device name", name), h("label", {}, "Template", template), error,
        h("button", { type: "submit", class: "primary" }, "Create device"));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        error.textContent = "";
        try {
          const made = await api("POST", "/api/console/devices", { name: name.value, template_id: parseInt(template.value, 10) });
          result.replaceChildren(
            h("h2", { class: "section-title" }, `${made.name} created`),
            h("p", {}, "Put this auth token in the device's firmware (BLYNK_AUTH_TOKEN), then power it on:"),
            h("code", { class: "token", "data-token": made.id }, made.token),
            h("p", {}, h("a", { class: "button primary", href: `#/devices/${made.id}` }, "Open the device")));
          form.reset();
        } catch (err) { error.textContent = err.message; }
      });
      parts.push(templates.length ? form : h("p", { class: "empty" }, "No templates yet: make one in the console."), result);
    } else if (!parts.length) {
      parts.push(h("p", { class: "empty" }, "You may not add devices."));
    }
    view().replaceChildren(...parts);
  }

  async function render() {
    const hash = window.location.hash || "#/devices";
    const m = hash.match(/^#\/devices\/(\d+)$/);
    route = m ? "device" : hash.slice(2);
    document.querySelectorAll(".tabs a").forEach((a) => {
      const on = a.dataset.tab === (m ? "devices" : route);
      a.classList.toggle("active", on);
      if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    if (route !== "device" && route !== "devices") watch([], null);
    try {
      if (!session) { session = await api("GET", "/app/api/session"); bell(); }
      if (m) await deviceView(parseInt(m[1], 10));
      else if (route === "scenes") await scenesView();
      else if (route === "notifications") await notificationsView();
      else if (route === "add") await addView();
      else await devicesView();
    } catch (err) {
      fail(err);
    }
  }

  window.addEventListener("hashchange", render);
  document.addEventListener("DOMContentLoaded", () => {
    if (!navigator.onLine) setNet("offline");
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/app/sw.js", { scope: "/app" })
        .then(() => { document.body.dataset.sw = "registered"; })
        .catch((err) => { document.body.dataset.sw = "failed: " + err.message; });
    }
    render();
  });
})();
