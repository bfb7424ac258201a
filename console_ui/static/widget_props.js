// Widget properties a device sets (Blynk's ds/<name>/prop/<property>, HTTP update/property), as
// both the console's web dashboard and the app's mobile dashboard apply them: one reading of
// each property, so the two never differ. Values come from devices: a label enters as text
// only, a colour reaches a style only when it is a hex colour (#rgb, #rrggbb or #rrggbbaa: no
// url(), no var(), no ';'), a number only when it is a finite number, a flag only as
// "true"/"1" (Blynk sends true/false).
"use strict";

(function () {
  const HEX = /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/;
  const COLORS = ["color", "onColor", "offColor", "onBackColor", "offBackColor", "backColor"];

  /** The colour, or null when it is not a hex colour. */
  function color(value) {
    return typeof value === "string" && HEX.test(value) ? value : null;
  }

  /** Blynk's booleans: "true" or "1". */
  function flag(value) {
    return value === "true" || value === "1" || value === true;
  }

  /** A finite number, or null. */
  function number(value) {
    if (value === null || value === undefined || value === "") return null;
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }

  /** Text to show (a multi-value property shows its first item), or null when unset. */
  function text(value) {
    if (value === null || value === undefined || value === "") return null;
    return String(value).split("\x00")[0];
  }

  /** The first of the numbers that is one (a property, the widget's own, the datastream's). */
  function pick(...values) {
    for (const v of values) {
      const n = number(v);
      if (n !== null) return n;
    }
    return null;
  }

  // What every widget shows the same way: its title (label), accent colour (color), hidden
  // (isHidden) and disabled (isDisabled; controls also stay disabled for a user who may not
  // write). ``controls`` are the widget's inputs to disable; ``titleText`` its title unset.
  function applyCommon(el, title, titleText, props, controls, canControl) {
    const p = props || {};
    if (title) title.textContent = text(p.label) ?? titleText;
    const accent = color(p.color);
    if (accent) el.style.setProperty("--accent", accent); else el.style.removeProperty("--accent");
    const hidden = flag(p.isHidden);
    el.hidden = hidden;
    if (hidden) el.style.setProperty("display", "none"); else el.style.removeProperty("display");
    const disabled = flag(p.isDisabled);
    el.classList.toggle("disabled", disabled);
    el.dataset.disabled = String(disabled);
    for (const c of controls) c.disabled = !canControl || disabled;
  }

  window.openblynkProps = { color, flag, number, text, pick, applyCommon, COLORS };
})();
