// openblynk app: a device's mobile dashboard, the widgets its template's "Mobile dashboard" tab
// lays out (in order, on 4 columns). app.js calls window.openblynkWidgets.dashboard(device,
// latest, ctx) and feeds each live value to the returned update(pin, value, ts). Controls write
// through ctx.write (the console's checked device write, which sends the value down to the
// device). Titles, labels and values come from users and devices: they enter as text only.
// Widget properties the device sets (label, color, isHidden, isDisabled, min/max, onLabel/
// offLabel) apply live, read by ../widget_props.js as the console's web dashboard reads them.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PERIOD_S = { "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400, "1w": 604800 };

  function svgEl(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  const show = (value) => (value === undefined || value === null ? "—" : String(value));

  function dashboard(device, latest, ctx) {
    const { h } = ctx;
    const byPin = new Map(device.datastreams.map((d) => [d.pin, d]));
    const handlers = new Map();  // pin -> [fn(value, ts)]
    const on = (pin, fn) => { if (!handlers.has(pin)) handlers.set(pin, []); handlers.get(pin).push(fn); };
    const disabled = !device.can_control;
    const P = window.openblynkProps;
    const props = new Map(Object.entries(ctx.props || {}).map(([pin, p]) => [Number(pin), { ...p }]));
    const propsOf = (pin) => props.get(pin) || {};
    const shown = new Map(latest);  // pin -> the value shown now (redrawn when a property changes)
    const limits = (w, ds) => {
      const p = propsOf(w.pin);
      return { lo: P.pick(p.min, w.min, ds.min), hi: P.pick(p.max, w.max, ds.max) };
    };

    // A button's writes: switch mode flips at each press, push mode writes on while pressed.
    function pressable(b, w, high, low) {
      if (w.mode === "switch") {
        b.addEventListener("click", () => ctx.write(device.id, w.pin, b.getAttribute("aria-pressed") === "true" ? low : high));
        return;
      }
      let down = false;
      b.addEventListener("pointerdown", () => { down = true; ctx.write(device.id, w.pin, high); });
      const release = () => { if (down) { down = false; ctx.write(device.id, w.pin, low); } };
      b.addEventListener("pointerup", release);
      b.addEventListener("pointerleave", release);
      b.addEventListener("keydown", (ev) => { if ((ev.key === " " || ev.key === "Enter") && !down) { ev.preventDefault(); down = true; ctx.write(device.id, w.pin, high); } });
      b.addEventListener("keyup", (ev) => { if (ev.key === " " || ev.key === "Enter") release(); });
    }

    const kinds = {
      value(w, ds, body) {
        const out = h("output", { class: "value", "data-pin": w.pin }, show(latest.get(w.pin)));
        body.push(out, ds.units ? h("span", { class: "muted units" }, ds.units) : null);
        on(w.pin, (v) => { out.textContent = show(v); });
      },
      labeled_value(w, ds, body) {
        const out = h("output", { class: "labeled" });
        const fill = (v) => {
          const text = show(v);
          out.textContent = w.format ? w.format.split("/pin/").join(text) : `${text} ${ds.units || ""}`.trim();
        };
        fill(latest.get(w.pin));
        body.push(out);
        on(w.pin, fill);
      },
      switch(w, ds, body) {
        const high = w.on ?? "1";
        const low = w.off ?? "0";
        const sw = h("button", { type: "button", role: "switch", class: "switch", "aria-label": w.title || ds.name,
                                 "aria-checked": String(latest.get(w.pin) === high), disabled });
        sw.addEventListener("click", () => ctx.write(device.id, w.pin, sw.getAttribute("aria-checked") === "true" ? low : high));
        body.push(sw);
        on(w.pin, (v) => sw.setAttribute("aria-checked", String(v === high)));
      },
      button(w, ds, body) {
        const high = w.on ?? "1";
        const low = w.off ?? "0";
        const b = h("button", { type: "button", class: "push", "aria-pressed": String(latest.get(w.pin) === high), disabled },
          w.title || ds.name);
        pressable(b, w, high, low);
        body.push(b);
        on(w.pin, (v) => b.setAttribute("aria-pressed", String(v === high)));
      },
      // Blynk's Image Button: a button showing the off or the on image of the template's image
      // library (served from this origin), writing on/off as the button does (push or switch).
      image_button(w, ds, body) {
        const high = w.on ?? "1";
        const low = w.off ?? "0";
        const name = w.title || ds.name;
        const img = h("img", { class: "image-button-img", alt: "", draggable: "false" });
        // which picture the browser has decoded (for assistive checks and the tests)
        img.addEventListener("load", () => { img.dataset.loaded = img.getAttribute("src"); });
        img.addEventListener("error", () => { img.dataset.loaded = "error"; });
        const b = h("button", { type: "button", class: "image-button", "aria-label": name, disabled }, img);
        const draw = (v) => {
          const lit = v === high;
          b.setAttribute("aria-pressed", String(lit));
          img.setAttribute("src", `/api/console/images/${lit ? w.on_image : w.off_image}/content`);
          b.dataset.state = lit ? "on" : "off";
        };
        draw(latest.get(w.pin));
        pressable(b, w, high, low);
        body.push(b);
        on(w.pin, draw);
      },
      slider(w, ds, body) {
        const { lo, hi } = limits(w, ds);
        const step = w.step ?? (ds.type === "integer" ? 1 : (hi - lo) / 100);
        const out = h("output", { class: "value small-value" }, show(latest.get(w.pin)));
        const s = h("input", { type: "range", min: lo, max: hi, step, value: latest.get(w.pin) ?? lo,
                               "aria-label": w.title || ds.name, disabled });
        s.addEventListener("input", () => { out.textContent = s.value; });
        s.addEventListener("change", () => ctx.write(device.id, w.pin, s.value));
        body.push(out, s);
        on(w.pin, (v) => {
          const r = limits(w, ds);
          s.min = r.lo; s.max = r.hi;
          out.textContent = show(v);
          if (v !== null && v !== undefined && document.activeElement !== s) s.value = v;
        });
      },
      step(w, ds, body) {
        const step = w.step ?? 1;
        const name = w.title || ds.name;
        let current = parseFloat(latest.get(w.pin));
        const out = h("output", { class: "value", "data-step": w.pin }, show(latest.get(w.pin)));
        const send = (dir) => {
          const { lo, hi } = limits(w, ds);
          const base = Number.isFinite(current) ? current : lo;
          const next = Math.min(hi, Math.max(lo, base + dir * step));
          const text = ds.type === "integer" ? String(Math.round(next)) : String(Number(next.toFixed(6)));
          ctx.write(device.id, w.pin, text);
        };
        const minus = h("button", { type: "button", "aria-label": `${name}: less`, disabled }, "−");
        const plus = h("button", { type: "button", "aria-label": `${name}: more`, disabled }, "+");
        minus.addEventListener("click", () => send(-1));
        plus.addEventListener("click", () => send(1));
        body.push(h("div", { class: "stepper" }, minus, out, plus));
        on(w.pin, (v) => { current = parseFloat(v); out.textContent = show(v); });
      },
      gauge(w, ds, body) {
        const g = svgEl("svg", { viewBox: "0 0 100 60", class: "gauge", role: "img" });
        const arc = "M 10 55 A 40 40 0 0 1 90 55";
        const fill = svgEl("path", { d: arc, class: "gauge-fill", pathLength: 100, "stroke-dasharray": "100 100", "stroke-dashoffset": 100 });
        g.append(svgEl("path", { d: arc, class: "gauge-track" }), fill);
        const out = h("output", { class: "value gauge-value", "data-gauge": w.pin });
        const draw = (v) => {
          const { lo, hi } = limits(w, ds);
          const x = parseFloat(v);
          const part = Number.isFinite(x) ? Math.min(1, Math.max(0, (x - lo) / (hi - lo || 1))) : 0;
          fill.setAttribute("stroke-dashoffset", String(100 - part * 100));
          out.textContent = show(v) + (ds.units && v !== undefined && v !== null ? ` ${ds.units}` : "");
          g.setAttribute("aria-label", `${w.title || ds.name}: ${show(v)} of ${lo} to ${hi}`);
        };
        draw(latest.get(w.pin));
        body.push(g, out);
        on(w.pin, draw);
      },
      led(w, ds, body) {
        const led = h("span", { class: "led", role: "img" });
        const draw = (v) => {
          const x = parseFloat(v);
          const lit = Number.isFinite(x) && x > 0;
          led.classList.toggle("on", lit);
          led.setAttribute("aria-label", `${w.title || ds.name}: ${lit ? "on" : "off"}`);
          led.dataset.lit = String(lit);
        };
        draw(latest.get(w.pin));
        body.push(led);
        on(w.pin, draw);
      },
      segmented(w, ds, body) {
        const group = h("div", { class: "segmented", role: "radiogroup", "aria-label": w.title || ds.name });
        const buttons = (w.options || []).map((o) => {
          const b = h("button", { type: "button", role: "radio", "aria-checked": String(latest.get(w.pin) === String(o.value)),
                                  "data-value": o.value, disabled }, o.label);
          b.addEventListener("click", () => ctx.write(device.id, w.pin, String(o.value)));
          return b;
        });
        group.append(...buttons);
        body.push(group);
        on(w.pin, (v) => buttons.forEach((b) => b.setAttribute("aria-checked", String(b.dataset.value === String(v)))));
      },
      menu(w, ds, body) {
        const sel = h("select", { class: "menu", "aria-label": w.title || ds.name, disabled },
          h("option", { value: "" }, "—"), (w.options || []).map((o) => h("option", { value: o.value }, o.label)));
        sel.value = latest.get(w.pin) ?? "";
        sel.addEventListener("change", () => { if (sel.value !== "") ctx.write(device.id, w.pin, sel.value); });
        body.push(sel);
        on(w.pin, (v) => { sel.value = v ?? ""; });
      },
      terminal(w, ds, body) {
        const out = h("pre", { class: "terminal", "aria-live": "polite", "data-terminal": w.pin });
        const add = (v, ts, written) => {
          if (v === null || v === undefined || written) return;
          out.append(h("div", {}, String(v)));
          while (out.childNodes.length > 50) out.firstChild.remove();
          out.scrollTop = out.scrollHeight;
        };
        add(latest.get(w.pin));
        body.push(out);
        if (!disabled) {
          const line = h("input", { type: "text", "aria-label": `${w.title || ds.name}: send`, maxlength: 1000 });
          const form = h("form", { class: "term-in" }, line, h("button", { type: "submit" }, "Send"));
          form.addEventListener("submit", (ev) => { ev.preventDefault(); if (line.value) ctx.write(device.id, w.pin, line.value); line.value = ""; });
          body.push(form);
        }
        on(w.pin, add);
      },
      map(w, ds, body) {
        const coords = h("p", { class: "coords", "data-map": w.pin });
        const link = h("a", { class: "button", target: "_blank", rel: "noopener noreferrer", hidden: true }, "Open in a map");
        const draw = (v) => {
          const [lon, lat] = String(v ?? "").split(/[\x00,]/).map(Number);
          if (v === null || v === undefined || !Number.isFinite(lon) || !Number.isFinite(lat)) {
            coords.textContent = "No location yet";
            link.hidden = true;
            return;
          }
          coords.textContent = `lat ${lat.toFixed(5)}, lon ${lon.toFixed(5)}`;
          link.setAttribute("href", `https://www.openstreetmap.org/?mlat=${lat.toFixed(5)}&mlon=${lon.toFixed(5)}#map=15/${lat.toFixed(5)}/${lon.toFixed(5)}`);
          link.hidden = false;
        };
        draw(latest.get(w.pin));
        body.push(coords, link);
        on(w.pin, draw);
      },
      chart(w, ds, body, section) {
        const chart = ctx.chart(device.id, w.pin, PERIOD_S[w.period || "1h"], section);
        body.push(chart.svg, chart.range);
        on(w.pin, (v, ts, written) => { if (!written) chart.add(v, ts); });
      },
    };

    const grid = h("div", { class: "mgrid", id: "mobile-dashboard" }, device.dashboard.map((w) => {
      const ds = byPin.get(w.pin);
      const section = h("section", { class: `card mw mw-${w.type}`, "data-widget": w.id, "data-w": w.w || 2, "data-h": w.h || 1 });
      const body = [h("h3", {}, w.title || (ds ? ds.name : `V${w.pin}`))];
      if (ds && kinds[w.type]) kinds[w.type](w, ds, body, section);
      else body.push(h("p", { class: "muted" }, "This widget's datastream is gone."));
      body.push(h("span", { class: "stale-note" }));
      section.append(...body.flat().filter(Boolean));
      return section;
    }));
    // Properties: what every widget shows alike (title, accent, hidden, disabled), then the
    // on/off labels of a button or switch, then each widget drawn again (as the user's own
    // write, so a chart or terminal adds nothing) for what depends on min/max.
    const placed = [...grid.children].map((section, i) => {
      const w = device.dashboard[i];
      return { w, ds: byPin.get(w.pin), section, title: section.querySelector("h3") };
    });
    function stateLabels(pin) {
      for (const { w, ds, section } of placed) {
        if (w.pin !== pin || !ds || (w.type !== "button" && w.type !== "switch")) continue;
        const p = propsOf(pin);
        const label = P.text(shown.get(pin) === (w.on ?? "1") ? p.onLabel : p.offLabel);
        if (w.type === "button") {
          section.querySelector("button.push").textContent = label ?? (w.title || ds.name);
        } else {
          let state = section.querySelector(".switch-state");
          if (!state && label !== null) {
            state = h("span", { class: "switch-state" });
            section.querySelector("button.switch").after(state);
          }
          if (state) state.textContent = label ?? "";
        }
      }
    }
    function applyProps(pin) {
      for (const { w, ds, section, title } of placed) {
        if (w.pin !== pin) continue;
        const controls = w.type === "chart" || !ds ? [] : section.querySelectorAll("button, input, select");
        P.applyCommon(section, title, w.title || (ds ? ds.name : `V${w.pin}`), propsOf(pin), controls, !disabled);
        if (!P.color(propsOf(pin).color) && P.color(w.color)) section.style.setProperty("--accent", w.color);
      }
      stateLabels(pin);
      (handlers.get(pin) || []).forEach((fn) => fn(shown.get(pin), undefined, true));
    }
    for (const pin of props.keys()) applyProps(pin);
    return {
      element: grid,
      update(pin, value, ts, written) {
        shown.set(pin, value);
        (handlers.get(pin) || []).forEach((fn) => fn(value, ts, written));
        stateLabels(pin);
      },
      property(pin, name, value) {
        if (!props.has(pin)) props.set(pin, {});
        if (value === null) delete props.get(pin)[name]; else props.get(pin)[name] = value;
        applyProps(pin);
      },
    };
  }

  window.openblynkWidgets = { dashboard };
})();
