// The webhook editor: shows the fields of the chosen trigger, fills the datastream select of the
// chosen template or device, sends the form as JSON (headers from "Name: value" lines), and
// shows the outcome of "send test". Elements are built with window.openblynk.h (text only).
"use strict";

(function () {
  const form = document.getElementById("webhook-editor");
  if (!form) return;
  const { api, h, toast } = window.openblynk;
  const config = JSON.parse(form.dataset.config);
  const trigger = form.querySelector("[data-trigger]");
  const template = form.querySelector("[data-template]");
  const device = form.querySelector("[data-device]");
  const pin = form.querySelector("[data-pin]");
  let wantedPin = pin.dataset.selected;

  function templateId() {
    if (trigger.value === "device_datastream") {
      const option = device.selectedOptions[0];
      return option ? Number(option.dataset.templateId) : null;
    }
    return template.value ? Number(template.value) : null;
  }

  function fillPins() {
    const found = config.templates.find((t) => t.id === templateId());
    const keep = wantedPin !== undefined && wantedPin !== "" ? wantedPin : pin.value;
    pin.replaceChildren(h("option", { value: "" }, "Any datastream"),
      ...(found ? found.datastreams : []).map((d) => h("option", { value: String(d.pin) }, `${d.name} (V${d.pin})`)));
    pin.value = [...pin.options].some((o) => o.value === keep) ? keep : "";
    wantedPin = undefined;
  }

  function showTrigger() {
    for (const el of form.querySelectorAll("[data-for-trigger]")) {
      const shown = el.dataset.forTrigger.split(" ").includes(trigger.value);
      el.hidden = !shown;
      for (const field of el.querySelectorAll("select, input")) field.disabled = !shown;
    }
    fillPins();
  }

  trigger.addEventListener("change", showTrigger);
  template.addEventListener("change", fillPins);
  device.addEventListener("change", fillPins);
  showTrigger();

  function body() {
    const value = (name) => form.elements[name].value;
    const out = {
      name: value("name").trim(),
      enabled: form.elements.enabled.checked,
      trigger: trigger.value,
      method: value("method"),
      url: value("url").trim(),
      body_kind: value("body_kind"),
      body: value("body"),
      headers: {},
    };
    for (const line of value("headers").split(/\r?\n/)) {
      const at = line.indexOf(":");
      if (line.trim() === "") continue;
      if (at < 1) throw new Error(`a header line needs "Name: value": ${line}`);
      out.headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    if (trigger.value === "template_datastream") out.template_id = Number(template.value);
    if (trigger.value === "device_datastream") out.device_id = Number(device.value);
    if (!pin.disabled && pin.value !== "") out.pin = Number(pin.value);
    return out;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    error.textContent = "";
    try {
      const saved = await api(form.dataset.verb, form.dataset.url, body());
      if (form.dataset.id) { toast("Saved"); window.location.reload(); }
      else window.location.assign(`/webhooks/${saved.id}`);
    } catch (err) {
      error.textContent = err.message;
    }
  });

  const result = document.getElementById("webhook-test-result");
  document.addEventListener("click", async (ev) => {
    const test = ev.target.closest("[data-webhook-test]");
    const rotate = ev.target.closest("[data-webhook-rotate]");
    if (test) {
      test.disabled = true;
      result.replaceChildren(h("p", { class: "muted" }, "Sending…"));
      try {
        const r = await api("POST", `/api/console/webhooks/${test.dataset.webhookTest}/test`);
        const verdict = r.ok ? `Delivered: ${r.status}` : r.refused ? "Refused, nothing was sent" : `Failed${r.status ? ": " + r.status : ""}`;
        const parts = [h("p", { class: r.ok ? "ok" : "bad", "data-test-outcome": r.ok ? "ok" : "failed" }, verdict,
          ` (${r.attempts} ${r.attempts === 1 ? "try" : "tries"}, ${r.duration_ms} ms)`)];
        if (r.error) parts.push(h("p", { "data-test-error": "" }, r.error));
        if (r.response_head) parts.push(h("pre", { "data-test-response": "" }, r.response_head));
        result.replaceChildren(...parts);
      } catch (err) {
        result.replaceChildren(h("p", { class: "bad", "data-test-outcome": "error" }, err.message));
      } finally {
        test.disabled = false;
      }
    } else if (rotate) {
      if (!window.confirm("Make a new secret? The old one stops working at once.")) return;
      try {
        const r = await api("POST", `/api/console/webhooks/${rotate.dataset.webhookRotate}/secret`);
        document.getElementById("webhook-secret").textContent = r.secret;
        toast("New secret made");
      } catch (err) {
        toast(err.message, "bad");
      }
    }
  });
})();
