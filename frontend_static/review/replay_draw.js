// Drawing the playback on canvas: the trace, clicks, actions, labels, and a canvas that redraws itself at time t.
import { element } from "../lib/dom.js";
import { finite } from "./replay_time.js";

export const COLORS = {
  select: "#1a9850", deselect: "#d73027", move: "#4575b4", trace: "#ff7f00", halo: "rgba(255, 255, 255, 0.8)",
};

// The trace as an orange line on a white halo, visible on any photo.
export function drawTrace(ctx, points, w, h) {
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

export function dot(ctx, p, w, h, color, radius) {
  ctx.fillStyle = color;
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(p.x * w, p.y * h, radius, 0, 2 * Math.PI);
  ctx.fill();
  ctx.stroke();
}

// Where the pointer was at time t: a ring.
export function pointer(ctx, p, w, h) {
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

export function cross(ctx, p, w, h, color, size) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 3;
  ctx.beginPath();
  ctx.moveTo(p.x * w - size, p.y * h - size);
  ctx.lineTo(p.x * w + size, p.y * h + size);
  ctx.moveTo(p.x * w + size, p.y * h - size);
  ctx.lineTo(p.x * w - size, p.y * h + size);
  ctx.stroke();
}

export function arrow(ctx, from, to, w, h, color) {
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

export function label(ctx, text, x, y) {
  ctx.font = "12px sans-serif";
  const width = ctx.measureText(text).width + 6;
  ctx.fillStyle = "rgba(0, 0, 0, 0.7)";
  ctx.fillRect(x, y - 13, width, 16);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, x + 3, y);
}

export function loadImage(url) {
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
export function playbackCanvas(url, maxWidth, maxHeight, overlay, ready) {
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
