// The reader's motion setting. Nothing in a widget moves unless the reader asks: no widget
// plays on load. With "reduce motion" set, kit.css turns every transition and animation of
// the widgets off, and play() steps at a slower pace.

const QUERY = "(prefers-reduced-motion: reduce)";

export function reducedMotion() {
  return typeof matchMedia === "function" && matchMedia(QUERY).matches;
}

/** Milliseconds between steps when a widget plays. */
export function playInterval() {
  return reducedMotion() ? 2400 : 1200;
}
