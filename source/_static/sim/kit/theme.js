// Light and dark: colours come from CSS variables, never from constants in a widget.
//
// pydata-sphinx-theme sets data-theme="light" or "dark" on <html>, and kit.css defines the
// widgets' colours (--nb-seq-0 ... --nb-seq-7 for sequences, the theme's own variables for
// text, lines and surfaces) for both. A widget styles its SVG with var(...) through these
// helpers, so a change of theme recolours it without redrawing. A drawing that needs the
// actual value (a canvas) reads it with resolve() and redraws on onThemeChange().

export const SEQ_COLOURS = 8;

/** The CSS value of a variable, usable in a style property: var(--nb-seq-3). */
export function cssVar(name) {
  return `var(${name})`;
}

/** The colour of the i-th sequence (eight colours, then they repeat). */
export function seqColour(i) {
  return cssVar(`--nb-seq-${((i % SEQ_COLOURS) + SEQ_COLOURS) % SEQ_COLOURS}`);
}

/** The value a variable has now on `element` (for drawing that cannot use var()). */
export function resolve(element, name) {
  return getComputedStyle(element).getPropertyValue(name).trim();
}

/** "light" or "dark", as the theme shows the page now. */
export function currentTheme() {
  const chosen = document.documentElement.dataset.theme;
  if (chosen === "light" || chosen === "dark") return chosen;
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/** Call `callback(theme)` whenever the theme changes; returns a function that stops it. */
export function onThemeChange(callback) {
  const observer = new MutationObserver(() => callback(currentTheme()));
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  const media = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  const listener = () => callback(currentTheme());
  media?.addEventListener("change", listener);
  return () => {
    observer.disconnect();
    media?.removeEventListener("change", listener);
  };
}
