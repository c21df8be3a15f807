// The live region of a widget: one line that says what the last action did.
//
// Screen readers announce each new text (role="status" is polite: after what they are
// reading). While a widget plays its steps by itself, announcing every step would bury the
// reader in speech, so `hush()` turns the announcements off and `speak()` turns them back on
// with the current text.

import { el } from "./dom.js";

export function createAnnouncer() {
  const element = el("p", { class: "nb-sim-status", role: "status", "aria-live": "polite", "aria-atomic": "true" });
  return {
    element,
    /** Show (and announce) a message; it is always set as text. */
    say(text) {
      element.textContent = text;
    },
    text: () => element.textContent,
    hush() {
      element.setAttribute("aria-live", "off");
    },
    speak() {
      element.setAttribute("aria-live", "polite");
      const text = element.textContent;
      element.textContent = "";
      element.textContent = text;
    },
  };
}
