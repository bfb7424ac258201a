// Live online/offline (devices list, device pages) and values (device datastreams tab) over the
// console WebSocket. Reconnects with a growing delay; the list's rows may be replaced by htmx.
"use strict";

(function () {
  let socket = null;
  let watched = "";
  let retry = 1000;

  function ids() {
    const found = new Set();
    document.querySelectorAll("[data-presence]").forEach((el) => found.add(el.dataset.presence));
    return Array.from(found).sort().join(",");
  }

  function apply(msg) {
    if (msg.type === "hello") {  // online now: a change between drawing the page and subscribing
      msg.devices.forEach((id) => apply({ type: "presence", device: id, online: msg.online.includes(id) }));
    } else if (msg.type === "presence") {
      document.querySelectorAll(`[data-presence="${msg.device}"]`).forEach((el) => {
        el.textContent = msg.online ? "Online" : "Offline";
        el.classList.toggle("online", msg.online);
        el.classList.toggle("offline", !msg.online);
      });
    } else if (msg.type === "value") {
      document.querySelectorAll(`[data-value-pin="${msg.pin}"]`).forEach((el) => {
        el.textContent = msg.value === null ? "—" : msg.value;
      });
    }
  }

  function connect() {
    const want = ids();
    if (!want) return;
    if (socket && watched === want) return;
    if (socket) socket.close();
    watched = want;
    const proto = window.location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${proto}://${window.location.host}/live?devices=${want}`);
    socket.onopen = () => { retry = 1000; document.body.dataset.live = "connected"; };
    socket.onmessage = (ev) => apply(JSON.parse(ev.data));
    socket.onclose = () => {
      document.body.dataset.live = "closed";
      const was = socket;
      window.setTimeout(() => { if (socket === was) { socket = null; connect(); } }, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  document.addEventListener("DOMContentLoaded", connect);
  document.addEventListener("htmx:afterSettle", connect);
  if (document.readyState !== "loading") connect();
})();
