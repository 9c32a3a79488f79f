// "This image contains": the placed categories, each with its remove button.
import { element } from "../../lib/dom.js";
import { categoryIcon } from "./icons.js";

/** onRemove(category) is called by a remove button. */
export function containsPanel(onRemove) {
  const root = element("section", "contains-panel");
  root.appendChild(element("h2", "", "This image contains"));
  const list = element("ul", "contains-list");
  const empty = element("p", "contains-empty", "Nothing yet: drag icons onto the objects.");
  root.append(list, empty);

  function entry(category) {
    const item = element("li", "contains-entry");
    item.dataset.key = category.key;
    const remove = element("button", "remove-icon", "\u00D7");
    remove.type = "button";
    remove.title = `Remove ${category.name}`;
    remove.setAttribute("aria-label", `Remove ${category.name}`);
    remove.addEventListener("click", () => onRemove(category));
    item.append(categoryIcon(category, 28), element("span", "", category.name), remove);
    return item;
  }

  return {
    root,
    show(placed, categories) {
      list.replaceChildren(...Array.from(placed.keys(), (key) => entry(categories.get(key))));
      empty.hidden = placed.size > 0;
    },
  };
}
