// A device's page: the actions menu's Ping (shows the round trip the broker measured), Reboot
// and Request info (the device's info/mcu answer with the time it arrived, also put on the
// Info tab; or the server's "did not answer": Blynk's own libraries ignore the request);
// on the Datastreams tab, "Export CSV" downloads the chosen datastream's raw points of a time
// range (UTC) from /api/console/devices/<id>/export, streamed by the server. Text only.
"use strict";

(function () {
  const { api } = window.openblynk;
  const result = document.querySelector("[data-device-menu-result]");

  function say(text, outcome) {
    if (!result) return;
    result.textContent = text;
    result.dataset.outcome = outcome;
  }

  // The device's info/mcu answer, as text: in the menu's result and on the Info tab.
  function showInfo(got) {
    const at = new Date(got.received_at).toISOString().slice(11, 19);
    const firmware = (got.fw_version || "—") + (got.fw_build ? ` (build ${got.fw_build})` : "");
    const parts = [`firmware ${firmware}`];
    if (got.fw_type) parts.push(`type ${got.fw_type}`);
    if (got.board_template_id) parts.push(`template ${got.board_template_id}`);
    if (got.blynk_version) parts.push(`library ${got.blynk_version}`);
    say(`Info received at ${at} UTC: ${parts.join(", ")}`, "ok");
    document.querySelectorAll("[data-info-firmware]").forEach((el) => { el.textContent = firmware; });
    document.querySelectorAll("[data-info-field]").forEach((el) => { el.textContent = got[el.dataset.infoField] || "—"; });
  }

  document.addEventListener("click", async (ev) => {
    const ping = ev.target.closest("[data-device-ping]");
    const reboot = ev.target.closest("[data-device-reboot]");
    const info = ev.target.closest("[data-device-info]");
    const button = ping || reboot || info;
    if (!button) return;
    if (reboot && !window.confirm(reboot.dataset.confirm)) return;
    button.disabled = true;
    say(ping ? "Pinging…" : info ? "Waiting for the device's info…" : "Sending…", "waiting");
    try {
      if (info) {
        showInfo(await api("POST", `/api/console/devices/${info.dataset.deviceInfo}/info`));
      } else if (ping) {
        const answer = await api("POST", `/api/console/devices/${ping.dataset.devicePing}/ping`);
        say(`Round trip ${answer.rtt_ms.toFixed(1)} ms`, "ok");
      } else {
        await api("POST", `/api/console/devices/${reboot.dataset.deviceReboot}/reboot`);
        say("Reboot sent", "ok");
      }
    } catch (err) {
      say(err.message, "bad");
    } finally {
      button.disabled = false;
    }
  });

  const form = document.querySelector("form[data-export-form]");
  if (!form) return;
  const utc = (value) => (value.length === 16 ? `${value}:00` : value) + "Z";
  // The range defaults to the last 24 hours.
  const now = new Date();
  const iso = (d) => d.toISOString().slice(0, 19);
  if (!form.elements.start.value) form.elements.start.value = iso(new Date(now.getTime() - 86400000));
  if (!form.elements.end.value) form.elements.end.value = iso(now);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    error.textContent = "";
    const start = form.elements.start.value;
    const end = form.elements.end.value;
    if (!start || !end || utc(end) <= utc(start)) {
      error.textContent = "Choose a range whose end is after its start.";
      return;
    }
    const query = new URLSearchParams({ pin: form.elements.pin.value, start: utc(start), end: utc(end) });
    window.location.assign(`/api/console/devices/${form.dataset.device}/export?${query}`);
  });
})();
