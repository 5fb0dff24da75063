// Drawing 32×32 fields with colour bars, and reading uploaded masks (PNG, .npy).
// The colour rules are those of microstrain.plots: E gray_r on the two moduli, strains and
// stresses viridis, shear and errors RdBu_r symmetric about 0, von Mises magma; a prediction and
// its FE reference share one range; every colour bar names its quantity and unit.
"use strict";

const GRID = 32;
const E_MATRIX = 3000;
const E_FIBER = 85000;

// --- colours --------------------------------------------------------------------------------
const LUTS = {};
for (const [name, hex] of Object.entries(COLORMAPS)) {
  const stops = [];
  for (let i = 0; i < hex.length; i += 6) {
    stops.push([0, 2, 4].map((k) => parseInt(hex.slice(i + k, i + k + 2), 16)));
  }
  LUTS[name] = stops;
}

function colour(name, t) {
  const stops = LUTS[name];
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}

// --- numbers ----------------------------------------------------------------------------------
function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * power >= raw) return m * power;
  }
  return 10 * power;
}

function ticks(lo, hi, count) {
  if (!(hi > lo)) return { values: [lo], step: 1 };
  const step = niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return { values: out, step };
}

function formatNumber(v, step) {
  const digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
  const text = Math.abs(v) >= 1000
    ? Math.round(v).toLocaleString("en-US")
    : v.toFixed(digits);
  return text.replace(/^-/, "\u2212");
}

function fieldRange(fields, symmetric) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const field of fields) {
    for (const v of field) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (symmetric) {
    const bound = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return [-bound, bound];
  }
  if (!(hi > lo)) return [lo - 1e-12, hi + 1e-12];
  return [lo, hi];
}

// --- a panel: the field and its colour bar in one canvas --------------------------------------
const PANEL = { map: 122, bar: 8, gap: 6, width: 192, height: 140, font: 10.5 };

function drawPanel(canvas, field, style, range) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = PANEL.width * dpr;
  canvas.height = PANEL.height * dpr;
  canvas.style.width = PANEL.width + "px";
  canvas.style.height = PANEL.height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, PANEL.width, PANEL.height);
  const [lo, hi] = range;
  const top = (PANEL.height - PANEL.map) / 2;

  const pixels = new ImageData(GRID, GRID);
  for (let i = 0; i < GRID * GRID; i++) {
    const [r, g, b] = colour(style.cmap, (field[i] - lo) / (hi - lo));
    pixels.data.set([r, g, b, 255], 4 * i);
  }
  const tile = document.createElement("canvas");
  tile.width = GRID;
  tile.height = GRID;
  tile.getContext("2d").putImageData(pixels, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, 0, top, PANEL.map, PANEL.map);
  ctx.strokeStyle = "rgba(15, 23, 42, 0.35)";
  ctx.lineWidth = 1;
  ctx.strokeRect(0.5, top + 0.5, PANEL.map - 1, PANEL.map - 1);

  // colour bar, top = high values
  const x0 = PANEL.map + PANEL.gap;
  for (let y = 0; y < PANEL.map; y++) {
    const [r, g, b] = colour(style.cmap, 1 - y / (PANEL.map - 1));
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x0, top + y, PANEL.bar, 1);
  }
  ctx.strokeRect(x0 + 0.5, top + 0.5, PANEL.bar - 1, PANEL.map - 1);

  ctx.fillStyle = "#334155";
  ctx.font = `${PANEL.font}px system-ui, -apple-system, "Segoe UI", sans-serif`;
  ctx.textBaseline = "middle";
  const labels = style.ticks ? style.ticks(lo, hi) : defaultTicks(lo, hi);
  let widest = 0;
  for (const [value, text] of labels) {
    const y = top + (1 - (value - lo) / (hi - lo)) * (PANEL.map - 1);
    ctx.fillRect(x0 + PANEL.bar, Math.round(y), 3, 1);
    const lines = text.split("\n");
    // keep the whole label beside the bar: the end labels move inwards
    const half = (lines.length * PANEL.font) / 2;
    const centre = Math.min(top + PANEL.map - half, Math.max(top + half, y));
    lines.forEach((line, k) => {
      const ly = centre + (k - (lines.length - 1) / 2) * PANEL.font;
      ctx.fillText(line, x0 + PANEL.bar + 5, ly);
      widest = Math.max(widest, ctx.measureText(line).width);
    });
  }
  // the unit, turned along the bar
  ctx.save();
  ctx.translate(Math.min(PANEL.width - 4, x0 + PANEL.bar + 10 + widest + 6), top + PANEL.map / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillStyle = "#64748b";
  ctx.fillText(style.unit, 0, 0);
  ctx.restore();
}

function defaultTicks(lo, hi) {
  const { values, step } = ticks(lo, hi, 4);
  return values.map((v) => [v, formatNumber(v, step)]);
}

const STYLES = {
  E: {
    title: "E", unit: "Young's modulus (MPa)", cmap: "gray_r", symmetric: false,
    range: [E_MATRIX, E_FIBER],
    ticks: () => [[E_FIBER, "85 000"], [E_MATRIX, "3 000"]],
  },
  eps_xx: { title: "ε<sub>xx</sub>", unit: "strain (–)", cmap: "viridis", symmetric: false },
  eps_yy: { title: "ε<sub>yy</sub>", unit: "strain (–)", cmap: "viridis", symmetric: false },
  gamma_xy: { title: "γ<sub>xy</sub>", unit: "shear strain (–)", cmap: "RdBu_r", symmetric: true },
  von_mises: { title: "von Mises σ<sub>vM</sub>", unit: "stress (MPa)", cmap: "magma", symmetric: false },
  error: { title: "error", unit: "error (–)", cmap: "RdBu_r", symmetric: true },
  error_mpa: { title: "error", unit: "error (MPa)", cmap: "RdBu_r", symmetric: true },
};

// A <figure> with a title and a panel canvas, appended to `parent`; returns the canvas.
function panelFigure(parent, titleHtml, note) {
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.innerHTML = titleHtml + (note ? ` <span class="note">${note}</span>` : "");
  const canvas = document.createElement("canvas");
  figure.append(caption, canvas);
  parent.append(figure);
  return canvas;
}

// --- uploads ------------------------------------------------------------------------------------
// A 0/1 mask (Uint8Array of 1024, row 0 = top) from a .npy file's bytes: E in MPa or 0/1 values,
// shaped [32,32], [N,32,32] or [N,1,32,32] (the first sample is taken).
function maskFromNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) {
    throw new Error("not a .npy file (write it with numpy.save)");
  }
  const view = new DataView(buffer);
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.slice(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape) throw new Error("the .npy header cannot be read");
  if (/'fortran_order':\s*True/.test(header)) {
    throw new Error("Fortran-ordered arrays are not supported here; save with numpy.save(np.ascontiguousarray(a))");
  }
  const dims = shape[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (dims.length < 2 || dims[dims.length - 1] !== GRID || dims[dims.length - 2] !== GRID) {
    throw new Error(`the array is [${dims.join(", ")}]; each microstructure must be 32 × 32`);
  }
  const readers = {
    "<f4": [4, (o) => view.getFloat32(o, true)], "<f8": [8, (o) => view.getFloat64(o, true)],
    "|u1": [1, (o) => view.getUint8(o)], "|b1": [1, (o) => view.getUint8(o)],
    "|i1": [1, (o) => view.getInt8(o)], "<i2": [2, (o) => view.getInt16(o, true)],
    "<i4": [4, (o) => view.getInt32(o, true)], "<i8": [8, (o) => Number(view.getBigInt64(o, true))],
    "<u2": [2, (o) => view.getUint16(o, true)], "<u4": [4, (o) => view.getUint32(o, true)],
  };
  const reader = readers[descr[1]];
  if (!reader) throw new Error(`dtype ${descr[1]} is not supported; use float32, float64, int or bool`);
  const [size, read] = reader;
  const offset = start + headerLength;
  if (buffer.byteLength < offset + GRID * GRID * size) throw new Error("the .npy file is truncated");
  const values = new Float64Array(GRID * GRID);
  for (let i = 0; i < values.length; i++) values[i] = read(offset + i * size);
  const isMask = values.every((v) => v === 0 || v === 1);
  const isModulus = values.every((v) => v === E_MATRIX || v === E_FIBER);
  if (!isMask && !isModulus) {
    throw new Error("values must be 0/1 (mask) or exactly 3000/85000 MPa (E)");
  }
  return Uint8Array.from(values, (v) => (isMask ? v : v > 10000 ? 1 : 0));
}

// A 0/1 mask from a PNG (or any image the browser reads): resampled to 32 × 32, gray ≥ 128 is
// fiber (ITU-R 601 luma), as POST /predict_image reads it.
function maskFromImage(blob) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = GRID;
      canvas.height = GRID;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "black";
      ctx.fillRect(0, 0, GRID, GRID);
      ctx.drawImage(image, 0, 0, GRID, GRID);
      const data = ctx.getImageData(0, 0, GRID, GRID).data;
      const mask = new Uint8Array(GRID * GRID);
      for (let i = 0; i < mask.length; i++) {
        const luma = 0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2];
        mask[i] = luma >= 128 ? 1 : 0;
      }
      URL.revokeObjectURL(url);
      resolve(mask);
    };
    image.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error("the file is not an image the browser can read"));
    };
    image.src = url;
  });
}
