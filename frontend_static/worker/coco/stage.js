// The photo and what is drawn over it: placed icons, the keyboard cursor, the magnifier lens.
import { element, fractionIn } from "../../lib/dom.js";
import { categoryIcon } from "./icons.js";

const MAGNIFICATION = 2;
const LENS_SIZE = 140;

function placeAt(node, point) {
  node.style.left = `${point.x * 100}%`;
  node.style.top = `${point.y * 100}%`;
}

/** onPress(event, category, marker) is called when a placed icon is pressed (the start of a drag). */
export function stage(imageInfo, magnifier, onPress) {
  const root = element("div", "coco-stage");
  const image = element("img", "coco-image");
  image.src = imageInfo.url;
  if (imageInfo.srcset) image.srcset = imageInfo.srcset;
  image.style.setProperty("--aspect", imageInfo.width / imageInfo.height);
  image.alt = "";
  image.draggable = false;
  const markerLayer = element("div", "coco-markers");
  const keyCursor = element("div", "keyboard-cursor");
  keyCursor.hidden = true;
  markerLayer.appendChild(keyCursor);
  root.append(image, markerLayer);
  const markers = new Map(); // category key -> the placed icon's element
  const lens = element("div", "magnifier");
  lens.hidden = true;
  document.body.appendChild(lens);

  function newMarker(category) {
    const marker = element("div", "placed-icon");
    marker.dataset.key = category.key;
    marker.title = category.name;
    marker.tabIndex = 0;
    marker.setAttribute("role", "button");
    marker.setAttribute("aria-label", `${category.name} on the image: Enter to move it, Delete to remove it`);
    marker.append(categoryIcon(category, 36), element("span", "placed-name", category.name));
    marker.addEventListener("pointerdown", (event) => onPress(event, category, marker));
    markerLayer.appendChild(marker);
    return marker;
  }

  return {
    root,
    image,
    pointAt: (clientX, clientY) => fractionIn(image, clientX, clientY),
    marker: (key) => markers.get(key),
    /** Draws the placed icons as `placed` (key -> point) has them. */
    showIcons(placed, categories) {
      for (const [key, marker] of markers) {
        if (placed.has(key)) continue;
        marker.remove();
        markers.delete(key);
      }
      for (const [key, point] of placed) {
        if (!markers.has(key)) markers.set(key, newMarker(categories.get(key)));
        placeAt(markers.get(key), point);
      }
    },
    showCursor(category, point) {
      keyCursor.textContent = "";
      keyCursor.append(categoryIcon(category, 36));
      placeAt(keyCursor, point);
      keyCursor.hidden = false;
    },
    hideCursor() {
      keyCursor.hidden = true;
    },
    /** The magnifier variant's lens over the point being dragged over (hidden off the image). */
    showLens(clientX, clientY, point) {
      if (!magnifier || !point) {
        lens.hidden = true;
        return;
      }
      const box = image.getBoundingClientRect();
      lens.hidden = false;
      lens.style.backgroundImage = `url("${image.src}")`;
      lens.style.backgroundSize = `${box.width * MAGNIFICATION}px ${box.height * MAGNIFICATION}px`;
      const offsetX = LENS_SIZE / 2 - point.x * box.width * MAGNIFICATION;
      const offsetY = LENS_SIZE / 2 - point.y * box.height * MAGNIFICATION;
      lens.style.backgroundPosition = `${offsetX}px ${offsetY}px`;
      lens.style.left = `${clientX - LENS_SIZE / 2}px`;
      lens.style.top = `${clientY - LENS_SIZE - 30}px`;
    },
    hideLens() {
      lens.hidden = true;
    },
    destroy() {
      lens.remove();
    },
  };
}
