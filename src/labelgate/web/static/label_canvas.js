// Drawing delivered labels on a 2D canvas, for the checkers' pages: one path per object in
// image coordinates under a view transform (scale, then translate), the image or a neutral
// grey of its size beneath. Objects are the API's JSON objects (to_objects: kind, bbox,
// polygon rings, keypoints).

/** Add one object's outline to the current path (boxes, polygon rings, visible keypoints). */
export function trace(ctx, obj) {
  if (obj.kind === "box") { const b = obj.bbox; ctx.rect(b[0], b[1], b[2] - b[0], b[3] - b[1]); }
  else if (obj.kind === "polygon") for (const ring of obj.polygon || []) { ring.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.closePath(); }
  else if (obj.kind === "keypoints") for (const [x, y, v] of obj.keypoints || []) if (v > 0) { ctx.moveTo(x + 3, y); ctx.arc(x, y, 3, 0, 7); }
  else if (obj.bbox) { const b = obj.bbox; ctx.rect(b[0], b[1], b[2] - b[0], b[3] - b[1]); }
}

/** The view that fits an image of `w` x `h` into `width` x `height` CSS pixels, centred. */
export function fitView(width, height, w, h, margin = 0.96) {
  const scale = Math.min(width / w, height / h) * margin;
  return { width, height, scale, tx: (width - w * scale) / 2, ty: (height - h * scale) / 2 };
}

/** Canvas (CSS) point -> image point under a view. */
export const toImage = (view, x, y) => [(x - view.tx) / view.scale, (y - view.ty) / view.scale];

/** Size a canvas to `view` (device pixels), clear it, draw the image (or grey), and return
 *  its context with the image transform set. */
export function paintBase(canvas, view, image, w, h) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(view.width * dpr); canvas.height = Math.round(view.height * dpr);
  canvas.style.width = `${view.width}px`; canvas.style.height = `${view.height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#23262b"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(dpr * view.scale, 0, 0, dpr * view.scale, dpr * view.tx, dpr * view.ty);
  if (image) ctx.drawImage(image, 0, 0, w, h);
  else { ctx.fillStyle = "#6b7078"; ctx.fillRect(0, 0, w, h); }
  return ctx;
}

/** The object whose bounding box holds the image point, the smallest one first (so a small
 *  object on a large one can be picked); null for none. */
export function hitTest(objects, x, y) {
  let best = null; let area = Infinity;
  for (const obj of objects) {
    const b = obj.bbox;
    if (!b || x < b[0] || x > b[2] || y < b[1] || y > b[3]) continue;
    const a = (b[2] - b[0]) * (b[3] - b[1]);
    if (a < area) { best = obj; area = a; }
  }
  return best;
}
