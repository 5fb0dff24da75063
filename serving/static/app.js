// The page: a 32×32 microstructure editor, the surrogate's answer (POST /predict with the SPEC §9
// quantities) and the finite-element check (POST /verify), for any served model (GET /models).
// A uniaxial model answers the pull of SPEC §1 at ū; a periodic one (SPEC §11) a macro load's
// fields beside C_eff and its engineering constants, and its cell wraps around at the edges.
// Uses fields.js for the drawing.
"use strict";

const state = {
  mask: new Uint8Array(GRID * GRID), // 1 = fiber, row 0 = top of the specimen
  tool: "circle",
  brush: 2,
  card: null,
  prediction: null, // the last /predict answer, flattened
  fe: null, // the last /verify answer, flattened, for the mask it was asked for
  version: 0, // bumped by every edit: answers for older versions are dropped
  feVersion: -1,
  geometry: 0, // bumped by edits of the microstructure only
  feGeometry: -1,
  models: [], // GET /models
  model: null, // the selected model's name (null: the service's default)
  mode: "uniaxial", // or "periodic": the selected model's mode
  loadKind: "macro_stress", // a periodic model's load: "macro_stress" (MPa) or "macro_strain"
};
// a periodic model's load presets (xx, yy, xy): stress in MPa, strain as a fraction
const PRESETS = {
  macro_stress: { "uniaxial-x": [100, 0, 0], "uniaxial-y": [0, 100, 0], biaxial: [100, 100, 0], shear: [0, 0, 50] },
  macro_strain: { "uniaxial-x": [0.01, 0, 0], "uniaxial-y": [0, 0.01, 0], biaxial: [0.01, 0.01, 0], shear: [0, 0, 0.01] },
};
const LOAD_LABELS = {
  macro_stress: ["Σ̄<sub>xx</sub> MPa", "Σ̄<sub>yy</sub> MPa", "T̄<sub>xy</sub> MPa"],
  macro_strain: ["Ē<sub>xx</sub>", "Ē<sub>yy</sub>", "Γ̄<sub>xy</sub>"],
};
const periodic = () => state.mode === "periodic";

const $ = (id) => document.getElementById(id);
// the editor: a 32×32 grid of CELL-pixel cells at (OX, OY), the boundary conditions around it
const CELL = 10;
const OX = 16;
const OY = 6;
const EDITOR_W = OX + GRID * CELL + 34;
const EDITOR_H = OY + GRID * CELL + 16;

// --- the API ------------------------------------------------------------------------------------
async function api(path, body) {
  const response = await fetch("." + path, body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = { error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) {
    const error = new Error(data && data.error ? data.error : `HTTP ${response.status}`);
    error.status = response.status;
    error.retryAfter = response.headers.get("retry-after");
    throw error;
  }
  return data;
}

function maskRows() {
  const rows = [];
  for (let i = 0; i < GRID; i++) rows.push(Array.from(state.mask.slice(i * GRID, (i + 1) * GRID)));
  return rows;
}

function flat(nested) {
  // [32][32] nested lists -> Float32Array(1024)
  const out = new Float32Array(GRID * GRID);
  for (let i = 0; i < GRID; i++) out.set(nested[i], i * GRID);
  return out;
}

function unpack(answer) {
  const strain = answer.strain[0];
  const first = (key) => (answer[key] ? answer[key][0] : null);
  const constants = answer.engineering_constants;
  return {
    C_eff: first("C_eff"),
    constants: constants ? Object.fromEntries(Object.entries(constants).map(([k, v]) => [k, v[0]])) : null,
    bounds: answer.bounds
      ? Object.fromEntries(Object.entries(answer.bounds).map(([k, b]) => [k, { reuss: b.reuss[0], voigt: b.voigt[0] }]))
      : null,
    macro_strain: first("macro_strain"),
    macro_stress: first("macro_stress"),
    eps_xx: flat(strain[0]),
    eps_yy: flat(strain[1]),
    gamma_xy: flat(strain[2]),
    von_mises: answer.von_mises ? flat(answer.von_mises[0]) : null,
    E_x: answer.E_x ? answer.E_x[0] : null,
    nu_xy: answer.nu_xy ? answer.nu_xy[0] : null,
    max_von_mises: answer.max_von_mises ? answer.max_von_mises[0] : null,
    voigt: answer.voigt_bound ? answer.voigt_bound[0] : null,
    reuss: answer.reuss_bound ? answer.reuss_bound[0] : null,
    plane: answer.plane,
    estimate: answer.error_estimate ? answer.error_estimate[0] : null,
    warnings: answer.warnings || [],
  };
}

// --- the editor ---------------------------------------------------------------------------------
const editor = $("editor");
const ectx = editor.getContext("2d");
let stroke = null; // {x0, y0, x, y} in microstructure pixels while the pointer is down

function setupEditorCanvas() {
  const dpr = window.devicePixelRatio || 1;
  editor.width = EDITOR_W * dpr;
  editor.height = EDITOR_H * dpr;
  editor.style.width = EDITOR_W + "px";
  editor.style.height = EDITOR_H + "px";
  ectx.setTransform(dpr, 0, 0, dpr, 0, 0);
}

function drawSupports() {
  // rollers on x = 0 and y = 0, the prescribed displacement ū on x = 1
  const size = GRID * CELL;
  ectx.strokeStyle = "#64748b";
  ectx.fillStyle = "#ffffff";
  ectx.lineWidth = 1.2;
  for (let k = 0; k < 8; k++) {
    const along = (k + 0.5) * (size / 8);
    for (const [x, y] of [[OX - 5, OY + along], [OX + along, OY + size + 5]]) {
      ectx.beginPath();
      ectx.arc(x, y, 3.2, 0, 2 * Math.PI);
      ectx.fill();
      ectx.stroke();
    }
  }
  ectx.beginPath();
  ectx.moveTo(OX - 10, OY);
  ectx.lineTo(OX - 10, OY + size + 10);
  ectx.lineTo(OX + size, OY + size + 10);
  ectx.stroke();
  ectx.strokeStyle = "#0e7490";
  ectx.fillStyle = "#0e7490";
  ectx.lineWidth = 1.6;
  for (let k = 0; k < 6; k++) {
    const y = OY + (k + 0.5) * (size / 6);
    const x = OX + size + 3;
    ectx.beginPath();
    ectx.moveTo(x, y);
    ectx.lineTo(x + 16, y);
    ectx.stroke();
    ectx.beginPath();
    ectx.moveTo(x + 20, y);
    ectx.lineTo(x + 14, y - 3.5);
    ectx.lineTo(x + 14, y + 3.5);
    ectx.fill();
  }
  ectx.font = "italic 600 12px system-ui, sans-serif";
  ectx.fillText("ū", OX + size + 10, OY + size / 2 + 4); // between the two middle arrows
}

function drawPeriodicFrame() {
  // the neighbouring cells' edges, faded: the cell repeats, nothing holds it
  const size = GRID * CELL;
  ectx.fillStyle = "#1e293b26";
  for (let i = 0; i < GRID; i++) {
    for (let j = 0; j < GRID; j++) {
      if (!state.mask[i * GRID + j]) continue;
      if (j === GRID - 1) ectx.fillRect(OX - CELL, OY + i * CELL, CELL, CELL); // left margin
      if (j === 0) ectx.fillRect(OX + size, OY + i * CELL, CELL, CELL); // right margin
      if (i === 0) ectx.fillRect(OX + j * CELL, OY + size, CELL, CELL); // below
    }
  }
  ectx.fillStyle = "#0e7490";
  ectx.font = "600 13px system-ui, sans-serif";
  ectx.fillText("⇄", OX + size + CELL + 3, OY + size / 2 + 4); // left and right edges joined
}

function drawEditor() {
  const size = GRID * CELL;
  ectx.clearRect(0, 0, EDITOR_W, EDITOR_H);
  if (periodic()) drawPeriodicFrame();
  else drawSupports();
  ectx.fillStyle = "#eef2f7";
  ectx.fillRect(OX, OY, size, size);
  ectx.fillStyle = "#1e293b";
  for (let i = 0; i < GRID; i++) {
    for (let j = 0; j < GRID; j++) {
      if (state.mask[i * GRID + j]) ectx.fillRect(OX + j * CELL, OY + i * CELL, CELL, CELL);
    }
  }
  ectx.strokeStyle = "rgba(100, 116, 139, 0.16)";
  ectx.lineWidth = 1;
  ectx.beginPath();
  for (let k = 1; k < GRID; k++) {
    ectx.moveTo(OX + k * CELL + 0.5, OY);
    ectx.lineTo(OX + k * CELL + 0.5, OY + size);
    ectx.moveTo(OX, OY + k * CELL + 0.5);
    ectx.lineTo(OX + size, OY + k * CELL + 0.5);
  }
  ectx.stroke();
  ectx.strokeStyle = "#94a3b8";
  if (periodic()) ectx.setLineDash([5, 4]); // open edges: the cell continues
  ectx.strokeRect(OX + 0.5, OY + 0.5, size - 1, size - 1);
  ectx.setLineDash([]);
  if (stroke && state.tool === "circle") {
    const r = circleRadius(stroke);
    const shifts = periodic() ? [-size, 0, size] : [0];
    ectx.save();
    ectx.beginPath();
    ectx.rect(OX, OY, size, size);
    if (periodic()) ectx.clip(); // the part beyond an edge is drawn where it wraps to
    for (const dx of shifts) {
      for (const dy of shifts) {
        ectx.beginPath();
        ectx.arc(OX + stroke.x0 * CELL + dx, OY + stroke.y0 * CELL + dy, r * CELL, 0, 2 * Math.PI);
        ectx.fillStyle = "rgba(14, 116, 144, 0.25)";
        ectx.fill();
        ectx.strokeStyle = "#0e7490";
        ectx.lineWidth = 2;
        ectx.stroke();
      }
    }
    ectx.restore();
  }
}

function pointerPixel(event) {
  const box = editor.getBoundingClientRect();
  const x = (((event.clientX - box.left) / box.width) * EDITOR_W - OX) / CELL;
  const y = (((event.clientY - box.top) / box.height) * EDITOR_H - OY) / CELL;
  return [Math.min(GRID - 1e-6, Math.max(0, x)), Math.min(GRID - 1e-6, Math.max(0, y))];
}

function circleRadius(s) {
  return Math.max(0.75, Math.hypot(s.x - s.x0, s.y - s.y0));
}

function wrapped(d) {
  // a periodic cell: the nearest image of an offset
  return periodic() ? d - GRID * Math.round(d / GRID) : d;
}

function setDisc(cx, cy, r, value) {
  for (let i = 0; i < GRID; i++) {
    for (let j = 0; j < GRID; j++) {
      if (wrapped(j + 0.5 - cx) ** 2 + wrapped(i + 0.5 - cy) ** 2 <= r * r) state.mask[i * GRID + j] = value;
    }
  }
}

function brushAt(x, y) {
  const value = state.tool === "paint" ? 1 : 0;
  const r = state.brush === 1 ? 0.5 : state.brush === 2 ? 1.05 : 1.6;
  setDisc(state.brush === 1 ? Math.floor(x) + 0.5 : x, state.brush === 1 ? Math.floor(y) + 0.5 : y, r, value);
}

editor.addEventListener("pointerdown", (event) => {
  editor.setPointerCapture(event.pointerId);
  const [x, y] = pointerPixel(event);
  stroke = { x0: x, y0: y, x, y };
  if (state.tool !== "circle") brushAt(x, y);
  drawEditor();
});

editor.addEventListener("pointermove", (event) => {
  if (!stroke) return;
  const [x, y] = pointerPixel(event);
  if (state.tool !== "circle") {
    // fill the gaps of a fast stroke
    const steps = Math.ceil(Math.hypot(x - stroke.x, y - stroke.y) / 0.5);
    for (let k = 1; k <= steps; k++) {
      brushAt(stroke.x + ((x - stroke.x) * k) / steps, stroke.y + ((y - stroke.y) * k) / steps);
    }
  }
  stroke.x = x;
  stroke.y = y;
  drawEditor();
});

function endStroke() {
  if (!stroke) return;
  if (state.tool === "circle") setDisc(stroke.x0, stroke.y0, circleRadius(stroke), 1);
  stroke = null;
  edited();
}
editor.addEventListener("pointerup", endStroke);
editor.addEventListener("pointercancel", endStroke);

document.querySelectorAll(".tool").forEach((button) => button.addEventListener("click", () => {
  state.tool = button.dataset.tool;
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b === button));
  editor.dataset.tool = state.tool;
}));
document.querySelectorAll(".size").forEach((button) => button.addEventListener("click", () => {
  state.brush = Number(button.dataset.size);
  document.querySelectorAll(".size").forEach((b) => b.classList.toggle("active", b === button));
}));

function randomFibers(seed) {
  // random sequential addition of circles, fiber fraction 0.25–0.45 (the training kind)
  let s = seed >>> 0;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296);
  const target = 0.25 + 0.2 * rand();
  const circles = [];
  state.mask.fill(0);
  for (let attempt = 0; attempt < 4000 && fraction() < target; attempt++) {
    const r = (0.05 + 0.07 * rand()) * GRID;
    const c = { x: rand() * GRID, y: rand() * GRID, r };
    if (circles.every((o) => Math.hypot(wrapped(o.x - c.x), wrapped(o.y - c.y)) > o.r + c.r + 0.4)) {
      circles.push(c);
      setDisc(c.x, c.y, c.r, 1);
    }
  }
}

function fraction() {
  let n = 0;
  for (const v of state.mask) n += v;
  return n / state.mask.length;
}

$("random").addEventListener("click", () => {
  randomFibers(Date.now());
  edited();
});
$("clear").addEventListener("click", () => {
  state.mask.fill(0);
  edited();
});
$("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  try {
    const mask = file.name.toLowerCase().endsWith(".npy")
      ? maskFromNpy(await file.arrayBuffer())
      : await maskFromImage(file);
    state.mask.set(mask);
    edited();
  } catch (error) {
    showStatus(`${file.name}: ${error.message}`, "error");
  }
});

const strainInput = $("strain");
strainInput.addEventListener("input", () => {
  $("strain-value").textContent = Number(strainInput.value).toFixed(3);
  edited(false);
});

// --- predictions --------------------------------------------------------------------------------
let timer = null;
let breakevenTimer = null;

function edited(geometry = true) {
  state.version += 1;
  if (geometry) state.geometry += 1;
  drawEditor();
  updateFraction();
  if (geometry || state.fe) markFeOutdated();
  clearTimeout(timer);
  timer = setTimeout(predict, 120);
}

function updateFraction() {
  const f = fraction();
  const range = state.card && state.card.training_data && state.card.training_data.fiber_fraction_range;
  $("fraction").textContent = f.toFixed(3);
  const outside = range && (f < range[0] || f > range[1]);
  $("fraction-range").textContent = range ? `training ${range[0].toFixed(2)}–${range[1].toFixed(2)}` : "";
  $("fraction-range").classList.toggle("bad", Boolean(outside));
  $("range-note").textContent = !range ? "" : outside
    ? "This fiber fraction is outside the training range: expect larger errors, check with FE."
    : "Inside the training range; the FE check measures this microstructure's own error.";
  $("range-note").classList.toggle("bad", Boolean(outside));
}

function showStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + (kind || "");
}

async function predict() {
  const version = state.version;
  document.body.dataset.state = "predicting";
  const started = performance.now();
  try {
    const answer = await api("/predict", predictBody());
    if (version !== state.version) return; // an edit came in meanwhile
    state.prediction = unpack(answer);
    const ms = performance.now() - started;
    showStatus(`predicted in ${ms.toFixed(0)} ms (round trip)`, "ok");
    if (periodic() && feCurrent()) {
      state.fe = { ...periodicFe(state.fe.answer), answer: state.fe.answer }; // the new load
    }
    render();
    if (periodic() && feCurrent()) renderFe();
    document.body.dataset.version = String(version); // which edit the maps show
    document.body.dataset.state = "predicted";
    clearTimeout(breakevenTimer);
    breakevenTimer = setTimeout(loadBreakeven, 1500); // the service writes its count each second
  } catch (error) {
    if (version !== state.version) return;
    showStatus(error.message, "error");
    document.body.dataset.state = "error";
  }
}

function modelField() {
  return state.model === null ? {} : { model: state.model };
}

function loadValues() {
  return [0, 1, 2].map((k) => Number($(`load-${k}`).value));
}

function predictBody() {
  if (!periodic()) {
    return { ...modelField(), fiber_mask: maskRows(), applied_strain: Number(strainInput.value), quantities: true };
  }
  return { ...modelField(), fiber_mask: maskRows(), [state.loadKind]: loadValues(), quantities: true };
}

function sharedRange(key, style) {
  const fields = [state.prediction[key]];
  if (feCurrent() && state.fe[key]) fields.push(state.fe[key]);
  return fieldRange(fields, style.symmetric);
}

function modulusField() {
  return Float32Array.from(state.mask, (v) => (v ? E_FIBER : E_MATRIX));
}

function render() {
  const p = state.prediction;
  const maps = $("maps-pred");
  maps.replaceChildren();
  drawPanel(panelFigure(maps, "E", "fiber dark"), modulusField(), STYLES.E, STYLES.E.range);
  for (const key of ["eps_xx", "eps_yy", "gamma_xy", "von_mises"]) {
    const style = STYLES[key];
    drawPanel(panelFigure(maps, style.title), p[key], style, sharedRange(key, style));
  }
  const warnings = $("warnings");
  warnings.hidden = p.warnings.length === 0;
  warnings.replaceChildren(...p.warnings.map((w) => {
    const line = document.createElement("p");
    line.textContent = "⚠ " + w;
    return line;
  }));
  $("vm-value").textContent = Math.round(p.max_von_mises).toLocaleString("en-US");
  $("plane-value").textContent = `plane ${p.plane}`;
  const estimate = $("estimate");
  estimate.hidden = p.estimate === null;
  if (p.estimate !== null) {
    const source = periodic() ? "its disagreement under the cell's symmetries" : "the model's mirror disagreement";
    estimate.innerHTML = `Error estimate for this microstructure: <b>${percent(p.estimate)}</b> ` +
      `(energy norm, from ${source})`;
  }
  if (periodic()) {
    renderStiffness();
    return;
  }
  $("ex-value").textContent = Math.round(p.E_x).toLocaleString("en-US");
  $("nu-value").textContent = p.nu_xy.toFixed(3);
  let mean = 0;
  for (const v of p.eps_xx) mean += v;
  $("mean-exx").textContent = (mean / p.eps_xx.length).toFixed(4);
  drawGauge();
}

const CONSTANTS = [
  ["E_1", "E<sub>1</sub>", "MPa", "stiffness along x"],
  ["E_2", "E<sub>2</sub>", "MPa", "stiffness along y"],
  ["G_12", "G<sub>12</sub>", "MPa", "in-plane shear"],
  ["nu_12", "ν<sub>12</sub>", "", "contraction along y under Σ̄<sub>xx</sub>"],
];

function formatConstant(key, v) {
  return key === "nu_12" ? v.toFixed(3) : Math.round(v).toLocaleString("en-US");
}

function renderStiffness() {
  // C_eff, E_1, E_2, G_12, ν_12 against their Reuss and Voigt values; the load's macro state
  const p = state.prediction;
  const fe = feCurrent() ? state.fe : null;
  const names = ["xx", "yy", "xy"];
  $("ceff-table").innerHTML = "<thead><tr><th></th>" + names.map((n) => `<th>${n}</th>`).join("") + "</tr></thead><tbody>" +
    p.C_eff.map((row, i) => `<tr><th>${names[i]}</th>` + row.map((v) => {
      const zero = Math.abs(v) < 1e-3 * Math.abs(p.C_eff[0][0]);
      return `<td class="${zero ? "zero" : ""}">${Math.round(v).toLocaleString("en-US")}</td>`;
    }).join("") + "</tr>").join("") + "</tbody>";
  const box = $("constants");
  box.replaceChildren();
  for (const [key, label, unit, note] of CONSTANTS) {
    const value = p.constants[key];
    const bounds = p.bounds[key];
    const lo = Math.min(bounds.reuss, bounds.voigt);
    const hi = Math.max(bounds.reuss, bounds.voigt);
    const feValue = fe && fe.constants ? fe.constants[key] : null;
    const div = document.createElement("div");
    div.className = "constant";
    div.dataset.constant = key;
    div.innerHTML =
      `<div class="line"><span title="${note.replace(/<[^>]+>/g, "")}"><i>${label}</i> <span class="muted small">${note}</span></span>` +
      `<span><span class="value">${formatConstant(key, value)}</span> <span class="muted small">${unit}</span>` +
      (feValue === null ? "" : ` <span class="fe-value">FE ${formatConstant(key, feValue)}</span>`) + "</span></div>" +
      (key === "nu_12" // nothing orders Poisson's ratios: the two values, no bar
        ? `<div class="gauge-labels"><span>Reuss value ${formatConstant(key, bounds.reuss)} · ` +
          `Voigt value ${formatConstant(key, bounds.voigt)} (not bounds)</span></div>`
        : `<div class="gauge"><div class="gauge-track"></div>` +
          (feValue === null ? "" : `<div class="gauge-mark fe"></div>`) + `<div class="gauge-mark"></div></div>` +
          `<div class="gauge-labels"><span>Reuss ${formatConstant(key, bounds.reuss)}</span>` +
          `<span>Voigt ${formatConstant(key, bounds.voigt)}</span></div>`);
    const place = (mark, v) => {
      const t = hi > lo ? (v - bounds.reuss) / (bounds.voigt - bounds.reuss) : 0.5;
      mark.style.left = `${(100 * Math.min(1.04, Math.max(-0.04, t))).toFixed(2)}%`;
      mark.classList.toggle("outside", key !== "nu_12" && (v < lo * (1 - 1e-6) || v > hi * (1 + 1e-6)));
    };
    if (key !== "nu_12") {
      place(div.querySelector(".gauge-mark:not(.fe)"), value);
      if (feValue !== null) place(div.querySelector(".gauge-mark.fe"), feValue);
    }
    box.append(div);
  }
  const fmt = (values, show) => "(" + values.map(show).join(", ") + ")";
  const strain = (v) => (Math.abs(v) < 1e-9 ? "0" : v.toPrecision(3));
  $("macro-strain").textContent = p.macro_strain ? fmt(p.macro_strain, strain) : "–";
  // a stress that rounds to zero shows as 0.0, not -0.0
  const stress = (v) => (Math.abs(v) < 0.05 ? "0.0" : v.toFixed(1));
  $("macro-stress").textContent = p.macro_stress ? fmt(p.macro_stress, stress) + " MPa" : "–";
}

function drawGauge() {
  const p = state.prediction;
  const place = (mark, value) => {
    const t = (value - p.reuss) / (p.voigt - p.reuss);
    mark.style.left = `${(100 * Math.min(1.04, Math.max(-0.04, t))).toFixed(2)}%`;
    mark.classList.toggle("outside", t < 0 || t > 1);
  };
  place($("gauge-mark"), p.E_x);
  $("gauge-mark").title = `surrogate E_x = ${Math.round(p.E_x).toLocaleString("en-US")} MPa`;
  const feMark = $("gauge-fe");
  const current = feCurrent();
  feMark.hidden = !current;
  if (current) {
    place(feMark, state.fe.E_x);
    feMark.title = `FE E_x = ${Math.round(state.fe.E_x).toLocaleString("en-US")} MPa`;
  }
  $("reuss").textContent = `Reuss ${Math.round(p.reuss).toLocaleString("en-US")}`;
  $("voigt").textContent = `Voigt ${Math.round(p.voigt).toLocaleString("en-US")} MPa`;
}

// --- the FE check -------------------------------------------------------------------------------
function feCurrent() {
  // whether the FE check is of what the page shows: a periodic check solved the unit cases of
  // this microstructure, which every load superposes; a uniaxial one this microstructure at ū
  if (!state.fe) return false;
  return periodic() ? state.feGeometry === state.geometry : state.feVersion === state.version;
}

function markFeOutdated() {
  if (state.fe && !feCurrent()) {
    $("fe-section").classList.add("outdated");
    $("fe-summary").textContent = "outdated: the microstructure or ū changed — check again";
  }
}

$("fe-button").addEventListener("click", async () => {
  const version = state.version;
  const geometry = state.geometry;
  const button = $("fe-button");
  button.disabled = true;
  document.body.dataset.fe = "running";
  $("fe-status").textContent = "solving with the finite-element method…";
  try {
    const body = periodic()
      ? { ...modelField(), fiber_mask: maskRows() } // FE solves the three unit cases
      : { ...modelField(), fiber_mask: maskRows(), applied_strain: Number(strainInput.value), quantities: true };
    const answer = await api("/verify", body);
    if (periodic() ? geometry !== state.geometry : version !== state.version) {
      $("fe-status").textContent = "the microstructure changed while FE was solving; check again";
      document.body.dataset.fe = "outdated";
      return;
    }
    const fe = periodic()
      ? periodicFe(answer)
      : unpack({ strain: answer.strain_fe, ...answer.quantities_fe, warnings: [] });
    state.fe = { ...fe, answer };
    state.feVersion = version;
    state.feGeometry = geometry;
    $("fe-status").textContent = "";
    render();
    renderFe();
    document.body.dataset.fe = "done";
  } catch (error) {
    const wait = error.retryAfter ? ` (try again in ${error.retryAfter} s)` : "";
    $("fe-status").textContent = error.message + wait;
    document.body.dataset.fe = "error";
  } finally {
    button.disabled = false;
  }
});

function superpose(cases, macro) {
  // the fields of a macro strain from the unit cases at ū = 0.1 (SPEC §11): Σ_j (Ē_j / ū) ε^(j)
  const out = [0, 1, 2].map(() => new Float32Array(GRID * GRID));
  for (let j = 0; j < 3; j++) {
    const w = macro[j] / 0.1;
    for (let c = 0; c < 3; c++) {
      const field = flat(cases[j][c]);
      for (let k = 0; k < field.length; k++) out[c][k] += w * field[k];
    }
  }
  return out;
}

function solve3(a, b) {
  // a [3][3] x = b by Cramer's rule (C_eff is well conditioned: the service refuses others)
  const det = (m) => m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  const d = det(a);
  return [0, 1, 2].map((col) => det(a.map((row, i) => row.map((v, j) => (j === col ? b[i] : v)))) / d);
}

function periodicFe(answer) {
  // FE's fields of the page's load: its unit cases superposed with FE's own macro strain (for a
  // macro stress, C_eff_fe⁻¹ Σ̄ where the answer carries FE's C_eff) and FE's constants
  const p = state.prediction;
  const cFe = answer.C_eff_fe ? answer.C_eff_fe[0] : null;
  const macro = cFe && state.loadKind === "macro_stress" ? solve3(cFe, p.macro_stress) : p.macro_strain;
  const [exx, eyy, gxy] = superpose(answer.strain_fe[0], macro);
  return {
    eps_xx: exx,
    eps_yy: eyy,
    gamma_xy: gxy,
    von_mises: null,
    constants: answer.engineering_constants_fe
      ? Object.fromEntries(Object.entries(answer.engineering_constants_fe).map(([k, v]) => [k, v[0]]))
      : null,
    macro_strain: macro,
  };
}

function percent(x) {
  return x === null || x === undefined ? "–" : `${(100 * x).toFixed(x < 0.1 ? 2 : 1)} %`;
}

function duration(seconds) {
  // the solve takes tens of milliseconds in a warm FE worker, seconds for large checks
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 1 ? `${(1000 * seconds).toFixed(0)} ms` : `${seconds.toFixed(2)} s`;
}

function renderFe() {
  const { answer } = state.fe;
  const p = state.prediction;
  const section = $("fe-section");
  section.hidden = false;
  section.classList.remove("outdated");
  const disc = answer.fe_discretization;
  $("fe-summary").textContent =
    `FE (${disc.mode} k = ${disc.k}, plane ${disc.plane}) solve ${duration(answer.fe_seconds)}` +
    ` (+ ${duration(answer.fe_overhead_seconds)} overhead) · ` +
    `surrogate ${(1000 * answer.surrogate_seconds).toFixed(1)} ms`;
  const feMaps = $("maps-fe");
  const errMaps = $("maps-err");
  feMaps.replaceChildren();
  errMaps.replaceChildren();
  const label = document.createElement("div");
  label.className = "row-label";
  label.textContent = "FE reference";
  feMaps.append(label);
  const labelErr = label.cloneNode();
  labelErr.textContent = "surrogate − FE";
  errMaps.append(labelErr);
  const keys = ["eps_xx", "eps_yy", "gamma_xy", "von_mises"].filter((k) => state.fe[k]);
  for (const key of keys) {
    const style = STYLES[key];
    drawPanel(panelFigure(feMaps, style.title, "FE"), state.fe[key], style, sharedRange(key, style));
    const diff = p[key].map((v, i) => v - state.fe[key][i]);
    const errStyle = key === "von_mises" ? STYLES.error_mpa : STYLES.error;
    drawPanel(panelFigure(errMaps, style.title, "error"), diff, errStyle, fieldRange([diff], true));
  }
  if (periodic()) {
    renderPeriodicMeasures(answer.measures);
    return;
  }
  const m = answer.measures;
  const ch = m.strain_relative_l2_per_channel;
  const mpa = (v) => `${Math.round(v).toLocaleString("en-US")} MPa`;
  const rows = [
    ["strain, relative L2",
      `ε<sub>xx</sub> ${percent(ch.eps_xx)} · ε<sub>yy</sub> ${percent(ch.eps_yy)} · γ<sub>xy</sub> ${percent(ch.gamma_xy)}`,
      m.strain_relative_l2, "", ""],
    ["stress, relative L2", "σ = C ε per pixel", m.stress_relative_l2, "", ""],
    ["energy norm", "weighs the stiff fibers as the structure does", m.energy_norm_error, "", ""],
    ["E<sub>x</sub>", "apparent modulus", m.E_x_error_mean, mpa(p.E_x), mpa(state.fe.E_x)],
    ["ν<sub>xy</sub>", "apparent Poisson's ratio", m.nu_xy_error_mean, p.nu_xy.toFixed(3), state.fe.nu_xy.toFixed(3)],
    ["peak von Mises", "largest pixel value", m.max_von_mises_error_mean, mpa(p.max_von_mises), mpa(state.fe.max_von_mises)],
  ];
  $("measures").innerHTML =
    "<thead><tr><th>SPEC §9 measure</th><th></th><th>error</th><th>surrogate</th><th>FE</th></tr></thead><tbody>" +
    rows.map(([name, note, error, ours, theirs]) =>
      `<tr><td>${name}</td><td class="note">${note}</td><td class="error">${percent(error)}</td>` +
      `<td>${ours}</td><td>${theirs}</td></tr>`).join("") +
    "</tbody>";
}

function renderPeriodicMeasures(m) {
  // SPEC §11 measures of the three unit cases (so of every load) and of C_eff and its constants
  const cases = m.cases || {};
  const perCase = (key) => ["xx", "yy", "xy"].map((c) => (cases[c] ? `${c} ${percent(cases[c][key])}` : "")).join(" · ");
  const rows = [
    ["strain, relative L2", perCase("strain_relative_l2"), m.strain_relative_l2],
    ["stress, relative L2", perCase("stress_relative_l2"), m.stress_relative_l2],
    ["energy norm", perCase("energy_norm_error"), m.energy_norm_error],
    ["C<sub>eff</sub>", "‖Ĉ − C‖ / ‖C‖ (Frobenius)", m.C_eff_error_mean],
    ["E<sub>1</sub>", "relative", m.E_1_error_mean],
    ["E<sub>2</sub>", "relative", m.E_2_error_mean],
    ["G<sub>12</sub>", "relative", m.G_12_error_mean],
    ["ν<sub>12</sub>", "relative", m.nu_12_error_mean],
  ].filter((row) => row[2] !== undefined);
  $("measures").innerHTML =
    "<thead><tr><th>SPEC §11 measure</th><th>per unit case</th><th>error</th></tr></thead><tbody>" +
    rows.map(([name, note, error]) =>
      `<tr><td>${name}</td><td class="note">${note}</td><td class="error">${percent(error)}</td></tr>`).join("") +
    "</tbody>";
}

// --- the model ---------------------------------------------------------------------------------
function describeCardError(card) {
  const test = card.metrics && (card.metrics.test || card.metrics.val);
  if (!test) return "The model card records no held-out error.";
  const pick = (...keys) => keys.map((k) => test[k]).find((v) => typeof v === "number");
  const parts = [];
  const overall = pick("strain_relative_l2", "overall");
  if (overall !== undefined) parts.push(`strain ${percent(overall)}`);
  const stress = pick("stress_relative_l2");
  if (stress !== undefined) parts.push(`stress ${percent(stress)}`);
  const energy = pick("energy_norm_error");
  if (energy !== undefined) parts.push(`energy norm ${percent(energy)}`);
  const ceff = pick("C_eff_error_mean");
  if (ceff !== undefined) parts.push(`C<sub>eff</sub> ${percent(ceff)}`);
  const ex = pick("E_x_error_mean");
  // E_x is the uniaxial test's (a free edge); a periodic model has C_eff and its constants
  if (ex !== undefined && !periodic()) parts.push(`E<sub>x</sub> ${percent(ex)}`);
  const fiber = pick("strain_relative_l2_fiber", "fiber");
  if (fiber !== undefined) parts.push(`fiber pixels ${percent(fiber)}`);
  const n = test.n_samples || test.n;
  return `Held-out test split${n ? ` (${n} samples)` : ""}: ` + parts.join(" · ") + ".";
}

async function loadModels() {
  // the selector: every served model (GET /models); ?model=NAME in the page's address picks one
  const select = $("model-select");
  try {
    const listing = await api("/models");
    state.models = listing.models;
    const asked = new URLSearchParams(window.location.search).get("model");
    const chosen = listing.models.find((m) => m.name === asked) ? asked : listing.default;
    select.replaceChildren(...listing.models.map((m) => {
      const option = document.createElement("option");
      option.value = m.name;
      const problem = m.mode === "periodic" ? "any in-plane load" : "uniaxial pull";
      option.textContent = `${m.name} — ${problem}`;
      option.title = `${m.mode}, plane ${m.plane}, ${m.input_sizes.map((n) => `${n}×${n}`).join(" or ")} pixels`;
      return option;
    }));
    select.value = chosen;
    selectModel(chosen);
  } catch (error) {
    select.hidden = true;
  }
}

function selectModel(name) {
  const info = state.models.find((m) => m.name === name);
  state.model = name;
  state.mode = info ? info.mode : "uniaxial";
  document.body.dataset.mode = state.mode;
  state.fe = null;
  state.feVersion = -1;
  state.feGeometry = -1;
  $("fe-section").hidden = true;
  $("fe-status").textContent = "";
}

$("model-select").addEventListener("change", async (event) => {
  selectModel(event.target.value);
  await loadModel();
  edited();
});

function setLoadKind(kind) {
  state.loadKind = kind;
  LOAD_LABELS[kind].forEach((html, k) => { $(`load-label-${k}`).innerHTML = html; });
  document.querySelectorAll("input[name=load-kind]").forEach((r) => { r.checked = r.value === kind; });
}

function setLoad(values) {
  values.forEach((v, k) => { $(`load-${k}`).value = String(v); });
}

document.querySelectorAll("input[name=load-kind]").forEach((radio) => radio.addEventListener("change", () => {
  setLoadKind(radio.value);
  setLoad(PRESETS[radio.value]["uniaxial-x"]);
  edited(false);
}));
document.querySelectorAll(".preset").forEach((button) => button.addEventListener("click", () => {
  setLoad(PRESETS[state.loadKind][button.dataset.preset]);
  edited(false);
}));
[0, 1, 2].forEach((k) => $(`load-${k}`).addEventListener("input", () => edited(false)));

async function loadModel() {
  try {
    const card = await api("/model" + (state.model === null ? "" : `?model=${encodeURIComponent(state.model)}`));
    state.card = card;
    const arch = card.architecture && card.architecture.name ? ` · ${card.architecture.name}` : "";
    $("model-name").textContent = `model ${card.name || "?"} · ${card.version || ""}${arch}`;
    $("card-error").innerHTML = describeCardError(card);
    const lc = card.training_data && card.training_data.load_case;
    if (lc && lc.plane) $("plane-value").textContent = `plane ${lc.plane}`;
  } catch (error) {
    $("model-name").textContent = "model card unavailable";
  }
  await loadBreakeven();
}

async function loadBreakeven() {
  try {
    const b = await api("/breakeven" + (state.model === null ? "" : `?model=${encodeURIComponent(state.model)}`));
    if (b.tau_text) {
      $("breakeven").textContent =
        `${b.predictions.toLocaleString("en-US")} predictions served · breakeven τ = ${b.tau_text}`;
    }
  } catch (_) {
    /* the footer just stays empty */
  }
}

setupEditorCanvas();
editor.dataset.tool = state.tool;
setLoadKind(state.loadKind);
loadModels()
  .then(loadModel)
  .then(() => {
    randomFibers(20261201); // after the model: a periodic cell's fibers wrap around
    edited();
  });
