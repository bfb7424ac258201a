// OAuth2 clients: the new-client form is sent as JSON to /api/oauth2/clients (CSRF header by
// window.openblynk.api), and the answer's secret is shown once, as text. A client's "May use
// MQTT" box is switched with PUT /api/oauth2/clients/<id>/mqtt.
"use strict";

(function () {
  const { api } = window.openblynk;
  for (const box of document.querySelectorAll("input[data-mqtt-toggle]")) {
    box.addEventListener("change", async () => {
      const error = document.querySelector("[data-mqtt-error]");
      error.textContent = "";
      box.disabled = true;
      try {
        await api("PUT", `/api/oauth2/clients/${box.dataset.mqttToggle}/mqtt`, { mqtt_enabled: box.checked });
        window.location.reload();
      } catch (err) {
        box.checked = !box.checked;
        box.disabled = false;
        error.textContent = err.message;
      }
    });
  }
  const form = document.querySelector("form[data-client-form]");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    error.textContent = "";
    const body = {
      name: form.elements.name.value.trim(),
      permissions: [...form.querySelectorAll("input[name=permissions]:checked")].map((el) => el.value),
      mqtt_enabled: form.elements.mqtt_enabled.checked,
    };
    if (form.elements.org_id) body.org_id = Number(form.elements.org_id.value);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const made = await api("POST", "/api/oauth2/clients", body);
      const shown = document.getElementById("new-secret");
      shown.querySelector("[data-new-client-id]").textContent = made.client.client_id;
      shown.querySelector("[data-new-client-secret]").textContent = made.client_secret;
      document.getElementById("new-client").hidden = true;
      shown.hidden = false;
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
    }
  });
})();
