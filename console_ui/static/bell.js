// The bell in the header: the signed-in user's unread notification count, kept live over the
// /live/notices WebSocket (reconnecting with a growing delay). Text only: the count is put in
// with textContent. On the notifications page a changed count reloads the list.
"use strict";

(function () {
  let retry = 1000;
  let shown = null;

  function show(count) {
    const badge = document.querySelector("[data-bell-count]");
    if (!badge) return;
    badge.textContent = String(count);
    badge.hidden = count === 0;
    const bell = document.querySelector("a[data-bell]");
    if (bell) bell.setAttribute("aria-label", `Notifications: ${count} unread`);
    if (shown !== null && count > shown && document.getElementById("notifications")) window.location.reload();
    shown = count;
  }

  function connect() {
    if (!document.querySelector("a[data-bell]")) return;
    const proto = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${proto}://${window.location.host}/live/notices`);
    socket.onopen = () => { retry = 1000; document.body.dataset.bellSocket = "connected"; };
    socket.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "unread" && Number.isInteger(msg.count)) show(msg.count);
    };
    socket.onclose = (ev) => {
      document.body.dataset.bellSocket = "closed";
      if (ev.code === 4008) return;  // signed out or no longer allowed: no point trying again
      window.setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
