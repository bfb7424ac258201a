// Static tokens page: the CSV import form. A chosen file is read into the CSV text field; the
// "column = Field" lines become the mapping the server wants. Nothing here builds HTML: the
// only text shown is the server's error message, set as textContent.
"use strict";

(function () {
  document.addEventListener("change", (ev) => {
    const input = ev.target.closest("input[data-csv-file]");
    if (!input || !input.files || !input.files[0]) return;
    const text = input.form.querySelector("textarea[name=csv]");
    input.files[0].text().then((content) => { text.value = content; });
  });

  function mapping(lines) {
    const out = {};
    for (const line of lines.split(/\r?\n/)) {
      const at = line.indexOf("=");
      if (at < 0) continue;
      const column = line.slice(0, at).trim();
      const field = line.slice(at + 1).trim();
      if (column && field) out[column] = field;
    }
    return out;
  }

  document.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form[data-inject-import]");
    if (!form) return;
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    error.textContent = "";
    const body = {
      template_id: parseInt(form.elements.template_id.value, 10),
      csv: form.elements.csv.value,
      mapping: mapping(form.elements.mapping.value),
    };
    try {
      const made = await window.openblynk.api("POST", "/api/inject/static-tokens/import", body);
      window.openblynk.toast(`${made.created} tokens made`);
      window.location.reload();
    } catch (err) {
      error.textContent = err.message;
    }
  });
})();

// Add a device over Wi-Fi: ask for a provisioning token, then show it with the command that
// hands it to the device (all as text).
(function () {
  document.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form[data-provision]");
    if (!form) return;
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    error.textContent = "";
    try {
      const made = await window.openblynk.api("POST", "/api/inject/provisioning", {
        template_id: parseInt(form.elements.template_id.value, 10),
        name: form.elements.name.value,
      });
      const steps = document.getElementById("provision-steps");
      steps.querySelector("[data-provision-token]").textContent = made.token;
      const until = steps.querySelector("[data-provision-until]");
      until.textContent = new Date(made.expires_at).toLocaleString();
      until.setAttribute("datetime", made.expires_at);
      steps.querySelector("[data-provision-command]").textContent =
        // --token=: a token may start with "-", which the command line would take for an option
        `openblynk provision --token=${made.token} --ssid "YOUR-WIFI" --password "…" ` +
        `--server ${window.location.hostname} --port ${made.mqtt_port}`;
      steps.hidden = false;
    } catch (err) {
      error.textContent = err.message;
    }
  });
})();
