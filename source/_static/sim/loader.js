// Mounts the simulators of a page. Every <div class="nb-sim-mount" data-widget="NAME"
// data-params="{...}"> gets the widget ./NAME/view.js, which exports mount(element, params)
// and builds itself with the widget kit (./kit/). Loaded only on pages that have a
// simulator; the widgets come from this site, never a CDN.

import { el } from "./kit/dom.js";

const NAME = /^[a-z0-9][a-z0-9-]*$/;

async function mountOne(element) {
  const name = element.dataset.widget || "";
  if (!NAME.test(name)) throw new Error(`bad widget name ${JSON.stringify(name)}`);
  const params = JSON.parse(element.dataset.params || "{}");
  const view = await import(new URL(`./${name}/view.js`, import.meta.url).href);
  element.replaceChildren();
  view.mount(element, params);
  element.dataset.mounted = "true";
}

for (const element of document.querySelectorAll(".nb-sim-mount[data-widget]")) {
  mountOne(element).catch((error) => {
    element.replaceChildren(el("p", { class: "nb-sim-error", text: `This simulator could not start: ${error.message}` }));
    console.error(error);
  });
}
