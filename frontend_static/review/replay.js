// Assignment replay: draws what the worker did over the images, on canvas, and plays it back over time.
// ImageNet-style: mouse trace, clicks that selected / deselected, hover time, selection state, in-class marker.
// COCO-style: mouse trace, the icon actions (add, move, remove) and the icons on the image, by category name.
// The player (play / pause, a slider to scrub, speed) redraws every canvas of the page at time t: only what had
// happened by then, with the pointer's position; the page opens on its final state.
// All worker-supplied data is drawn on canvas or set with textContent: nothing is parsed as HTML.
(function () {
  "use strict";
  const dataNode = document.getElementById("replay-data");
  const root = document.getElementById("replay");
  const tabs = document.getElementById("page-tabs");
  if (!dataNode || !root) return;
  const replay = JSON.parse(dataNode.textContent);
  const COLORS = {
    select: "#1a9850", deselect: "#d73027", move: "#4575b4", trace: "#ff7f00", halo: "rgba(255, 255, 255, 0.8)",
  };
  const THUMB = 150;
  const COCO_HEIGHT = 450;
  const ICON = 36;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function finite(point) {
    return point && Number.isFinite(point.x) && Number.isFinite(point.y);
  }

  function seconds(ms) {
    return (ms / 1000).toFixed(1) + " s";
  }

  // The trace as an orange line on a white halo, visible on any photo.
  function drawTrace(ctx, points, w, h) {
    const valid = points.filter(finite);
    if (valid.length < 2) return;
    [[COLORS.halo, 4.5], [COLORS.trace, 2.5]].forEach(function (pen) {
      ctx.strokeStyle = pen[0];
      ctx.lineWidth = pen[1];
      ctx.lineJoin = "round";
      ctx.beginPath();
      valid.forEach(function (p, i) {
        if (i === 0) ctx.moveTo(p.x * w, p.y * h); else ctx.lineTo(p.x * w, p.y * h);
      });
      ctx.stroke();
    });
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

  // Where the pointer was at time t: a ring.
  function pointer(ctx, p, w, h) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(p.x * w, p.y * h, 7, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.strokeStyle = "#fff";
    ctx.beginPath();
    ctx.arc(p.x * w, p.y * h, 9, 0, 2 * Math.PI);
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

  function hoveredMs(hovered, until) {
    let total = 0, enteredAt = null;
    hovered.forEach(function (h) {
      if (h.time > until) return;
      if (h.action === "enter") enteredAt = h.time;
      else if (h.action === "leave" && enteredAt !== null) { total += h.time - enteredAt; enteredAt = null; }
    });
    if (enteredAt !== null && Number.isFinite(until)) total += until - enteredAt;
    return total;
  }

  function loadImage(url) {
    const image = new Image();
    image.loaded = new Promise(function (resolve) {
      image.onload = function () { resolve(true); };
      image.onerror = function () { resolve(false); };
    });
    if (url) image.src = url; else image.onerror();
    return image;
  }

  // A canvas showing url inside a maxWidth x maxHeight box at the image's own aspect ratio, redrawn by
  // paint(t) with overlay(ctx, w, h, t) on top (on a grey box if the image does not load).
  function replayCanvas(url, maxWidth, maxHeight, overlay, ready) {
    const canvas = element("canvas");
    canvas.width = maxWidth;
    canvas.height = maxHeight;
    const ctx = canvas.getContext("2d");
    const image = loadImage(url);
    let loaded = null;
    let time = Infinity;
    function paint(t) {
      time = t;
      if (loaded === null) return;
      if (loaded) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      else { ctx.fillStyle = "#ddd"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
      overlay(ctx, canvas.width, canvas.height, t);
    }
    Promise.all([image.loaded, ready || Promise.resolve()]).then(function (results) {
      loaded = results[0];
      if (loaded && image.naturalWidth && image.naturalHeight) {
        const scale = Math.min(maxWidth / image.naturalWidth, maxHeight / image.naturalHeight);
        canvas.width = Math.round(image.naturalWidth * scale);
        canvas.height = Math.round(image.naturalHeight * scale);
      }
      paint(time);
      canvas.dataset.drawn = "true";
    });
    return { canvas: canvas, paint: paint };
  }

  function lastBefore(points, until, timeOf) {
    let last = null;
    points.forEach(function (p) { if (timeOf(p) <= until && finite(p)) last = p; });
    return last;
  }

  // ImageNet-style: times are epoch ms; the page's clock starts at its first recorded event.
  function imagenetPage(page) {
    const times = [];
    page.items.forEach(function (item) {
      ["selected_record", "deselected_record", "hovered_record", "mouse_tracking"].forEach(function (name) {
        (item[name] || []).forEach(function (entry) { if (Number.isFinite(entry.time)) times.push(entry.time); });
      });
    });
    const start = times.length ? Math.min.apply(null, times) : 0;
    const duration = times.length ? Math.max.apply(null, times) - start : 0;
    const section = element("section", "replay-page");
    section.appendChild(element("h3", null, "Page " + (page.index + 1) + ": " + page.category +
      (page.completed ? " (" + Math.round(page.time_spent_ms / 1000) + " s)" : " (not completed)")));
    const grid = element("div", "replay-grid");
    const painters = page.items.map(function (item) {
      const figure = element("figure", "replay-item");
      if (item.in_class) figure.classList.add("in-class");
      const selects = (item.selected_record || []).map(function (c) { return Object.assign({ selected: true }, c); });
      const deselects = (item.deselected_record || []).map(function (c) { return Object.assign({ selected: false }, c); });
      const clicks = selects.concat(deselects).sort(function (a, b) { return a.time - b.time; });
      const trace = item.mouse_tracking || [];
      const hovered = item.hovered_record || [];
      const caption = element("figcaption");
      function selectedAt(until, atEnd) {
        if (atEnd) return Boolean(item.selected);
        let state = false;
        clicks.forEach(function (c) { if (c.time <= until) state = c.selected; });
        return state;
      }
      const view = replayCanvas(item.url, THUMB, THUMB, function (ctx, w, h, t) {
        const atEnd = t >= duration;
        const until = start + t;
        drawTrace(ctx, trace.filter(function (p) { return p.time <= until; }), w, h);
        deselects.filter(function (c) { return finite(c) && c.time <= until; })
          .forEach(function (p) { cross(ctx, p, w, h, COLORS.deselect, 6); });
        selects.filter(function (c) { return finite(c) && c.time <= until; })
          .forEach(function (p) { dot(ctx, p, w, h, COLORS.select, 6); });
        const hover = hoveredMs(hovered, until);
        if (hover > 0) label(ctx, seconds(hover), 2, h - 4);
        const at = atEnd ? null : lastBefore(trace, until, function (p) { return p.time; });
        if (at && until - at.time < 1000) pointer(ctx, at, w, h);
        const selected = selectedAt(until, atEnd);
        figure.classList.toggle("selected", selected);
        caption.textContent = item.image_key + (item.in_class ? " · in class" : "") + (item.is_gold ? " · gold" : "") +
          (selected ? " · selected" : "");
      });
      figure.append(view.canvas, caption);
      grid.appendChild(figure);
      return view.paint;
    });
    section.appendChild(grid);
    return { section: section, duration: duration, paint: function (t) { painters.forEach(function (p) { p(t); }); } };
  }

  // Icons by category key, loaded once for every page.
  const categories = replay.categories || {};
  const iconImages = {};
  Object.keys(categories).forEach(function (key) { iconImages[key] = loadImage(categories[key].icon); });
  const iconsReady = Promise.all(Object.keys(iconImages).map(function (key) { return iconImages[key].loaded; }));

  function categoryName(key) {
    return categories[key] ? categories[key].name : String(key);
  }

  // COCO-style: times are ms since the page was shown.
  function cocoPage(page, seek) {
    const actions = page.action_histories || [];
    const trace = page.mouse_tracking || [];
    const times = actions.map(function (a) { return a.timeAt; }).concat(trace.map(function (p) { return p.timeAt; }))
      .filter(Number.isFinite);
    const duration = Math.max(page.time_spent_ms || 0, times.length ? Math.max.apply(null, times) : 0);
    const section = element("section", "replay-page");
    section.appendChild(element("h3", null, "Page " + (page.index + 1) + ": image " + page.image_key +
      (page.completed ? " (" + Math.round(page.time_spent_ms / 1000) + " s)" : " (not completed)")));
    const view = replayCanvas(page.url, Math.round(COCO_HEIGHT * 16 / 9), COCO_HEIGHT, function (ctx, w, h, t) {
      const atEnd = t >= duration;
      drawTrace(ctx, trace.filter(function (p) { return p.timeAt <= t; }), w, h);
      const placed = {};
      actions.forEach(function (action) {
        if (!atEnd && action.timeAt > t) return;
        if (action.actionType === "add" && finite(action.pointTo)) {
          dot(ctx, action.pointTo, w, h, COLORS.select, 5);
          placed[action.iconType] = action.pointTo;
        } else if (action.actionType === "move" && finite(action.pointFrom) && finite(action.pointTo)) {
          arrow(ctx, action.pointFrom, action.pointTo, w, h, COLORS.move);
          placed[action.iconType] = action.pointTo;
        } else if (action.actionType === "remove" && finite(action.pointFrom)) {
          cross(ctx, action.pointFrom, w, h, COLORS.deselect, 7);
          delete placed[action.iconType];
        }
      });
      const shown = atEnd ? (page.final_positions || {}) : placed;
      Object.keys(shown).forEach(function (key) {
        const p = shown[key];
        if (!finite(p)) return;
        const icon = iconImages[key];
        if (icon && icon.complete && icon.naturalWidth) {
          ctx.globalAlpha = 0.85;
          ctx.drawImage(icon, p.x * w + 6, p.y * h - ICON - 6, ICON, ICON);
          ctx.globalAlpha = 1;
        }
        label(ctx, categoryName(key), p.x * w + 8, p.y * h + 14);
      });
      const at = atEnd ? null : lastBefore(trace, t, function (p) { return p.timeAt; });
      if (at) pointer(ctx, at, w, h);
      list.querySelectorAll("li").forEach(function (item) {
        item.classList.toggle("future", !atEnd && Number(item.dataset.time) > t);
      });
    }, iconsReady);
    section.appendChild(view.canvas);
    const list = element("ol", "actions");
    actions.forEach(function (action) {
      const item = element("li");
      const jump = element("button", "seek", seconds(action.timeAt) + ": " + action.actionType + " " +
        categoryName(action.iconType));
      jump.type = "button";
      jump.title = "Show the page at this moment";
      jump.addEventListener("click", function () { seek(action.timeAt); });
      item.dataset.time = action.timeAt;
      item.appendChild(jump);
      list.appendChild(item);
    });
    section.appendChild(list);
    return { section: section, duration: duration, paint: view.paint };
  }

  // The player: one time cursor for the page shown.
  const player = document.getElementById("replay-player");
  const playButton = document.getElementById("replay-play");
  const scrub = document.getElementById("replay-time");
  const clockText = document.getElementById("replay-clock");
  const speed = document.getElementById("replay-speed");
  let current = null;
  let time = 0;
  let playing = false;
  let lastFrame = null;

  function setTime(t) {
    time = Math.max(0, Math.min(t, current.duration));
    scrub.value = String(time);
    clockText.textContent = seconds(time) + " / " + seconds(current.duration);
    current.paint(time >= current.duration ? Infinity : time);
  }

  function frame(now) {
    if (!playing) return;
    if (lastFrame !== null) setTime(time + (now - lastFrame) * Number(speed.value));
    lastFrame = now;
    if (time >= current.duration) { pause(); return; }
    requestAnimationFrame(frame);
  }

  function play() {
    if (time >= current.duration) setTime(0);
    playing = true;
    lastFrame = null;
    playButton.textContent = "Pause";
    playButton.setAttribute("aria-pressed", "true");
    requestAnimationFrame(frame);
  }

  function pause() {
    playing = false;
    playButton.textContent = "Play";
    playButton.setAttribute("aria-pressed", "false");
  }

  function seek(t) {
    pause();
    setTime(t);
  }

  if (player) {
    playButton.addEventListener("click", function () { if (playing) pause(); else play(); });
    scrub.addEventListener("input", function () { seek(Number(scrub.value)); });
  }

  function show(index) {
    pause();
    current = replay.kind === "coco" ? cocoPage(replay.pages[index], seek) : imagenetPage(replay.pages[index]);
    root.replaceChildren(current.section);
    scrub.max = String(current.duration);
    player.hidden = current.duration <= 0;
    setTime(current.duration);
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
