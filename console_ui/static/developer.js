// OAuth2 clients: the new-client form is sent as JSON to /api/oauth2/clients (CSRF header by
// window.openblynk.api), and the answer's secret is shown once, as text.
"use strict";

(function () {
  const form = document.querySelector("form[data-client-form]");
  if (!form) return;
  const { api } = window.openblynk;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    error.textContent = "";
    const body = {
      name: form.elements.name.value.trim(),
      permissions: [...form.querySelectorAll("input[name=permissions]:checked")].map((el) => el.value),
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
