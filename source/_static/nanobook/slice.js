// Engine slices: hovering or focusing a note (or a marker in the code) highlights the line it
// explains, and the note. The notes and markers are plain HTML; this only adds the highlight.

for (const figure of document.querySelectorAll("figure.nb-slice")) {
  const parts = new Map(); // note number -> elements to highlight together
  for (const element of figure.querySelectorAll(".nb-line[data-note], .nb-note[data-note], .nb-marker[data-note]")) {
    const n = element.dataset.note;
    if (!parts.has(n)) parts.set(n, []);
    parts.get(n).push(element);
  }
  const toggle = (n, on) => {
    for (const element of parts.get(n) || []) element.classList.toggle("nb-active", on);
  };
  for (const element of figure.querySelectorAll(".nb-note[data-note], .nb-marker[data-note]")) {
    const n = element.dataset.note;
    element.addEventListener("mouseenter", () => toggle(n, true));
    element.addEventListener("mouseleave", () => toggle(n, false));
    element.addEventListener("focus", () => toggle(n, true));
    element.addEventListener("blur", () => toggle(n, false));
  }
}
