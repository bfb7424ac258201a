// The automation editor: one condition ("When") and an ordered list of actions ("Then"), in the
// JSON shape of backend/automations/schemas.py. The page gives the automation (or null) and the
// organization's pickers (devices, templates with datastreams and events, tags, users, webhooks)
// in data-config. Every name enters the page as text (openblynk.h); the server checks the whole
// automation again when it is saved and its message is shown under the form.
"use strict";

(function () {
  const root = document.getElementById("automation-editor");
  if (!root) return;
  const { h, api } = window.openblynk;
  const cfg = JSON.parse(root.dataset.config);
  const picks = cfg.choices;
  const editable = cfg.editable;
  const id = root.dataset.id ? parseInt(root.dataset.id, 10) : null;
  const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const OPS = [["lt", "is below (<)"], ["le", "is at most (<=)"], ["gt", "is above (>)"], ["ge", "is at least (>=)"],
    ["eq", "equals (=)"], ["ne", "differs from (!=)"], ["between", "is between"], ["on", "is on"], ["off", "is off"],
    ["changed", "has changed"]];
  const ACTIONS = [["control", "Control device"], ["email", "Send e-mail"], ["notify", "In-app notification"],
    ["webhook", "Webhook"], ["wait", "Wait"], ["log_event", "Log event"]];
  const DEVICE_KINDS = ["device_state", "presence", "event"];

  const a = cfg.automation || { name: "", enabled: true, limit_period_s: 0, condition: { type: "device_state" }, actions: [] };
  const state = { name: a.name, enabled: a.enabled, limit: a.limit_period_s, condition: { ...a.condition },
                  actions: a.actions.map((x) => ({ ...x })) };

  // -- pickers -------------------------------------------------------------------------------
  const templateOf = (tid) => picks.templates.find((t) => t.id === tid);
  const deviceOf = (did) => picks.devices.find((d) => d.id === did);
  const templateFor = (src) => templateOf(src.device_id != null ? (deviceOf(src.device_id) || {}).template_id : src.template_id);
  const num = (v) => (v === "" || v === null || v === undefined ? null : Number(v));

  let fieldCount = 0;
  function field(label, control, hint) {  // a label named by its own text only (not the control's)
    const id = control.id || (control.id = `af-${++fieldCount}`);
    return h("div", { class: "field" }, h("label", { for: id }, label), control,
      hint ? h("small", { class: "muted" }, hint) : null);
  }
  function input(value, onChange, attrs) {
    const el = h("input", { value: value === null || value === undefined ? "" : value, ...(attrs || {}) });
    el.addEventListener("input", () => onChange(el.value));
    return el;
  }
  function select(options, value, onChange, attrs) {
    const el = h("select", attrs || {}, options.map(([v, text]) => h("option", { value: String(v) }, text)));
    el.value = value === null || value === undefined ? "" : String(value);
    el.addEventListener("change", () => onChange(el.value));
    return el;
  }
  const deviceOptions = () => [["", "Choose a device"], ...picks.devices.map((d) => [d.id, d.name])];
  const templateOptions = () => [["", "Choose a template"], ...picks.templates.map((t) => [t.id, t.name])];
  function datastreamOptions(t) {
    return [["", t ? "Choose a datastream" : "Choose a device or template first"],
      ...(t ? t.datastreams.map((d) => [d.pin, `${d.name} (V${d.pin}, ${d.type})`]) : [])];
  }

  // Where a condition or action looks: one device or every device of a template.
  function source(obj, redraw) {
    const kind = obj.template_id != null ? "template" : "device";
    const which = select([["device", "One device"], ["template", "Every device of a template"]], kind, (v) => {
      if (v === "template") { obj.template_id = obj.device_id != null ? (deviceOf(obj.device_id) || {}).template_id || null : null; delete obj.device_id; }
      else { obj.device_id = null; delete obj.template_id; }
      redraw();
    });
    const picker = kind === "template"
      ? select(templateOptions(), obj.template_id, (v) => { obj.template_id = num(v); redraw(); }, { "data-field": "template" })
      : select(deviceOptions(), obj.device_id, (v) => { obj.device_id = num(v); redraw(); }, { "data-field": "device" });
    return [field("Source", which), field(kind === "template" ? "Template" : "Device", picker)];
  }

  function daysField(obj) {
    const days = new Set(obj.days || []);
    return h("fieldset", { class: "days" }, h("legend", {}, "Days (none: every day)"),
      DAYS.map((name, i) => {
        const box = h("input", { type: "checkbox", checked: days.has(i) });
        box.addEventListener("change", () => {
          if (box.checked) days.add(i); else days.delete(i);
          obj.days = [...days].sort();
        });
        return h("label", { class: "check" }, box, name);
      }));
  }
  const tzField = (obj) => field("Time zone", input(obj.tz, (v) => { obj.tz = v || null; }, { placeholder: picks.tz }),
    "IANA name; empty: the organization's");

  // -- the condition -------------------------------------------------------------------------
  function conditionFields(c, redraw) {
    switch (c.type) {
      case "schedule":
        return [field("At", input(c.at, (v) => { c.at = v; }, { type: "time", required: true })), daysField(c), tzField(c)];
      case "interval":
        return [field("Every (minutes)", input(c.minutes, (v) => { c.minutes = num(v); }, { type: "number", min: 1, max: 1440 }))];
      case "once":
        return [field("At", input((c.at || "").slice(0, 16), (v) => { c.at = v ? v + ":00" : ""; }, { type: "datetime-local" })), tzField(c)];
      case "sun":
        return [field("Event", select([["sunrise", "Sunrise"], ["sunset", "Sunset"]], c.event || "sunrise", (v) => { c.event = v; })),
          field("Offset (minutes)", input(c.offset_minutes || 0, (v) => { c.offset_minutes = num(v) || 0; }, { type: "number", min: -180, max: 180 })),
          placeField(c, redraw),
          h("div", { class: "row" },
            field("Latitude", input(c.lat, (v) => { c.lat = num(v); }, { type: "number", step: "any", min: -90, max: 90 })),
            field("Longitude", input(c.lon, (v) => { c.lon = num(v); }, { type: "number", step: "any", min: -180, max: 180 }))),
          daysField(c), tzField(c)];
      case "device_state":
        return deviceStateFields(c, redraw);
      case "presence":
        return [...source(c, redraw),
          field("Goes", select([["false", "offline"], ["true", "online"]], String(Boolean(c.online)), (v) => { c.online = v === "true"; })),
          field("For (seconds)", input(c.after_s || 0, (v) => { c.after_s = num(v) || 0; }, { type: "number", min: 0, max: 86400 }))];
      case "event": {
        const t = templateFor(c);
        return [...source(c, redraw), field("Event", select([["", t ? "Choose an event" : "Choose a device or template first"],
          ...(t ? t.events.map((e) => [e.code, `${e.name} (${e.code})`]) : [])], c.code, (v) => { c.code = v; }))];
      }
      default:
        return [h("p", { class: "muted" }, "Runs when someone presses Run on the list, or through the platform API.")];
    }
  }

  function deviceStateFields(c, redraw) {
    const t = templateFor(c);
    const needsValue = !["on", "off", "changed"].includes(c.op);
    const out = [...source(c, redraw),
      field("Datastream", select(datastreamOptions(t), c.pin, (v) => { c.pin = num(v); })),
      field("Operator", select(OPS, c.op || "lt", (v) => { c.op = v; redraw(); }))];
    if (needsValue) {
      out.push(h("div", { class: "row" },
        field(c.op === "between" ? "From" : "Value", input(c.value, (v) => { c.value = v; })),
        c.op === "between" ? field("To", input(c.value2, (v) => { c.value2 = num(v); }, { type: "number", step: "any" })) : null));
      out.push(field("Hysteresis", input(c.hysteresis || 0, (v) => { c.hysteresis = num(v) || 0; }, { type: "number", min: 0, step: "any" }),
        "re-arms only once the value went back past the threshold by this much"));
    }
    out.push(field("Limit period (seconds)", input(state.limit || 0, (v) => { state.limit = num(v) || 0; }, { type: "number", min: 0 }),
      "at most one run within this time"));
    const windowed = h("input", { type: "checkbox", checked: Boolean(c.window) });
    windowed.addEventListener("change", () => { c.window = windowed.checked ? { from: "06:00", to: "20:00", days: [] } : null; redraw(); });
    out.push(h("label", { class: "check" }, windowed, "Only between"));
    if (c.window) {
      const w = c.window;
      out.push(h("div", { class: "row window" },
        field("From", input(w.from, (v) => { w.from = v; }, { type: "time" })),
        field("To", input(w.to, (v) => { w.to = v; }, { type: "time" }))), daysField(w), tzField(w));
    }
    return out;
  }

  // -- the actions ---------------------------------------------------------------------------
  function targetFields(x, redraw) {
    const target = x.target || (x.target = { device_id: null });
    const kind = target.tag != null ? "tag" : target.template_id != null ? "template" : "device";
    const which = select([["device", "One device"], ["template", "Every device of a template"], ["tag", "Devices with a tag"]], kind, (v) => {
      x.target = v === "tag" ? { tag: picks.tags[0] || "" } : v === "template" ? { template_id: null } : { device_id: null };
      redraw();
    });
    const picker = kind === "tag"
      ? select([["", "Choose a tag"], ...picks.tags.map((t) => [t, t])], target.tag, (v) => { target.tag = v; })
      : kind === "template"
        ? select(templateOptions(), target.template_id, (v) => { target.template_id = num(v); redraw(); })
        : select(deviceOptions(), target.device_id, (v) => { target.device_id = num(v); redraw(); });
    const t = kind === "tag" ? null : templateFor(target);
    const pin = kind === "tag"
      ? field("Datastream pin", input(x.pin, (v) => { x.pin = num(v); }, { type: "number", min: 0, max: 255 }))
      : field("Datastream", select(datastreamOptions(t), x.pin, (v) => { x.pin = num(v); }));
    return [field("Target", which), field(kind === "tag" ? "Tag" : kind === "template" ? "Template" : "Device", picker), pin,
      field("Set to", input(x.value, (v) => { x.value = v; }))];
  }

  function actionFields(x, redraw) {
    switch (x.type) {
      case "control":
        return targetFields(x, redraw);
      case "email": {
        const owner = h("input", { type: "checkbox", checked: x.to === "owner" });
        owner.addEventListener("change", () => { x.to = owner.checked ? "owner" : []; redraw(); });
        return [h("label", { class: "check" }, owner, "To the trigger device's owner"),
          x.to === "owner" ? null : field("To", input((x.to || []).join(", "), (v) => {
            x.to = v.split(/[,;\s]+/).map((s) => s.trim()).filter(Boolean);
          }), "addresses, separated by commas"),
          field("Subject", input(x.subject, (v) => { x.subject = v; }, { maxlength: 200 })),
          field("Body", bodyArea(x), "placeholders: {DEVICE_NAME} {TRIGGER_VALUE} {ORG_NAME} {PRODUCT_NAME} {TIMESTAMP}")];
      }
      case "notify": {
        const everyone = h("input", { type: "checkbox", checked: x.user_ids == null });
        everyone.addEventListener("change", () => { x.user_ids = everyone.checked ? null : []; redraw(); });
        const users = x.user_ids == null ? null : (() => {
          const el = h("select", { multiple: true, size: Math.min(6, Math.max(2, picks.users.length)) },
            picks.users.map((u) => h("option", { value: String(u.id), selected: x.user_ids.includes(u.id) }, u.name)));
          el.addEventListener("change", () => { x.user_ids = [...el.selectedOptions].map((o) => parseInt(o.value, 10)); });
          return field("Users", el);
        })();
        return [h("label", { class: "check" }, everyone, "Every user of the organization"), users,
          field("Title", input(x.title, (v) => { x.title = v; }, { maxlength: 100 })), field("Body", bodyArea(x))];
      }
      case "webhook":
        return [field("Webhook", select([["", picks.webhooks.length ? "Choose a webhook" : "No webhooks yet"],
          ...picks.webhooks.map((w) => [w.id, w.name])], x.webhook_id, (v) => { x.webhook_id = num(v); }))];
      case "wait":
        return waitFields(x, redraw);
      case "log_event": {
        const d = x.device_id == null ? null : deviceOf(x.device_id);
        const t = d ? templateOf(d.template_id) : null;
        return [field("Device", select([["", "The trigger device"], ...picks.devices.map((dv) => [dv.id, dv.name])], x.device_id,
          (v) => { x.device_id = num(v); redraw(); })),
          t ? field("Event", select([["", "Choose an event"], ...t.events.map((e) => [e.code, `${e.name} (${e.code})`])], x.code,
            (v) => { x.code = v; }))
            : field("Event code", input(x.code, (v) => { x.code = v; }, { maxlength: 50 })),
          field("Description", input(x.description, (v) => { x.description = v; }, { maxlength: 300 }))];
      }
      default:
        return [];
    }
  }

  function bodyArea(x) {
    const el = h("textarea", { rows: 3, maxlength: 5000 });
    el.value = x.body || "";
    el.addEventListener("input", () => { x.body = el.value; });
    return el;
  }

  function waitFields(x, redraw) {
    const mode = x.until != null ? "until" : "for";
    const which = select([["for", "For a while"], ["until", "Until a time of day"]], mode, (v) => {
      if (v === "until") { x.until = "18:00"; delete x.seconds; } else { x.seconds = 60; delete x.until; }
      redraw();
    });
    if (mode === "until") return [field("Wait", which), field("Until", input(x.until, (v) => { x.until = v; }, { type: "time" }))];
    const unit = x.seconds % 3600 === 0 ? 3600 : x.seconds % 60 === 0 ? 60 : 1;
    let amount = (x.seconds || 60) / unit;
    let factor = unit;
    const amountIn = input(amount, (v) => { amount = num(v) || 0; x.seconds = Math.round(amount * factor); }, { type: "number", min: 1 });
    const unitIn = select([[1, "seconds"], [60, "minutes"], [3600, "hours"]], unit, (v) => {
      factor = parseInt(v, 10); x.seconds = Math.round(amount * factor);
    });
    return [field("Wait", which), h("div", { class: "row" }, field("Amount", amountIn), field("Unit", unitIn))];
  }

  function blank(type) {
    return {
      control: { type, target: { device_id: null }, pin: null, value: "" },
      email: { type, to: [], subject: "", body: "" },
      notify: { type, user_ids: null, title: "", body: "" },
      webhook: { type, webhook_id: null },
      wait: { type, seconds: 600 },
      log_event: { type, device_id: null, code: "", description: "" },
    }[type];
  }

  // Sunrise and sunset at one of the organization's Locations: picking one fills in its
  // coordinates and time zone (the condition keeps the numbers, as the server stores them).
  let places = [];
  function placeField(c, redraw) {
    if (!places.length) return null;
    const at = places.find((l) => l.lat === c.lat && l.lon === c.lon);
    return field("Location", select([["", "Coordinates of my own"], ...places.map((l) => [l.id, l.address ? `${l.name} (${l.address})` : l.name])],
      at ? at.id : "", (v) => {
        const l = places.find((x) => x.id === num(v));
        if (l) { c.lat = l.lat; c.lon = l.lon; if (l.time_zone) c.tz = l.time_zone; }
        redraw();
      }, { "data-field": "location" }), "Fills in its coordinates and time zone");
  }
  function loadPlaces() {
    if (root.dataset.locations !== "yes") { root.dataset.places = "none"; return; }
    api("GET", `/api/locations?org_id=${encodeURIComponent(root.dataset.org)}`).then((found) => {
      places = found;
      if (state.condition.type === "sun") render();
      root.dataset.places = String(places.length);
    }).catch(() => { root.dataset.places = "none"; });  // the editor works without them
  }

  // -- drawing and saving ----------------------------------------------------------------------
  const error = h("p", { class: "form-error", role: "alert", id: "automation-error" });

  function render() {
    const c = state.condition;
    const when = select(Object.entries(cfg.when), c.type, (v) => {
      state.condition = v === "device_state" ? { type: v, op: "lt" } : { type: v };
      render();
    }, { "data-field": "when" });
    const condition = h("fieldset", { class: "condition", id: "condition" }, h("legend", {}, "When"),
      field("Condition", when), conditionFields(c, render));
    const actions = h("ol", { class: "actions", id: "actions" }, state.actions.map((x, i) => h("li", { class: "action", "data-type": x.type },
      h("div", { class: "action-head" },
        h("strong", {}, `${i + 1}. ${(ACTIONS.find(([k]) => k === x.type) || [, x.type])[1]}`),
        editable ? h("span", { class: "action-buttons" },
          button("↑", `Move action ${i + 1} up`, i === 0, () => { swap(i, i - 1); }),
          button("↓", `Move action ${i + 1} down`, i === state.actions.length - 1, () => { swap(i, i + 1); }),
          button("Remove", `Remove action ${i + 1}`, false, () => { state.actions.splice(i, 1); render(); })) : null),
      actionFields(x, render))));
    const kind = select(ACTIONS, "control", () => {}, { "aria-label": "New action" });
    const add = h("button", { type: "button" }, "Add action");
    add.addEventListener("click", () => { state.actions.push(blank(kind.value)); render(); });
    const name = field("Name", input(state.name, (v) => { state.name = v; }, { maxlength: 100, required: true }));
    const enabled = h("input", { type: "checkbox", checked: state.enabled });
    enabled.addEventListener("change", () => { state.enabled = enabled.checked; });
    const save = h("button", { type: "submit", class: "primary" }, "Save automation");
    const form = h("form", { id: "automation-form" },
      h("fieldset", { disabled: !editable },
        name, h("label", { class: "check" }, enabled, "Enabled"),
        condition,
        h("fieldset", { class: "then" }, h("legend", {}, "Then"),
          state.actions.length ? actions : h("p", { class: "muted" }, "No actions yet: add at least one."),
          editable ? h("div", { class: "row add-action" }, kind, add) : null),
        error, editable ? save : null));
    form.addEventListener("submit", submit);
    root.replaceChildren(form);
  }

  function button(text, label, disabled, onClick) {
    const el = h("button", { type: "button", class: "small", "aria-label": label, disabled }, text);
    el.addEventListener("click", onClick);
    return el;
  }

  function swap(i, j) {
    [state.actions[i], state.actions[j]] = [state.actions[j], state.actions[i]];
    render();
  }

  function document_() {
    const c = { ...state.condition };
    if (c.type === "device_state") {
      if (["on", "off", "changed"].includes(c.op)) { delete c.value; delete c.value2; }
      else if (c.value !== null && c.value !== undefined && c.value !== "" && !Number.isNaN(Number(c.value))) c.value = Number(c.value);
      if (c.op !== "between") delete c.value2;
    }
    return { name: state.name, enabled: state.enabled, limit_period_s: c.type === "device_state" ? state.limit || 0 : 0,
             condition: c, actions: state.actions };
  }

  async function submit(ev) {
    ev.preventDefault();
    error.textContent = "";
    try {
      const body = document_();
      const saved = id === null
        ? await api("POST", `/api/console/automations?org_id=${encodeURIComponent(root.dataset.org)}`, body)
        : await api("PUT", `/api/console/automations/${id}`, body);
      root.dataset.saved = String(saved.id);
      window.location.assign("/automations");
    } catch (err) {
      error.textContent = err.message;
    }
  }

  render();
  root.dataset.ready = "yes";
  loadPlaces();
})();
