// openblynk console: the few behaviours every page shares.
// - forms with data-api post JSON to the /api route they name (with the CSRF header) and show
//   the server's error message under the form;
// - buttons with data-api-click and selects with data-api-change do the same for one action;
// - after such an action: reload, go to a page, replace the form by a hidden message of the page
//   (data-then="replace:#id"), toast, remove the row, or refresh an htmx part
//   (data-then="refresh:#id");
// - window.openblynk.h and .svg build elements: server data enters pages as text, never as HTML;
// - htmx requests carry the CSRF header too; the menu toggles on small screens; auth tokens
//   can be shown, copied and rotated.
"use strict";

(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function api(method, url, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    const res = await fetch(url, { method, headers, credentials: "same-origin",
                                   body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      const extra = data && Array.isArray(data.extra) && data.extra.length
        ? ": " + data.extra.map((e) => `${e.key ? e.key + " " : ""}${e.message}`).join("; ") : "";
      const message = (data && data.error && data.error.message) || (data && data.detail && data.detail + extra) ||
                      `${res.status} ${res.statusText}`;
      const err = new Error(message);
      err.status = res.status;
      throw err;
    }
    return data;
  }
  // DOM building: the one way page scripts make elements. Text (server data included) goes in
  // as text nodes, attributes through setAttribute; no script builds HTML from strings.
  const SVG_NS = "http://www.w3.org/2000/svg";
  function build(ns, tag, attrs, children) {
    const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
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
  const h = (tag, attrs, ...children) => build(null, tag, attrs, children);
  const svg = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);
  window.openblynk = { api, csrf, toast, h, svg };

  function toast(message, kind) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.className = "show " + (kind || "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.className = ""; }, 4000);
  }

  // Form fields to JSON: empty fields are left out (the server's defaults apply) unless marked
  // data-keep-empty (a value that may be cleared), checkboxes are
  // booleans (or, with data-type="list", collected into a list), data-type int/float are numbers,
  // data-type="lines" is a list of the field's non-blank lines, trimmed.
  function formJson(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      const type = el.dataset.type;
      if (el.type === "checkbox" && type === "list") {
        out[el.name] = out[el.name] || [];
        if (el.checked) out[el.name].push(el.value);
      } else if (el.type === "checkbox") {
        out[el.name] = el.checked;
      } else if (el.value !== "" || "keepEmpty" in el.dataset) {
        out[el.name] = type === "int" ? parseInt(el.value, 10) : type === "float" ? parseFloat(el.value)
          : type === "lines" ? el.value.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== "")
          : el.value;
      }
    }
    return nest(out);
  }

  // Fields named "a.b" go into an object: {"a": {"b": ...}} (settings that belong together).
  function nest(flat) {
    const out = {};
    for (const [key, value] of Object.entries(flat)) {
      const parts = key.split(".");
      let at = out;
      for (const part of parts.slice(0, -1)) at = (at[part] = at[part] || {});
      at[parts[parts.length - 1]] = value;
    }
    return out;
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(data && data[key] !== undefined ? data[key] : ""));
  }

  function after(then, data, holder) {
    if (!then || then === "reload") { window.location.reload(); return; }
    if (then.startsWith("go:")) { window.location.assign(fill(then.slice(3), data)); return; }
    if (then.startsWith("replace:")) {  // the form gives way to the page's own message (hidden until then)
      const done = document.querySelector(then.slice(8));
      if (done) { holder.replaceWith(done); done.hidden = false; }
      return;
    }
    if (then.startsWith("refresh:")) {  // an htmx element listening for "refresh" reloads its part
      const target = document.querySelector(then.slice(8));
      if (target && window.htmx) window.htmx.trigger(target, "refresh"); else window.location.reload();
      return;
    }
    if (then === "remove-row") { const row = holder.closest("tr"); if (row) row.remove(); toast("Deleted"); return; }
    if (then === "toast") toast("Saved");
  }

  document.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form[data-api]");
    if (!form) return;
    ev.preventDefault();
    const error = form.querySelector(".form-error");
    if (error) error.textContent = "";
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const data = await api(form.dataset.method || "POST", form.dataset.api, formJson(form));
      after(form.dataset.then, data, form);
    } catch (err) {
      if (error) error.textContent = err.message; else toast(err.message, "bad");
    } finally {
      if (button) button.disabled = false;
    }
  });

  document.addEventListener("click", async (ev) => {
    const el = ev.target.closest("[data-api-click]");
    if (!el) return;
    if (el.dataset.confirm && !window.confirm(el.dataset.confirm)) return;
    el.disabled = true;
    try {
      const data = await api(el.dataset.method || "POST", el.dataset.apiClick);
      after(el.dataset.then || "reload", data, el.parentElement);
    } catch (err) {
      toast(err.message, "bad");
      el.disabled = false;
    }
  });

  document.addEventListener("change", async (ev) => {
    const el = ev.target.closest("[data-api-change]");
    if (!el) return;
    try {
      await api(el.dataset.method || "PATCH", el.dataset.apiChange, { [el.dataset.field]: parseInt(el.value, 10) });
      toast("Saved");
    } catch (err) {
      toast(err.message, "bad");
      window.setTimeout(() => window.location.reload(), 1500);
    }
  });

  // Sign out, menu, tokens.
  document.addEventListener("click", async (ev) => {
    if (ev.target.closest("[data-logout]")) {
      try { await api("POST", "/api/auth/logout"); } catch (err) { /* already signed out */ }
      window.location.assign("/login");
    }
    if (ev.target.closest("[data-toggle=nav]")) document.body.classList.toggle("nav-open");
    const show = ev.target.closest("[data-token-show]");
    const copy = ev.target.closest("[data-token-copy]");
    const rotate = ev.target.closest("[data-token-rotate]");
    const target = show || copy || rotate;
    if (!target) return;
    const id = target.dataset.tokenShow || target.dataset.tokenCopy || target.dataset.tokenRotate;
    const code = document.querySelector(`[data-token][data-device="${id}"]`);
    try {
      if (rotate) {
        if (!window.confirm("Replace this device's auth token? The device is disconnected until it has the new one.")) return;
        const data = await api("POST", `/api/console/devices/${id}/token/rotate`);
        code.textContent = data.token;
        toast("New token made; the old one no longer works");
        return;
      }
      const data = await api("GET", `/api/console/devices/${id}/token`);
      code.textContent = data.token;
      if (copy) {
        await copyText(data.token);
        toast("Token copied");
      }
    } catch (err) {
      toast(err.message, "bad");
    }
  });

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = document.createElement("textarea");  // plain HTTP: the older way
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  document.addEventListener("htmx:configRequest", (ev) => { ev.detail.headers["X-CSRF-Token"] = csrf(); });

  // A select with data-refresh="#id" makes that htmx element reload its part when it changes.
  document.addEventListener("change", (ev) => {
    const el = ev.target.closest("select[data-refresh]");
    const target = el && document.querySelector(el.dataset.refresh);
    if (target && window.htmx) window.htmx.trigger(target, "refresh");
  });
})();
