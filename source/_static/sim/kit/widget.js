// The frame every widget shares: a box with a class of its own, a row of controls, the live
// region, and the views below. A widget builds its parts with the kit and puts them here, so
// all widgets are laid out, spaced and announced alike.
//
// The frame also keeps the keyboard focus inside the widget: a control that disables itself
// when pressed (Finish on the last sequence, Step on the last step) would otherwise drop the
// focus to the top of the page; the focus moves to the next control that can take it.

import { el } from "./dom.js";
import { createAnnouncer } from "./announce.js";

const FOCUSABLE = "button, input, select, textarea, [tabindex]";

function usable(element) {
  return !element.disabled && element.getAttribute("tabindex") !== "-1" && element.getClientRects().length > 0;
}

function keepFocus(box) {
  new MutationObserver((changes) => {
    const active = document.activeElement;
    if (!changes.some((c) => c.target === active) || !active.disabled) return;
    const all = [...box.querySelectorAll(FOCUSABLE)];
    const at = all.indexOf(active);
    const next = all.slice(at + 1).find(usable) ?? all.slice(0, at).reverse().find(usable);
    next?.focus();
  }).observe(box, { attributes: true, attributeFilter: ["disabled"], subtree: true });
}

export function frame(root, className) {
  const controls = el("div", { class: "nb-kit-controls" });
  const announcer = createAnnouncer();
  const views = el("div", { class: "nb-kit-views" });
  const box = el("div", { class: `nb-kit ${className}` }, controls, announcer.element, views);
  root.append(box);
  keepFocus(box);
  return { box, controls, announcer, views };
}

/** A titled part of the views: <section> with a heading that names it for screen readers. */
export function view(id, title, ...children) {
  return el("section", { class: "nb-kit-view", "aria-labelledby": `${id}-h` },
    el("h4", { id: `${id}-h`, text: title }), ...children);
}
