// Mounts the simulators of a page. Every <div class="nb-sim-mount" data-widget="NAME"
// data-params="{...}"> gets the widget ./NAME/view.js, which exports mount(element, params).
// Loaded only on pages that have a simulator; the widgets come from this site, never a CDN.

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
    const message = document.createElement("p");
    message.className = "nb-sim-error";
    message.textContent = `This simulator could not start: ${error.message}`;
    element.replaceChildren(message);
    console.error(error);
  });
}
