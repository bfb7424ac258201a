// Locations: a location's device choices are sent as numbers to PUT /api/locations/<id>/devices
// (CSRF header by window.openblynk.api); the count in the table follows the answer (text only).
"use strict";

(function () {
  const { api, toast } = window.openblynk;
  document.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form[data-location-devices]");
    if (!form) return;
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    error.textContent = "";
    const ids = [...form.querySelectorAll("input[name=device_ids]:checked")].map((el) => Number(el.value));
    try {
      const saved = await api("PUT", `/api/locations/${form.dataset.locationDevices}/devices`, { device_ids: ids });
      const count = document.querySelector(`tr[data-location="${saved.id}"] [data-location-count]`);
      if (count) count.textContent = String(saved.devices);
      toast("Saved");
    } catch (err) {
      error.textContent = err.message;
    }
  });
})();
