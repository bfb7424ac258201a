// The web dashboard editor of a template: place widgets on a 12-column grid (drag to move,
// drag the corner to resize; arrow keys move the selected widget, shift+arrows resize it),
// bind each to a datastream, and save. The server checks everything again when saving.
"use strict";

(function () {
  const root = document.getElementById("editor");
  if (!root) return;
  const { h } = window.openblynk;  // names come from users: they enter the page as text only
  const cfg = JSON.parse(root.dataset.config);
  const editable = root.dataset.editable === "yes";
  const canvas = document.getElementById("canvas");
  const inspector = document.getElementById("inspector");
  const error = document.getElementById("editor-error");
  const COLS = cfg.columns;
  const SIZES = { chart: [6, 4], map: [4, 4], terminal: [4, 4], gauge: [3, 3], slider: [4, 2] };
  let widgets = JSON.parse(root.dataset.widgets);
  let selected = null;
  let counter = Date.now() % 100000;

  const dsOf = (pin) => cfg.datastreams.find((d) => d.pin === pin);
  const fits = (w, others) => w.x >= 0 && w.y >= 0 && w.x + w.w <= COLS && w.w >= 1 && w.h >= 1 && w.h <= 12 &&
    !others.some((o) => o !== w && o.id !== w.id && w.x < o.x + o.w && o.x < w.x + w.w && w.y < o.y + o.h && o.y < w.y + w.h);

  function render() {
    const rows = Math.max(8, ...widgets.map((w) => w.y + w.h + 2));
    canvas.style.setProperty("--rows", rows);
    canvas.replaceChildren(...widgets.map((w) => {
      const ds = dsOf(w.pin);
      const el = h("div", { class: "widget edit" + (w.id === selected ? " selected" : ""), tabindex: 0, "data-id": w.id },
        h("header", { class: "widget-title" }, w.title || (ds ? ds.name : `V${w.pin}`)),
        h("p", { class: "muted small" }, `${cfg.names[w.type]} · ${ds ? `${ds.name} (V${w.pin})` : `no datastream V${w.pin}`}`),
        editable ? h("span", { class: "resize", "aria-hidden": "true" }) : null);
      el.style.cssText = `--x:${w.x + 1};--y:${w.y + 1};--w:${w.w};--h:${w.h}`;  // the CSSOM: allowed by the page's policy
      return el;
    }));
    inspect();
  }

  function cellAt(ev) {
    const r = canvas.getBoundingClientRect();
    const rowH = parseFloat(getComputedStyle(canvas).gridAutoRows) || 60;
    return { col: Math.floor(((ev.clientX - r.left) / r.width) * COLS), row: Math.floor((ev.clientY - r.top) / rowH) };
  }

  canvas.addEventListener("pointerdown", (ev) => {
    const el = ev.target.closest(".widget");
    if (!el) { selected = null; render(); return; }
    selected = el.dataset.id;
    const w = widgets.find((x) => x.id === selected);
    render();
    if (!editable) return;
    const resizing = ev.target.classList.contains("resize");
    const start = cellAt(ev);
    const origin = { ...w };
    canvas.setPointerCapture(ev.pointerId);
    const move = (e) => {
      const c = cellAt(e);
      const next = resizing
        ? { ...w, w: Math.max(1, origin.w + c.col - start.col), h: Math.max(1, origin.h + c.row - start.row) }
        : { ...w, x: origin.x + c.col - start.col, y: Math.max(0, origin.y + c.row - start.row) };
      if (fits(next, widgets)) { Object.assign(w, next); render(); }
    };
    const up = () => { canvas.removeEventListener("pointermove", move); canvas.removeEventListener("pointerup", up); };
    canvas.addEventListener("pointermove", move);
    canvas.addEventListener("pointerup", up);
    ev.preventDefault();
  });

  canvas.addEventListener("keydown", (ev) => {
    const w = widgets.find((x) => x.id === selected);
    if (!w || !editable) return;
    const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[ev.key];
    if (ev.key === "Delete") { remove(w); return; }
    if (!d) return;
    ev.preventDefault();
    const next = ev.shiftKey ? { ...w, w: w.w + d[0], h: w.h + d[1] } : { ...w, x: w.x + d[0], y: w.y + d[1] };
    if (fits(next, widgets)) { Object.assign(w, next); render(); canvas.querySelector(`[data-id="${CSS.escape(w.id)}"]`).focus(); }
  });

  function freeSlot(wd, ht) {
    for (let y = 0; y < 200; y++) {
      for (let x = 0; x + wd <= COLS; x++) {
        if (fits({ id: "_", x, y, w: wd, h: ht }, widgets)) return { x, y };
      }
    }
    return { x: 0, y: Math.max(0, ...widgets.map((w) => w.y + w.h)) };
  }

  root.querySelectorAll("[data-add]").forEach((b) => b.addEventListener("click", () => {
    const type = b.dataset.add;
    const ds = cfg.datastreams.find((d) => cfg.accepts[type].includes(d.type));
    if (!ds) {
      error.textContent = `A ${cfg.names[type]} needs a datastream of type ${cfg.accepts[type].join(" or ")}: add one on the Datastreams tab first.`;
      return;
    }
    error.textContent = "";
    const [wd, ht] = SIZES[type] || [3, 2];
    const w = { id: `w${++counter}`, type, pin: ds.pin, ...freeSlot(wd, ht), w: wd, h: ht, title: "" };
    widgets.push(w);
    selected = w.id;
    render();
  }));

  function remove(w) {
    widgets = widgets.filter((x) => x !== w);
    selected = null;
    render();
  }

  const field = (label, control) => h("label", {}, `${label} `, control);
  const input = (name, attrs) => h("input", { name, ...attrs });
  const number = (name, attrs) => input(name, { type: "number", step: "any", ...attrs });

  function inspect() {
    const w = widgets.find((x) => x.id === selected);
    if (!w) {
      inspector.replaceChildren(h("p", { class: "muted" },
        "Select a widget to bind it to a datastream and set its title. Drag a widget to move it, its corner to resize it."));
      return;
    }
    const options = cfg.datastreams.filter((d) => cfg.accepts[w.type].includes(d.type))
      .map((d) => new Option(`${d.name} (V${d.pin}, ${d.type})`, String(d.pin), false, d.pin === w.pin));
    const numbers = ["slider", "numeric_input", "gauge", "led"].includes(w.type);
    inspector.replaceChildren(h("h2", {}, cfg.names[w.type]), h("form", { class: "inspect" },
      h("fieldset", { disabled: !editable },
        field("Datastream", h("select", { name: "pin" }, options)),
        field("Title", input("title", { maxlength: 60 })),
        w.type === "button" ? field("Mode", h("select", { name: "mode" }, new Option("Push", "push"), new Option("Switch", "switch"))) : null,
        ["switch", "button"].includes(w.type) ? [field("On value", input("on")), field("Off value", input("off"))] : null,
        numbers ? [field("Min", number("min")), field("Max", number("max"))] : null,
        ["slider", "numeric_input"].includes(w.type) ? field("Step", number("step", { min: 0 })) : null,
        field("Color", input("color", { type: "color" })),
        h("p", { class: "muted small" }, `Place: column ${w.x + 1}, row ${w.y + 1}; size ${w.w} × ${w.h}.`),
        editable ? h("button", { type: "button", class: "danger small", "data-remove": true }, "Remove widget") : null)));
    const form = inspector.querySelector("form");
    for (const el of form.elements) {
      if (!el.name) continue;
      const v = w[el.name];
      el.value = v === undefined || v === null ? (el.name === "color" ? "#2f7cf6" : el.name === "on" ? "1" : el.name === "off" ? "0" : el.name === "mode" ? "push" : "") : v;
    }
    form.addEventListener("input", (ev) => {
      const el = ev.target;
      if (el.name === "pin") w.pin = Number(el.value);
      else if (["min", "max", "step"].includes(el.name)) { if (el.value === "") delete w[el.name]; else w[el.name] = Number(el.value); }
      else w[el.name] = el.value;
      const card = canvas.querySelector(`[data-id="${CSS.escape(w.id)}"]`);
      if (card) card.querySelector("header").textContent = w.title || (dsOf(w.pin) || {}).name || `V${w.pin}`;
    });
    form.addEventListener("change", () => render());
    const del = form.querySelector("[data-remove]");
    if (del) del.addEventListener("click", () => remove(w));
  }

  const save = document.getElementById("save-dashboard");
  if (save) save.addEventListener("click", async () => {
    error.textContent = "";
    save.disabled = true;
    const clean = widgets.map((w) => Object.fromEntries(Object.entries(w).filter(([, v]) => v !== "" && v !== null && v !== undefined)));
    try {
      const res = await window.openblynk.api("PUT", `/api/console/templates/${root.dataset.template}/dashboard`, { widgets: clean });
      widgets = res.widgets;
      render();
      root.dataset.saved = String(widgets.length);
      window.openblynk.toast("Dashboard saved: every device of this template shows it");
    } catch (err) {
      error.textContent = err.message;
    } finally {
      save.disabled = false;
    }
  });

  render();
})();
