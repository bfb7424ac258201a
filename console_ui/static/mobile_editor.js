// The mobile dashboard editor of a template: an ordered list of widgets in a phone-shaped preview
// (4 columns). Add a widget from the palette, drag a widget onto another to move it there, or
// select it and use the keyboard: arrows move it earlier or later, Shift + arrows resize it,
// Delete removes it. Bind each to a datastream and set it up in the inspector, then save. The
// server checks everything again when saving. Names come from users: they enter as text only.
// An image button's two pictures come from the template organization's image library (uploaded,
// listed and deleted here through /api/console/images; served back from the same origin).
"use strict";

(function () {
  const root = document.getElementById("mobile-editor");
  if (!root) return;
  const { h } = window.openblynk;
  const cfg = JSON.parse(root.dataset.config);
  const editable = root.dataset.editable === "yes";
  const phone = document.getElementById("phone");
  const inspector = document.getElementById("mobile-inspector");
  const error = document.getElementById("mobile-error");
  const COLS = cfg.columns;
  const SIZES = { chart: [4, 2], map: [4, 2], terminal: [4, 2], gauge: [2, 2], image_button: [2, 2], slider: [4, 1], segmented: [4, 1],
                  labeled_value: [4, 1], menu: [4, 1] };
  const PERIODS = ["15m", "1h", "6h", "1d", "1w"];
  // the server leaves out settings at their defaults: the editor works with whole widgets
  const whole = (list) => list.map((w) => ({ w: 2, h: 1, ...w }));
  let widgets = whole(JSON.parse(root.dataset.widgets));
  let selected = null;
  let counter = Date.now() % 100000;
  let images = [];  // the image library of the template's organization, newest first
  const imageOf = (id) => images.find((i) => i.id === id);

  const dsOf = (pin) => cfg.datastreams.find((d) => d.pin === pin);
  const titleOf = (w) => w.title || (dsOf(w.pin) || {}).name || `V${w.pin}`;

  function render(focus) {
    phone.replaceChildren(...widgets.map((w, i) => {
      const ds = dsOf(w.pin);
      const el = h("li", { class: "mwidget" + (w.id === selected ? " selected" : ""), tabindex: 0, "data-id": w.id,
                           "data-type": w.type, "aria-selected": w.id === selected ? "true" : "false",
                           "aria-label": `${i + 1}. ${cfg.names[w.type]}: ${titleOf(w)}, ${w.w} × ${w.h}` },
        h("span", { class: "mwidget-title" }, titleOf(w)),
        h("span", { class: "muted small" }, `${cfg.names[w.type]} · ${ds ? `V${w.pin}` : `no datastream V${w.pin}`}`),
        w.type === "image_button" ? previewImage(w) : null);
      el.style.cssText = `--w:${w.w};--h:${w.h}`;  // the CSSOM: allowed by the page's policy
      return el;
    }));
    if (!widgets.length) phone.append(h("li", { class: "empty muted" }, editable ? "Add widgets from the list." : "No widgets yet."));
    root.dataset.count = String(widgets.length);
    root.dataset.order = widgets.map((w) => w.id).join(",");
    inspect();
    if (focus) { const el = phone.querySelector(`[data-id="${CSS.escape(focus)}"]`); if (el) el.focus(); }
  }

  function select(id) { selected = id; render(id); }

  // The phone preview shows an image button as the app does when it is off.
  function previewImage(w) {
    const img = imageOf(w.off_image);
    if (!img) return h("span", { class: "muted small" }, "choose its images");
    const el = h("img", { class: "mwidget-image", src: img.url, alt: `off: ${img.name}` });
    el.addEventListener("load", () => { el.dataset.loaded = "yes"; });  // decoded (the tests look)
    return el;
  }

  async function loadImages() {
    images = await window.openblynk.api("GET", `/api/console/images?org_id=${cfg.org_id}`);
    root.dataset.images = String(images.length);
  }

  // Upload a file to the library (its type is checked on the server by its first bytes); the
  // selected image button takes it as its off image, then as its on image, when it lacks them.
  async function upload(file) {
    error.textContent = "";
    const res = await fetch(`/api/console/images?org_id=${cfg.org_id}&name=${encodeURIComponent(file.name)}`, {
      method: "POST", credentials: "same-origin", body: file,
      headers: { "Accept": "application/json", "Content-Type": file.type || "application/octet-stream",
                 "X-CSRF-Token": window.openblynk.csrf() } });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      error.textContent = (data && data.error && data.error.message) || (data && data.detail) || `${res.status} ${res.statusText}`;
      return;
    }
    await loadImages();
    const w = widgets.find((x) => x.id === selected);
    if (w && w.type === "image_button") {
      if (!w.off_image) w.off_image = data.id;
      else if (!w.on_image) w.on_image = data.id;
    }
    render(selected);
    window.openblynk.toast(`Image ${data.name} added to the library`);
  }

  async function removeImage(img) {
    error.textContent = "";
    try {
      await window.openblynk.api("DELETE", `/api/console/images/${img.id}`);
      await loadImages();
      render(selected);
    } catch (err) {
      error.textContent = err.message;
    }
  }

  // The library, under an image button's settings: upload, see, delete.
  function library() {
    const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp", id: "image-upload" });
    file.addEventListener("change", () => { if (file.files.length) upload(file.files[0]); });
    const list = h("ul", { class: "image-library", id: "image-library" }, images.map((img) => {
      const del = editable ? h("button", { type: "button", class: "danger small", "aria-label": `Delete image ${img.name}` }, "Delete") : null;
      if (del) del.addEventListener("click", () => removeImage(img));
      return h("li", { "data-image": img.id }, h("img", { src: img.url, alt: "" }), h("span", {}, img.name), del);
    }));
    if (!images.length) list.append(h("li", { class: "muted small" }, "No images yet."));
    return h("section", { class: "library", "aria-label": "Image library" }, h("h3", {}, "Image library"),
      h("p", { class: "muted small" }, "PNG, JPEG or WebP; the app shows them on this template's image buttons."),
      editable ? h("label", { for: "image-upload" }, "Upload image ", file) : null, list);
  }

  function move(w, by) {
    const from = widgets.indexOf(w);
    const to = Math.max(0, Math.min(widgets.length - 1, from + by));
    if (to === from) return;
    widgets.splice(from, 1);
    widgets.splice(to, 0, w);
    render(w.id);
  }

  function resize(w, dw, dh) {
    w.w = Math.max(1, Math.min(COLS, w.w + dw));
    w.h = Math.max(1, Math.min(4, w.h + dh));
    render(w.id);
  }

  function remove(w) {
    widgets = widgets.filter((x) => x !== w);
    selected = null;
    render();
  }

  phone.addEventListener("keydown", (ev) => {
    const el = ev.target.closest(".mwidget");
    if (!el) return;
    const w = widgets.find((x) => x.id === el.dataset.id);
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(w.id); return; }
    if (!editable) return;
    if (ev.key === "Delete" || ev.key === "Backspace") { ev.preventDefault(); remove(w); return; }
    const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[ev.key];
    if (!d) return;
    ev.preventDefault();
    selected = w.id;
    if (ev.shiftKey) resize(w, d[0], d[1]); else move(w, d[0] + d[1]);
  });

  // Dragging (mouse or touch): the dragged widget takes the place of the one under the pointer.
  phone.addEventListener("pointerdown", (ev) => {
    const el = ev.target.closest(".mwidget");
    if (!el) return;
    if (!editable) { select(el.dataset.id); return; }
    const w = widgets.find((x) => x.id === el.dataset.id);
    phone.setPointerCapture(ev.pointerId);
    const over = (e) => {
      const target = document.elementFromPoint(e.clientX, e.clientY);
      const under = target && target.closest(".mwidget");
      if (!under || under.dataset.id === w.id) return;
      const to = widgets.findIndex((x) => x.id === under.dataset.id);
      widgets.splice(widgets.indexOf(w), 1);
      widgets.splice(to, 0, w);
      selected = w.id;
      render();
    };
    const up = () => {
      phone.removeEventListener("pointermove", over);
      phone.removeEventListener("pointerup", up);
      phone.classList.remove("dragging");
      selected = w.id;  // a press without a move selects; the click lands on the phone (the capture)
      render(w.id);
    };
    phone.classList.add("dragging");
    phone.addEventListener("pointermove", over);
    phone.addEventListener("pointerup", up);
  });

  // Options a segmented switch or menu starts with: the enum's labels, or the integers of the range.
  function defaultOptions(ds, most) {
    const fromEnum = Object.entries(ds.enum || {}).filter(([k]) => /^-?\d+$/.test(k))
      .map(([k, v]) => ({ value: parseInt(k, 10), label: String(v).slice(0, 40) || k }));
    if (fromEnum.length >= 2) return fromEnum.slice(0, most);
    const lo = Number.isFinite(ds.min) ? Math.ceil(ds.min) : 0;
    const hi = Number.isFinite(ds.max) ? Math.floor(ds.max) : lo + 2;
    const out = [];
    for (let v = lo; v <= hi && out.length < most; v++) out.push({ value: v, label: String(v) });
    return out.length >= 2 ? out : [{ value: 0, label: "0" }, { value: 1, label: "1" }];
  }

  root.querySelectorAll("[data-add]").forEach((b) => b.addEventListener("click", () => {
    const type = b.dataset.add;
    const ds = cfg.datastreams.find((d) => cfg.accepts[type].includes(d.type) &&
      (!["slider", "step", "gauge"].includes(type) || (d.min !== null && d.max !== null)));
    if (!ds) {
      error.textContent = `A ${cfg.names[type]} needs a datastream of type ${cfg.accepts[type].join(" or ")}` +
        (["slider", "step", "gauge"].includes(type) ? " with a min and a max" : "") + ": add one on the Datastreams tab first.";
      return;
    }
    error.textContent = "";
    const [wd, ht] = SIZES[type] || [2, 1];
    const w = { id: `m${++counter}`, type, pin: ds.pin, w: wd, h: ht };
    if (cfg.options[type]) w.options = defaultOptions(ds, cfg.options[type][1]);
    widgets.push(w);
    select(w.id);
  }));

  const field = (label, control) => h("label", {}, `${label} `, control);
  const input = (name, attrs) => h("input", { name, ...attrs });
  const number = (name, attrs) => input(name, { type: "number", step: "any", ...attrs });
  const choice = (name, values) => h("select", { name }, values.map(([v, t]) => new Option(t, String(v))));
  const optionsText = (w) => (w.options || []).map((o) => `${o.value}=${o.label}`).join("\n");

  function inspect() {
    const w = widgets.find((x) => x.id === selected);
    if (!w) {
      inspector.replaceChildren(h("p", { class: "muted" }, "Select a widget to bind it to a datastream and set it up."));
      return;
    }
    const options = cfg.datastreams.filter((d) => cfg.accepts[w.type].includes(d.type))
      .map((d) => new Option(`${d.name} (V${d.pin}, ${d.type})`, String(d.pin), false, d.pin === w.pin));
    const at = widgets.indexOf(w);
    const sizes = (most) => Array.from({ length: most }, (_, i) => [i + 1, String(i + 1)]);
    inspector.replaceChildren(h("h2", {}, cfg.names[w.type]), h("form", { class: "inspect" },
      h("fieldset", { disabled: !editable },
        field("Datastream", h("select", { name: "pin" }, options)),
        field("Title", input("title", { maxlength: 60 })),
        h("div", { class: "row" }, field("Width", choice("w", sizes(COLS))), field("Height", choice("h", sizes(4)))),
        ["button", "image_button"].includes(w.type) ? field("Mode", choice("mode", [["push", "Push"], ["switch", "Switch"]])) : null,
        w.type === "image_button" ? ["off_image", "on_image"].map((k) => field(k === "off_image" ? "Off image" : "On image",
          choice(k, [["", "—"], ...images.map((i) => [i.id, i.name])]))) : null,
        ["switch", "button", "image_button"].includes(w.type) ? [field("On value", input("on", { maxlength: 40 })), field("Off value", input("off", { maxlength: 40 }))] : null,
        ["slider", "step", "gauge"].includes(w.type) ? [field("Min", number("min")), field("Max", number("max"))] : null,
        ["slider", "step"].includes(w.type) ? field("Step", number("step", { min: 0 })) : null,
        cfg.options[w.type] ? field("Options (value=label, one a line)", h("textarea", { name: "options", rows: 4 })) : null,
        w.type === "labeled_value" ? field("Format (/pin/ is the value)", input("format", { maxlength: 60, placeholder: "Inside: /pin/ °C" })) : null,
        w.type === "chart" ? field("History shown", choice("period", PERIODS.map((p) => [p, p]))) : null,
        field("Color", input("color", { type: "color" })),
        h("p", { class: "muted small" }, `Place: ${at + 1} of ${widgets.length}; size ${w.w} × ${w.h}.`),
        editable ? h("div", { class: "controls" },
          h("button", { type: "button", class: "small", "data-move": "-1", disabled: at === 0 }, "Move earlier"),
          h("button", { type: "button", class: "small", "data-move": "1", disabled: at === widgets.length - 1 }, "Move later"),
          h("button", { type: "button", class: "danger small", "data-remove": true }, "Remove widget")) : null)));
    if (w.type === "image_button") inspector.append(library());
    const form = inspector.querySelector("form");
    const defaults = { color: "#2f7cf6", on: "1", off: "0", mode: "push", period: "1h", w: 2, h: 1 };
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.name === "options") { el.value = optionsText(w); continue; }
      const v = w[el.name];
      el.value = v === undefined || v === null ? (defaults[el.name] ?? "") : v;
    }
    form.addEventListener("input", (ev) => {
      const el = ev.target;
      if (["on_image", "off_image"].includes(el.name)) { if (el.value === "") delete w[el.name]; else w[el.name] = Number(el.value); }
      else if (el.name === "pin") {
        w.pin = Number(el.value);
        if (cfg.options[w.type]) w.options = defaultOptions(dsOf(w.pin), cfg.options[w.type][1]);  // the new datastream's
      } else if (["w", "h"].includes(el.name)) w[el.name] = Number(el.value);
      else if (["min", "max", "step"].includes(el.name)) { if (el.value === "") delete w[el.name]; else w[el.name] = Number(el.value); }
      else if (el.name === "options") {
        w.options = el.value.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
          const eq = line.indexOf("=");
          const value = parseInt(eq < 0 ? line : line.slice(0, eq), 10);
          return { value: Number.isFinite(value) ? value : NaN, label: (eq < 0 ? line : line.slice(eq + 1)).trim() };
        });
      } else w[el.name] = el.value;
      const card = phone.querySelector(`[data-id="${CSS.escape(w.id)}"] .mwidget-title`);
      if (card) card.textContent = titleOf(w);
    });
    form.addEventListener("change", () => render());
    form.querySelectorAll("[data-move]").forEach((b) => b.addEventListener("click", () => move(w, Number(b.dataset.move))));
    const del = form.querySelector("[data-remove]");
    if (del) del.addEventListener("click", () => remove(w));
  }

  const save = document.getElementById("save-mobile");
  if (save) save.addEventListener("click", async () => {
    error.textContent = "";
    save.disabled = true;
    const clean = widgets.map((w) => Object.fromEntries(Object.entries(w).filter(([k, v]) =>
      v !== "" && v !== null && v !== undefined && !(k === "options" && !cfg.options[w.type]))));
    try {
      const res = await window.openblynk.api("PUT", `/api/console/templates/${root.dataset.template}/mobile-dashboard`, { widgets: clean });
      widgets = whole(res.widgets);
      render(selected);
      root.dataset.saved = String(widgets.length);
      window.openblynk.toast("Mobile dashboard saved: the app shows it for every device of this template");
    } catch (err) {
      error.textContent = err.message;
    } finally {
      save.disabled = false;
    }
  });

  render();
  loadImages().then(() => render(selected), (err) => { error.textContent = err.message; });
})();
