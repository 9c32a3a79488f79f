// Assignment playback: draws what the worker did over the images, on canvas, and plays it back over time.
// ImageNet-style: mouse trace, clicks that selected / deselected, hover time, selection state, in-class marker.
// COCO-style: mouse trace, the icon actions (add, move, remove) and the icons on the image, by category name.
// The player (play / pause, a slider to scrub, speed) redraws every canvas of the page at time t: only what had
// happened by then, with the pointer's position; the page opens on its final state.
// All worker-supplied data is drawn on canvas or set with textContent: nothing is parsed as HTML.
import { element } from "../lib/dom.js";
import { arrow, COLORS, cross, dot, drawTrace, label, loadImage, pointer, playbackCanvas } from "./replay_draw.js";
import {
  clicksOf, cocoDuration, finite, hoveredMs, imagenetTimeline, lastBefore, seconds, selectedAt,
} from "./replay_time.js";

const THUMB = 150;
const COCO_HEIGHT = 450;
const ICON = 36;

function pageHeading(page, what) {
  const state = page.completed ? ` (${Math.round(page.time_spent_ms / 1000)} s)` : " (not completed)";
  return element("h3", null, `Page ${page.index + 1}: ${what}${state}`);
}

function imagenetPage(page) {
  const { start, duration } = imagenetTimeline(page);
  const section = element("section", "replay-page");
  section.appendChild(pageHeading(page, page.category));
  const grid = element("div", "replay-grid");
  const painters = page.items.map((item) => {
    const figure = element("figure", "replay-item");
    if (item.in_class) figure.classList.add("in-class");
    const clicks = clicksOf(item);
    const trace = item.mouse_tracking || [];
    const hovered = item.hovered_record || [];
    const caption = element("figcaption");
    const view = playbackCanvas(item.url, THUMB, THUMB, (ctx, w, h, t) => {
      const atEnd = t >= duration;
      const until = start + t;
      drawTrace(ctx, trace.filter((p) => p.time <= until), w, h);
      const shown = clicks.filter((c) => finite(c) && c.time <= until);
      for (const c of shown) if (!c.selected) cross(ctx, c, w, h, COLORS.deselect, 6);
      for (const c of shown) if (c.selected) dot(ctx, c, w, h, COLORS.select, 6);
      const hover = hoveredMs(hovered, until);
      if (hover > 0) label(ctx, seconds(hover), 2, h - 4);
      const at = atEnd ? null : lastBefore(trace, until, (p) => p.time);
      if (at && until - at.time < 1000) pointer(ctx, at, w, h);
      const selected = atEnd ? Boolean(item.selected) : selectedAt(clicks, until);
      figure.classList.toggle("selected", selected);
      caption.textContent = item.image_key + (item.in_class ? " · in class" : "") + (item.is_gold ? " · gold" : "") +
        (selected ? " · selected" : "");
    });
    figure.append(view.canvas, caption);
    grid.appendChild(figure);
    return view.paint;
  });
  section.appendChild(grid);
  return { section, duration, paint: (t) => painters.forEach((paint) => paint(t)) };
}

/** Icons by category key, loaded once for every page. */
function iconSet(categories) {
  const images = {};
  for (const key of Object.keys(categories)) images[key] = loadImage(categories[key].icon);
  return {
    image: (key) => images[key],
    name: (key) => (categories[key] ? categories[key].name : String(key)),
    ready: Promise.all(Object.values(images).map((image) => image.loaded)),
  };
}

/** Where each icon was at time t (at the end: the page's final positions), drawing every action up to then. */
function drawActions(ctx, actions, w, h, t, atEnd) {
  const placed = {};
  for (const action of actions) {
    if (!atEnd && action.timeAt > t) continue;
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
  }
  return placed;
}

function drawIcons(ctx, shown, icons, w, h) {
  for (const [key, p] of Object.entries(shown)) {
    if (!finite(p)) continue;
    const icon = icons.image(key);
    if (icon && icon.complete && icon.naturalWidth) {
      ctx.globalAlpha = 0.85;
      ctx.drawImage(icon, p.x * w + 6, p.y * h - ICON - 6, ICON, ICON);
      ctx.globalAlpha = 1;
    }
    label(ctx, icons.name(key), p.x * w + 8, p.y * h + 14);
  }
}

function cocoPage(page, icons, seek) {
  const actions = page.action_histories || [];
  const trace = page.mouse_tracking || [];
  const duration = cocoDuration(page);
  const section = element("section", "replay-page");
  section.appendChild(pageHeading(page, `image ${page.image_key}`));
  const list = element("ol", "actions");
  const view = playbackCanvas(page.url, Math.round(COCO_HEIGHT * 16 / 9), COCO_HEIGHT, (ctx, w, h, t) => {
    const atEnd = t >= duration;
    drawTrace(ctx, trace.filter((p) => p.timeAt <= t), w, h);
    const placed = drawActions(ctx, actions, w, h, t, atEnd);
    drawIcons(ctx, atEnd ? (page.final_positions || {}) : placed, icons, w, h);
    const at = atEnd ? null : lastBefore(trace, t, (p) => p.timeAt);
    if (at) pointer(ctx, at, w, h);
    for (const item of list.querySelectorAll("li")) {
      item.classList.toggle("future", !atEnd && Number(item.dataset.time) > t);
    }
  }, icons.ready);
  section.appendChild(view.canvas);
  for (const action of actions) {
    const item = element("li");
    const jump = element("button", "seek", `${seconds(action.timeAt)}: ${action.actionType} ${icons.name(action.iconType)}`);
    jump.type = "button";
    jump.title = "Show the page at this moment";
    jump.addEventListener("click", () => seek(action.timeAt));
    item.dataset.time = action.timeAt;
    item.appendChild(jump);
    list.appendChild(item);
  }
  section.appendChild(list);
  return { section, duration, paint: view.paint };
}

/** The player: one time cursor for the page shown. */
function player(onPage) {
  const bar = document.getElementById("replay-player");
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
    clockText.textContent = `${seconds(time)} / ${seconds(current.duration)}`;
    current.paint(time >= current.duration ? Infinity : time);
  }

  function frame(now) {
    if (!playing) return;
    if (lastFrame !== null) setTime(time + (now - lastFrame) * Number(speed.value));
    lastFrame = now;
    if (time >= current.duration) {
      pause();
      return;
    }
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

  if (bar) {
    playButton.addEventListener("click", () => (playing ? pause() : play()));
    scrub.addEventListener("input", () => seek(Number(scrub.value)));
  }

  return {
    seek,
    /** Shows a page ({section, duration, paint}) at its end. */
    show(page) {
      pause();
      current = page;
      onPage(page.section);
      scrub.max = String(page.duration);
      bar.hidden = page.duration <= 0;
      setTime(page.duration);
    },
  };
}

function start() {
  const dataNode = document.getElementById("replay-data");
  const root = document.getElementById("replay");
  const tabs = document.getElementById("page-tabs");
  if (!dataNode || !root) return;
  const playback = JSON.parse(dataNode.textContent);
  const icons = iconSet(playback.categories || {});
  const controls = player((section) => root.replaceChildren(section));

  function show(index) {
    const page = playback.pages[index];
    controls.show(playback.kind === "coco" ? cocoPage(page, icons, controls.seek) : imagenetPage(page));
    tabs.querySelectorAll("button").forEach((button, i) => button.setAttribute("aria-pressed", String(i === index)));
  }

  playback.pages.forEach((page, index) => {
    const button = element("button", page.completed ? "done" : "missing", String(index + 1));
    button.type = "button";
    button.title = page.completed ? "completed" : "not completed";
    button.addEventListener("click", () => show(index));
    tabs.appendChild(button);
  });
  if (playback.pages.length) show(0);
}

start();
