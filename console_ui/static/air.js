// Blynk.Air pages: the firmware upload (streamed as the raw request body, with a progress bar,
// then the parsed info tag, hashes and signature shown), the new-shipment form (its fields
// turned into the nested document POST /api/ota/shipments takes) and a shipment's live progress.
"use strict";

(function () {
  const { api, csrf, toast } = window.openblynk;

  // -- firmware upload ----------------------------------------------------------------------
  const upload = document.getElementById("firmware-upload");
  if (upload) {
    const bar = upload.querySelector("progress");
    const error = upload.querySelector(".form-error");
    const result = document.getElementById("upload-result");
    upload.addEventListener("submit", (ev) => {
      ev.preventDefault();
      error.textContent = "";
      const file = upload.elements.file.files[0];
      if (!file) { error.textContent = "Choose a .bin or .tar file"; return; }
      if (!/\.(bin|tar)$/i.test(file.name)) { error.textContent = "Firmware must be a .bin or .tar file"; return; }
      if (file.size > Number(upload.dataset.max)) {
        error.textContent = `The file has ${file.size} bytes, more than the limit of ${upload.dataset.max}`;
        return;
      }
      const button = upload.querySelector("button[type=submit]");
      button.disabled = true;
      bar.hidden = false;
      bar.value = 0;
      const xhr = new XMLHttpRequest();  // fetch() cannot report upload progress
      xhr.open("POST", `/api/ota/firmware?filename=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
      xhr.onload = () => {
        button.disabled = false;
        bar.hidden = true;
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status !== 201) {
          error.textContent = (data && data.error && data.error.message) || (data && data.detail) || `${xhr.status} ${xhr.statusText}`;
          return;
        }
        show(data);
        upload.reset();
        if (window.htmx) window.htmx.ajax("GET", "/air/firmware", { target: "#firmware-rows", swap: "innerHTML" });
      };
      xhr.onerror = () => { button.disabled = false; bar.hidden = true; error.textContent = "The upload failed: the connection was lost"; };
      xhr.send(file);
    });

    function show(fw) {
      for (const el of result.querySelectorAll("[data-f]")) {
        const v = fw[el.dataset.f];
        el.textContent = el.dataset.f === "size" ? `${v.toLocaleString("en")} bytes` : (v === null || v === "" ? "—" : String(v));
      }
      result.querySelector("[data-ship]").href = `/air/shipments/new?firmware=${fw.id}`;
      result.hidden = false;
      result.dataset.firmware = String(fw.id);
    }
  }

  // -- new shipment ----------------------------------------------------------------------------
  const form = document.getElementById("shipment-form");
  if (form) {
    const el = form.elements;
    const sync = () => {
      form.querySelectorAll("[data-target]").forEach((d) => { d.hidden = d.dataset.target !== el.target_kind.value; });
      form.querySelectorAll("[data-pacing]").forEach((d) => { d.hidden = d.dataset.pacing !== el.pacing_kind.value; });
      form.querySelector("[data-abort]").hidden = !el.abort_on.checked;
    };
    form.addEventListener("change", sync);
    sync();
    const filter = form.querySelector("[data-device-filter]");
    if (filter) filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      form.querySelectorAll(".pick").forEach((p) => { p.hidden = q !== "" && !p.dataset.name.includes(q); });
    });

    const number = (name, label) => {
      const raw = el[name].value.trim();
      const n = Number(raw);
      if (raw === "" || !Number.isFinite(n)) throw new Error(`${label} must be a number`);
      return n;
    };
    const integer = (name, label) => {
      const n = number(name, label);
      if (!Number.isInteger(n)) throw new Error(`${label} must be a whole number`);
      return n;
    };

    function documentOf() {
      const kind = el.target_kind.value;
      let target;
      if (kind === "devices") {
        const ids = [...form.querySelectorAll("input[name=device_ids]:checked")].map((c) => Number(c.value));
        if (!ids.length) throw new Error("Choose at least one device");
        target = { kind, device_ids: ids };
      } else if (kind === "template") {
        if (!el.template_id) throw new Error("This organization has no template to ship to");
        target = { kind, template_id: Number(el.template_id.value) };
      } else if (kind === "org") {
        target = { kind, org_id: Number(el.org_id.value) };
      } else {
        if (!el.tag.value.trim()) throw new Error("Name the tag");
        target = { kind, tag: el.tag.value.trim() };
      }
      const pacing = el.pacing_kind.value === "constant"
        ? { kind: "constant", per_minute: integer("per_minute", "Devices a minute") }
        : { kind: "exponential", start: integer("start", "First step"), factor: number("factor", "Growth factor"),
            success_percent: number("success_percent", "Success needed") };
      return {
        name: el.name.value.trim(), firmware_id: Number(el.firmware_id.value), target,
        apply_mode: el.apply_mode.value, preferred_time: el.preferred_time.value,
        attempts_limit: integer("attempts_limit", "Attempts per device"),
        attempts_period_hours: number("attempts_period_hours", "The attempts period"),
        pacing,
        abort: el.abort_on.checked ? { failure_percent: number("failure_percent", "Failures"),
                                       min_sample: integer("min_sample", "The minimum sample") } : null,
        device_timeout_seconds: integer("device_timeout_seconds", "Device timeout"),
      };
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const error = form.querySelector(".form-error");
      error.textContent = "";
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const shipment = await api("POST", "/api/ota/shipments", documentOf());
        window.location.assign(`/air/shipments/${shipment.id}`);
      } catch (err) {
        error.textContent = err.message;
        button.disabled = false;
      }
    });
  }
  // -- a shipment's progress: reloaded every data-poll ms while the page is in view (a timer here,
  // not an htmx trigger filter: those are evaluated code, which the console's policy forbids) ------
  const progress = document.getElementById("progress");
  if (progress && !window.htmx) toast("htmx is missing: progress will not update", "bad");
  if (progress && window.htmx && progress.dataset.poll) {
    const timer = window.setInterval(() => {
      if (document.visibilityState === "visible") window.htmx.trigger(progress, "refresh");
    }, Number(progress.dataset.poll));
    progress.addEventListener("htmx:afterRequest", (ev) => {  // 286: the shipment ended, as htmx's polling stop
      if (ev.detail.xhr && ev.detail.xhr.status === 286) { window.clearInterval(timer); delete progress.dataset.poll; }
    });
  }
})();
