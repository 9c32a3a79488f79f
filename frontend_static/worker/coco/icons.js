import { element } from "../../lib/dom.js";

/** The category's icon, drawn by the server (GET pages/<i> gives its URL): a tile with the category name. */
export function categoryIcon(category, size) {
  const icon = element("img", "category-icon");
  icon.src = category.icon;
  icon.alt = category.name;
  icon.width = size;
  icon.height = size;
  icon.draggable = false;
  return icon;
}
