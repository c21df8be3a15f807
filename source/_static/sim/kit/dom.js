// Building a widget's DOM from data without ever parsing HTML.
//
// el("p", { class: "x", text: name }) makes <p class="x"> whose text is `name`, set through
// textContent: whatever a reader types or a page's data holds (a prompt with "<script>", say)
// stays text. Children may be nodes or strings (strings become text nodes); null and false
// are skipped. Event handlers go in `on` ({ click: fn }); attribute names starting with "on"
// and the HTML-parsing properties are refused, so no string can become code or markup.

const REFUSED = new Set(["innerhtml", "outerhtml", "srcdoc"]);

function setProps(node, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    const lower = key.toLowerCase();
    if (REFUSED.has(lower) || (lower.startsWith("on") && key !== "on")) {
      throw new Error(`el(): ${key} is not allowed; use text, children or on: { event: handler }`);
    }
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = String(value);
    else if (key === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (key === "style") for (const [name, v] of Object.entries(value)) node.style.setProperty(name, v);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element with properties (see above) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  appendAll(node, children);
  return node;
}

/** An SVG element, the same way (the SVG helpers in svg.js build on it). */
export function svgEl(tag, props = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setProps(node, props);
  appendAll(node, children);
  return node;
}

/** Replace a node's children (same rules as el's children). */
export function fill(node, ...children) {
  node.replaceChildren();
  appendAll(node, children);
  return node;
}

let counter = 0;

/** An id unique on the page, for label/for and aria-labelledby pairs. */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** "1 block", "2 blocks". */
export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

/** "A", "B", ..., "Z", "AA", ...: the names the widgets give sequences. */
export function letters(i) {
  let name = "";
  for (let n = i + 1; n > 0; n = Math.floor((n - 1) / 26)) name = String.fromCharCode(65 + ((n - 1) % 26)) + name;
  return name;
}
