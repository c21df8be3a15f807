// SVG drawing helpers. A drawing is an <svg role="img"> with a <title> and an aria-label
// that say in words what it shows; the widget also shows the same facts as text (a list or a
// table), so nothing is only in the picture. Shapes take CSS classes and colours through
// var(...) (see theme.js), never fixed colours, so light and dark both work. Text in a
// drawing is set with textContent, like everywhere in the kit.

import { svgEl } from "./dom.js";

/** The <svg> of a drawing, width x height user units, scaled to its container's width. */
export function drawing({ width, height, label, className = "nb-kit-drawing" }) {
  return svgEl("svg", {
    class: className, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
    preserveAspectRatio: "xMinYMin meet",
  }, svgEl("title", { text: label }));
}

export function rect(x, y, width, height, props = {}) {
  return svgEl("rect", { x, y, width, height, ...props });
}

export function line(x1, y1, x2, y2, props = {}) {
  return svgEl("line", { x1, y1, x2, y2, ...props });
}

export function text(x, y, content, props = {}) {
  return svgEl("text", { x, y, ...props, text: content });
}

export function group(props = {}, ...children) {
  return svgEl("g", props, ...children);
}

/** A linear scale: maps [d0, d1] onto [r0, r1]. */
export function scale([d0, d1], [r0, r1]) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** Positions of `count` equal cells in rows of `columns`: [{ x, y, row, column }]. */
export function grid({ count, columns, cell, gap = 4, x = 0, y = 0 }) {
  return Array.from({ length: count }, (_, i) => {
    const row = Math.floor(i / columns);
    const column = i % columns;
    return { x: x + column * (cell + gap), y: y + row * (cell + gap), row, column };
  });
}
