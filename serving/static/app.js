// The page: a 32×32 microstructure editor, the surrogate's answer (POST /predict with the SPEC §9
// quantities) and the finite-element check (POST /verify). Uses fields.js for the drawing.
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
};

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
  return {
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

function drawEditor() {
  const size = GRID * CELL;
  ectx.clearRect(0, 0, EDITOR_W, EDITOR_H);
  drawSupports();
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
  ectx.strokeRect(OX + 0.5, OY + 0.5, size - 1, size - 1);
  if (stroke && state.tool === "circle") {
    const r = circleRadius(stroke);
    ectx.beginPath();
    ectx.arc(OX + stroke.x0 * CELL, OY + stroke.y0 * CELL, r * CELL, 0, 2 * Math.PI);
    ectx.fillStyle = "rgba(14, 116, 144, 0.25)";
    ectx.fill();
    ectx.strokeStyle = "#0e7490";
    ectx.lineWidth = 2;
    ectx.stroke();
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

function setDisc(cx, cy, r, value) {
  for (let i = 0; i < GRID; i++) {
    for (let j = 0; j < GRID; j++) {
      if ((j + 0.5 - cx) ** 2 + (i + 0.5 - cy) ** 2 <= r * r) state.mask[i * GRID + j] = value;
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
    if (circles.every((o) => Math.hypot(o.x - c.x, o.y - c.y) > o.r + c.r + 0.4)) {
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
    const answer = await api("/predict", {
      fiber_mask: maskRows(),
      applied_strain: Number(strainInput.value),
      quantities: true,
    });
    if (version !== state.version) return; // an edit came in meanwhile
    state.prediction = unpack(answer);
    const ms = performance.now() - started;
    showStatus(`predicted in ${ms.toFixed(0)} ms (round trip)`, "ok");
    render();
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

function sharedRange(key, style) {
  const fields = [state.prediction[key]];
  if (state.fe && state.feVersion === state.version) fields.push(state.fe[key]);
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
  $("ex-value").textContent = Math.round(p.E_x).toLocaleString("en-US");
  $("nu-value").textContent = p.nu_xy.toFixed(3);
  $("vm-value").textContent = Math.round(p.max_von_mises).toLocaleString("en-US");
  let mean = 0;
  for (const v of p.eps_xx) mean += v;
  $("mean-exx").textContent = (mean / p.eps_xx.length).toFixed(4);
  $("plane-value").textContent = `plane ${p.plane}`;
  const estimate = $("estimate");
  estimate.hidden = p.estimate === null;
  if (p.estimate !== null) {
    estimate.innerHTML = `Error estimate for this microstructure: <b>${percent(p.estimate)}</b> ` +
      "(energy norm, from the model's mirror disagreement)";
  }
  drawGauge();
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
  const current = state.fe && state.feVersion === state.version;
  feMark.hidden = !current;
  if (current) {
    place(feMark, state.fe.E_x);
    feMark.title = `FE E_x = ${Math.round(state.fe.E_x).toLocaleString("en-US")} MPa`;
  }
  $("reuss").textContent = `Reuss ${Math.round(p.reuss).toLocaleString("en-US")}`;
  $("voigt").textContent = `Voigt ${Math.round(p.voigt).toLocaleString("en-US")} MPa`;
}

// --- the FE check -------------------------------------------------------------------------------
function markFeOutdated() {
  if (state.fe && state.feVersion !== state.version) {
    $("fe-section").classList.add("outdated");
    $("fe-summary").textContent = "outdated: the microstructure or ū changed — check again";
  }
}

$("fe-button").addEventListener("click", async () => {
  const version = state.version;
  const button = $("fe-button");
  button.disabled = true;
  document.body.dataset.fe = "running";
  $("fe-status").textContent = "solving with the finite-element method…";
  try {
    const answer = await api("/verify", {
      fiber_mask: maskRows(),
      applied_strain: Number(strainInput.value),
      quantities: true,
    });
    if (version !== state.version) {
      $("fe-status").textContent = "the microstructure changed while FE was solving; check again";
      document.body.dataset.fe = "outdated";
      return;
    }
    const fe = unpack({
      strain: answer.strain_fe,
      ...answer.quantities_fe,
      warnings: [],
    });
    state.fe = { ...fe, answer };
    state.feVersion = version;
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

function percent(x) {
  return x === null || x === undefined ? "–" : `${(100 * x).toFixed(x < 0.1 ? 2 : 1)} %`;
}

function renderFe() {
  const { answer } = state.fe;
  const p = state.prediction;
  const section = $("fe-section");
  section.hidden = false;
  section.classList.remove("outdated");
  const disc = answer.fe_discretization;
  $("fe-summary").textContent =
    `FE (${disc.mode} k = ${disc.k}, plane ${disc.plane}) ${answer.fe_seconds.toFixed(2)} s · ` +
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
  for (const key of ["eps_xx", "eps_yy", "gamma_xy", "von_mises"]) {
    const style = STYLES[key];
    drawPanel(panelFigure(feMaps, style.title, "FE"), state.fe[key], style, sharedRange(key, style));
    const diff = p[key].map((v, i) => v - state.fe[key][i]);
    const errStyle = key === "von_mises" ? STYLES.error_mpa : STYLES.error;
    drawPanel(panelFigure(errMaps, style.title, "error"), diff, errStyle, fieldRange([diff], true));
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
  const ex = pick("E_x_error_mean");
  if (ex !== undefined) parts.push(`E<sub>x</sub> ${percent(ex)}`);
  const fiber = pick("strain_relative_l2_fiber", "fiber");
  if (fiber !== undefined) parts.push(`fiber pixels ${percent(fiber)}`);
  const n = test.n_samples || test.n;
  return `Held-out test split${n ? ` (${n} samples)` : ""}: ` + parts.join(" · ") + ".";
}

async function loadModel() {
  try {
    const card = await api("/model");
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
    const b = await api("/breakeven");
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
randomFibers(20261201);
drawEditor();
loadModel().then(() => edited());
