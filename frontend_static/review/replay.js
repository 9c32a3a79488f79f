// Assignment replay: draws what the worker did over the images, on canvas.
// ImageNet-style: mouse trace, clicks that selected / deselected, hover time, final state, in-class marker.
// COCO-style: mouse trace and the icon actions (add, move, remove) with their final positions.
// All worker-supplied data is drawn on canvas or set with textContent: nothing is parsed as HTML.
(function () {
  "use strict";
  const dataNode = document.getElementById("replay-data");
  const root = document.getElementById("replay");
  const tabs = document.getElementById("page-tabs");
  if (!dataNode || !root) return;
  const replay = JSON.parse(dataNode.textContent);
  const COLORS = {select: "#1a9850", deselect: "#d73027", move: "#4575b4", trace: "rgba(80, 80, 80, 0.55)"};
  const THUMB = 150;
  const COCO_HEIGHT = 450;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function finite(point) {
    return point && Number.isFinite(point.x) && Number.isFinite(point.y);
  }

  function drawTrace(ctx, points, w, h) {
    const valid = (points || []).filter(finite);
    if (valid.length < 2) return;
    ctx.strokeStyle = COLORS.trace;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    valid.forEach(function (p, i) {
      if (i === 0) ctx.moveTo(p.x * w, p.y * h); else ctx.lineTo(p.x * w, p.y * h);
    });
    ctx.stroke();
  }

  function dot(ctx, p, w, h, color, radius) {
    ctx.fillStyle = color;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(p.x * w, p.y * h, radius, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }

  function cross(ctx, p, w, h, color, size) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(p.x * w - size, p.y * h - size);
    ctx.lineTo(p.x * w + size, p.y * h + size);
    ctx.moveTo(p.x * w + size, p.y * h - size);
    ctx.lineTo(p.x * w - size, p.y * h + size);
    ctx.stroke();
  }

  function arrow(ctx, from, to, w, h, color) {
    const x0 = from.x * w, y0 = from.y * h, x1 = to.x * w, y1 = to.y * h;
    const angle = Math.atan2(y1 - y0, x1 - x0);
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - 10 * Math.cos(angle - 0.4), y1 - 10 * Math.sin(angle - 0.4));
    ctx.lineTo(x1 - 10 * Math.cos(angle + 0.4), y1 - 10 * Math.sin(angle + 0.4));
    ctx.closePath();
    ctx.fill();
  }

  function label(ctx, text, x, y) {
    ctx.font = "12px sans-serif";
    const width = ctx.measureText(text).width + 6;
    ctx.fillStyle = "rgba(0, 0, 0, 0.7)";
    ctx.fillRect(x, y - 13, width, 16);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x + 3, y);
  }

  function hoveredSeconds(hovered) {
    let total = 0, enteredAt = null;
    (hovered || []).forEach(function (h) {
      if (h.action === "enter") enteredAt = h.time;
      else if (h.action === "leave" && enteredAt !== null) { total += h.time - enteredAt; enteredAt = null; }
    });
    return total / 1000;
  }

  // Draws the image, then overlay(ctx, w, h) once it is loaded (on a grey box if it fails to load).
  // keepAspect: the canvas takes the image's aspect ratio at the given height; else the image fills width x height.
  function canvasWithImage(url, width, height, keepAspect, overlay) {
    const canvas = element("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    const image = new Image();
    image.onload = function () {
      if (keepAspect && image.naturalHeight) canvas.width = Math.round(image.naturalWidth * height / image.naturalHeight);
      ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      overlay(ctx, canvas.width, canvas.height);
      canvas.dataset.drawn = "true";
    };
    image.onerror = function () {
      ctx.fillStyle = "#ddd";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      overlay(ctx, canvas.width, canvas.height);
      canvas.dataset.drawn = "true";
    };
    if (url) image.src = url; else image.onerror();
    return canvas;
  }

  function imagenetPage(page) {
    const section = element("section", "replay-page");
    section.appendChild(element("h3", null, "Page " + (page.index + 1) + ": " + page.category +
      (page.completed ? " (" + Math.round(page.time_spent_ms / 1000) + " s)" : " (not completed)")));
    const grid = element("div", "replay-grid");
    page.items.forEach(function (item) {
      const figure = element("figure", "replay-item");
      if (item.selected) figure.classList.add("selected");
      if (item.in_class) figure.classList.add("in-class");
      const canvas = canvasWithImage(item.url, THUMB, THUMB, false, function (ctx, w, h) {
        drawTrace(ctx, item.mouse_tracking, w, h);
        (item.deselected_record || []).filter(finite).forEach(function (p) { cross(ctx, p, w, h, COLORS.deselect, 6); });
        (item.selected_record || []).filter(finite).forEach(function (p) { dot(ctx, p, w, h, COLORS.select, 6); });
        const seconds = hoveredSeconds(item.hovered_record);
        if (seconds > 0) label(ctx, seconds.toFixed(1) + " s", 2, h - 4);
      });
      figure.appendChild(canvas);
      const caption = element("figcaption", null, item.image_key +
        (item.in_class ? " · in class" : "") + (item.is_gold ? " · gold" : "") +
        (item.selected ? " · selected" : ""));
      figure.appendChild(caption);
      grid.appendChild(figure);
    });
    section.appendChild(grid);
    return section;
  }

  function cocoPage(page) {
    const section = element("section", "replay-page");
    section.appendChild(element("h3", null, "Page " + (page.index + 1) + ": image " + page.image_key +
      (page.completed ? " (" + Math.round(page.time_spent_ms / 1000) + " s)" : " (not completed)")));
    const canvas = canvasWithImage(page.url, COCO_HEIGHT * 4 / 3, COCO_HEIGHT, true, function (ctx, w, h) {
      drawTrace(ctx, page.mouse_tracking, w, h);
      (page.action_histories || []).forEach(function (action) {
        if (action.actionType === "add" && finite(action.pointTo)) {
          dot(ctx, action.pointTo, w, h, COLORS.select, 5);
        } else if (action.actionType === "move" && finite(action.pointFrom) && finite(action.pointTo)) {
          arrow(ctx, action.pointFrom, action.pointTo, w, h, COLORS.move);
        } else if (action.actionType === "remove" && finite(action.pointFrom)) {
          cross(ctx, action.pointFrom, w, h, COLORS.deselect, 7);
        }
      });
      Object.keys(page.final_positions || {}).forEach(function (key) {
        const p = page.final_positions[key];
        if (finite(p)) label(ctx, String(key), p.x * w + 8, p.y * h + 4);
      });
    });
    section.appendChild(canvas);
    const list = element("ol", "actions");
    (page.action_histories || []).forEach(function (action) {
      list.appendChild(element("li", null, (action.timeAt / 1000).toFixed(1) + " s: " + action.actionType + " " +
        action.iconType));
    });
    section.appendChild(list);
    return section;
  }

  const render = replay.kind === "coco" ? cocoPage : imagenetPage;
  function show(index) {
    root.replaceChildren(render(replay.pages[index]));
    tabs.querySelectorAll("button").forEach(function (button, i) {
      button.setAttribute("aria-pressed", String(i === index));
    });
  }
  replay.pages.forEach(function (page, index) {
    const button = element("button", page.completed ? "done" : "missing", String(index + 1));
    button.type = "button";
    button.title = page.completed ? "completed" : "not completed";
    button.addEventListener("click", function () { show(index); });
    tabs.appendChild(button);
  });
  if (replay.pages.length) show(0);
})();
