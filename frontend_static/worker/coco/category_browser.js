// The category browser: one group of icons at a time, with Previous / Next.
import { element } from "../../lib/dom.js";
import { categoryIcon } from "./icons.js";

function button(className, text, onClick) {
  const node = element("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function markPlaced(tile, placed) {
  tile.classList.toggle("placed", placed.has(tile.dataset.key));
  tile.setAttribute("aria-disabled", String(placed.has(tile.dataset.key)));
}

/** onStep(-1 | 1) asks for the previous / next group; onPress(event, category, tile) starts a drag from a tile. */
export function categoryBrowser(onStep, onPress) {
  const root = element("section", "category-browser");
  const groupName = element("span", "group-name");
  const groupIndicator = element("span", "group-indicator");
  const header = element("div", "browser-header");
  header.append(
    button("group-previous", "\u25C0 Previous", () => onStep(-1)), groupName, groupIndicator,
    button("group-next", "Next \u25B6", () => onStep(1)),
  );
  const iconRow = element("div", "icon-row");
  root.append(header, iconRow);

  function tile(category, placed) {
    const node = element("div", "icon-tile");
    node.dataset.key = category.key;
    node.title = category.name;
    node.tabIndex = 0;
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", `Place ${category.name} on the image`);
    node.append(categoryIcon(category, 56), element("span", "icon-caption", category.name));
    markPlaced(node, placed);
    node.addEventListener("pointerdown", (event) => onPress(event, category, node));
    return node;
  }

  return {
    root,
    /** Shows the group at `position` of `count`; a keyboard user browsing stays in it, on its first icon. */
    showGroup(group, position, count, placed) {
      const browsingByKeyboard = iconRow.contains(document.activeElement);
      groupName.textContent = group.name;
      groupIndicator.textContent = `${position + 1} / ${count}`;
      iconRow.replaceChildren(...group.categories.map((category) => tile(category, placed)));
      if (browsingByKeyboard && iconRow.firstElementChild) iconRow.firstElementChild.focus();
    },
    showPlaced(placed) {
      for (const node of iconRow.children) markPlaced(node, placed);
    },
  };
}
