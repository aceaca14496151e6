// kzoo serve demo: pick a model, give it an image (or a label / seed), see what it makes.
// Talks only to the TF Serving REST API (signature "serving_images") plus /kzoo/models.
// A diffusion sampler endpoint (`<model>_sampler`, kzoo/export/sampler.py) gets its own view:
// steps, eta, seed and a number of images, sampled with DDIM in ONE predict request.
// A StyleGAN2 synthesis endpoint served beside its mapping endpoint (`info.style_mixing`, added by
// /kzoo/models from kzoo.latent.style_mixing_info) gets the style-mixing view: ONE mapping request
// for z_A and z_B, the mixed ws built here, ONE synthesis request for the whole grid.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];

function mulberry32(seed) {
  return function () {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normals(n, seed) {  // Box-Muller on a seeded generator: latents ~ N(0, I)
  const rand = mulberry32(seed), out = [];
  while (out.length < n) {
    const u = 1 - rand(), v = rand(), r = Math.sqrt(-2 * Math.log(u));
    out.push(r * Math.cos(2 * Math.PI * v), r * Math.sin(2 * Math.PI * v));
  }
  return out.slice(0, n);
}

function current() { return models.find((m) => m.name === $("model").value); }

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function showModel() {
  const m = current(), info = m.info;
  const sampler = Boolean(info.sampler), mixing = Boolean(info.style_mixing);
  $("sampler-view").hidden = !sampler;
  $("sample").hidden = !sampler;
  $("mix-view").hidden = !mixing;
  $("mix").hidden = !mixing;
  $("run").hidden = sampler || mixing;
  const to = info.sampler_endpoint && models.find((x) => x.name === info.sampler_endpoint);
  $("to-sampler").hidden = !to;
  if (to) $("to-sampler").textContent = `Sample with ${to.name}`;
  const toMix = mixTarget(m);
  $("to-mix").hidden = !toMix;
  if (toMix) $("to-mix").textContent = `Style mixing with ${toMix.name}`;
  setStatus("");
  if (sampler) {
    showSampler(m);
    return;
  }
  if (mixing) {
    showMix(m);
    return;
  }
  const images = info.inputs.filter((e) => e.role === "image");
  const label = info.inputs.find((e) => e.role === "label");
  const latent = info.inputs.find((e) => e.role === "latent");
  $("about").textContent = `${info.model_class || ""} · version ${m.versions[0]} · ` +
    info.inputs.map((e) => `${e.name} (${e.role})`).join(", ") + " → " +
    info.outputs.map((e) => `${e.name} (${e.role})`).join(", ");
  $("image-inputs").innerHTML = "";
  for (const e of images) {
    const row = document.createElement("label");
    row.textContent = `${e.name} `;
    const input = document.createElement("input");
    input.type = "file"; input.accept = "image/*"; input.dataset.input = e.name; input.className = "image-file";
    input.addEventListener("change", updateRunnable);
    row.appendChild(input);
    $("image-inputs").appendChild(row);
  }
  $("label-row").hidden = !label;
  if (label) {
    $("label").innerHTML = "";
    for (let i = 0; i < (label.num_classes || 1); i++) $("label").add(new Option(String(i), String(i)));
  }
  $("seed-row").hidden = !latent;
  $("endpoint").textContent = `POST /v1/models/${m.name}:predict`;
  $("input-view").innerHTML = "";
  $("outputs").innerHTML = "";
  updateRunnable();
}

// --- the sampler view ------------------------------------------------------------
function showSampler(m) {
  const info = m.info, T = info.diffusion.num_timesteps;
  const steps = $("steps");
  steps.max = String(T);
  steps.value = String(Math.min(20, T));
  $("steps-value").textContent = steps.value;
  $("seed-row").hidden = false;
  $("label-row").hidden = true;
  $("image-inputs").innerHTML = "";
  $("about").textContent = `${info.model_class || ""} sampler · version ${m.versions[0]} · T = ${T} · ` +
    `images ${info.outputs[0].shape.slice(1).join("×")} · DDIM (Song et al., 2021), η = 0 deterministic`;
  $("endpoint").textContent = `POST /v1/models/${m.name}:predict (one request: the whole DDIM loop runs in the server)`;
  $("input-view").innerHTML = "";
  $("outputs").innerHTML = "";
}

function nest(flat, shape) {  // a flat array as nested lists of `shape` (row-major)
  if (shape.length === 1) return flat;
  const step = flat.length / shape[0], out = [];
  for (let i = 0; i < shape[0]; i++) out.push(nest(flat.slice(i * step, (i + 1) * step), shape.slice(1)));
  return out;
}

function samplerRequest(info, n, steps, eta, seed) {
  // The graph holds no randomness: x_T and the per-step draws come from the seed, in
  // kzoo.diffusion.sample's order (x_T for the batch, then one batch-sized draw per step).
  // DDIM with eta = 0 needs none (K = 0), but JSON cannot spell an empty axis that TF Serving
  // reads back (its parser stops at the first empty list): one draw of zeros is sent instead.
  const shape = info.inputs.find((e) => e.name === "noise").shape.slice(1);
  const size = shape.reduce((a, b) => a * b, 1);
  const K = eta > 0 ? steps : 0;
  const z = normals(n * size * (1 + K), seed).map((v) => Number(v.toPrecision(7)));
  const draw = (k, b) => nest(z.slice((k * n + b) * size, (k * n + b + 1) * size), shape);  // draw k of image b
  const noise = [], stepNoise = [];
  for (let b = 0; b < n; b++) {
    noise.push(draw(0, b));
    const draws = [];
    for (let k = 1; k <= K; k++) draws.push(draw(k, b));
    stepNoise.push(K ? draws : [nest(new Array(size).fill(0), shape)]);
  }
  return {
    signature_name: "serving_images",
    inputs: {
      noise, step_noise: stepNoise,
      steps: new Array(n).fill(steps), eta: new Array(n).fill(eta),
      sampler: new Array(n).fill(info.sampler.samplers.ddim),
    },
  };
}

async function sample() {
  const m = current(), info = m.info;
  const steps = Number($("steps").value), eta = Number($("eta").value);
  const n = Number($("count").value), seed = Number($("seed").value);
  $("input-view").textContent = `DDIM, ${steps} steps, η = ${eta}, seed ${seed}, ${n} image${n > 1 ? "s" : ""}`;
  $("outputs").innerHTML = "";
  if (!(eta >= 0 && eta <= 1) || !(n >= 1 && n <= 16) || !Number.isInteger(n)) {
    setStatus("η must be in [0, 1] and the number of images in 1..16", true);
    return;
  }
  setStatus("sampling…");
  const started = performance.now();
  try {
    const response = await fetch(`/v1/models/${encodeURIComponent(m.name)}:predict`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(samplerRequest(info, n, steps, eta, seed)),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    const grid = document.createElement("div");
    grid.id = "samples";
    for (const value of body.outputs) grid.appendChild(pictureOf(value.b64, "output sample"));
    $("outputs").appendChild(grid);
    setStatus(`done in ${Math.round(performance.now() - started)} ms (one request, ${steps} steps)`);
  } catch (err) {
    setStatus(String(err.message || err), true);
  }
}

// --- the style-mixing view ------------------------------------------------------
function mixTarget(m) {  // the synthesis endpoint with a mixing view in m's export group, if any
  const group = m.info.group;
  if (!group || m.info.style_mixing) return null;
  return models.find((x) => x.info.style_mixing && x.info.group && x.info.group.id === group.id) || null;
}

function showMix(m) {
  const info = m.info, mix = info.style_mixing;
  $("crossover").innerHTML = "";
  for (const [name, range] of Object.entries(mix.crossovers)) {
    const option = new Option(range ? `${name} (${range[0]}:${range[1]})` : `${name} (none at this size)`, name);
    option.disabled = !range;
    $("crossover").add(option);
  }
  $("crossover").add(new Option("START:STOP", "range"));
  $("crossover").value = Object.keys(mix.crossovers).find((k) => mix.crossovers[k]) || "range";
  $("range-row").hidden = $("crossover").value !== "range";
  $("seed-row").hidden = true;
  $("label-row").hidden = true;
  $("image-inputs").innerHTML = "";
  const image = info.outputs.find((e) => e.role === "image");
  $("about").textContent = `${info.model_class || ""} synthesis · version ${m.versions[0]} · ${mix.num_ws} ws · ` +
    `images ${image.shape.slice(1).join("×")} · rows: seed A, columns: seed B, cell = A's ws with B's in the ` +
    "crossover range (Karras et al., 2019, Sec. 3.1); noise inputs are zeros";
  $("endpoint").textContent = `POST /v1/models/${mix.mapping}:predict (z_A and z_B), then ` +
    `POST /v1/models/${m.name}:predict (the grid's ws)`;
  $("input-view").innerHTML = "";
  $("outputs").innerHTML = "";
}

function mixSettings(mix) {  // the view's settings, or a string saying what is wrong
  const psi = $("psi-value").value.trim() === "" ? NaN : Number($("psi-value").value);
  const rows = Number($("rows").value), cols = Number($("cols").value);
  const seedA = Number($("seed-a").value), seedB = Number($("seed-b").value);
  if (!(psi >= 0 && psi <= 1)) return "truncation ψ must be in [0, 1]";
  for (const [name, v] of [["rows", rows], ["columns", cols]]) {
    if (!Number.isInteger(v) || v < 1 || v > 8) return `${name} must be an integer in 1..8`;
  }
  for (const [name, v] of [["seed A", seedA], ["seed B", seedB]]) {
    if (!Number.isInteger(v) || v < 0) return `${name} must be a non-negative integer`;
  }
  let range = null;
  if ($("crossover").value === "range") {
    const match = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec($("crossover-range").value);
    range = match && [Number(match[1]), Number(match[2])];
    if (!range || !(range[0] < range[1] && range[1] <= mix.num_ws)) {
      return `crossover START:STOP needs 0 <= START < STOP <= ${mix.num_ws}`;
    }
  } else {
    range = mix.crossovers[$("crossover").value];
  }
  return { psi, rows, cols, seedA, seedB, range };
}

async function predict(name, body) {
  const response = await fetch(`/v1/models/${encodeURIComponent(name)}:predict`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const out = await response.json();
  if (!response.ok) throw new Error(`${name}: ${out.error || response.statusText}`);
  return out;
}

async function mix() {
  const m = current(), info = m.info, spec = info.style_mixing;
  $("outputs").innerHTML = "";
  const s = mixSettings(spec);
  if (typeof s === "string") {
    setStatus(s, true);
    return;
  }
  const { psi, rows, cols, seedA, seedB, range } = s;
  $("input-view").textContent = `seed A ${seedA} (${rows} rows), seed B ${seedB} (${cols} columns), ` +
    `styles ${range[0]}:${range[1]} from B, ψ = ${psi}`;
  const zDim = models.find((x) => x.name === spec.mapping).info.inputs[0].shape[1];
  const latents = (n, seed) => nest(normals(n * zDim, seed), [n, zDim]);
  setStatus("mixing…");
  const started = performance.now();
  try {
    const w = (await predict(spec.mapping, { inputs: { z: [...latents(rows, seedA), ...latents(cols, seedB)] } }))
      .outputs;
    const wA = w.slice(0, rows), wB = w.slice(rows);
    const repeat = (v) => new Array(spec.num_ws).fill(v);
    const ws = [...wB.map(repeat), ...wA.map(repeat)];  // the sources: B's (top row), A's (left column)
    for (const a of wA) {
      for (const b of wB) ws.push(repeat(a).map((v, k) => (k >= range[0] && k < range[1] ? b : v)));
    }
    const n = ws.length, inputs = { ws, truncation_psi: new Array(n).fill([psi]) };
    for (const e of info.inputs.filter((x) => x.name.startsWith("noise_"))) {
      const zeros = nest(new Array(e.shape.slice(1).reduce((p, q) => p * q, 1)).fill(0), e.shape.slice(1));
      inputs[e.name] = new Array(n).fill(zeros);  // zeros: the endpoint's noise inputs carry no randomness
    }
    const images = (await predict(m.name, { signature_name: "serving_images", inputs })).outputs;
    const grid = document.createElement("div");
    grid.id = "mix-grid";
    grid.style.gridTemplateColumns = `repeat(${cols + 1}, auto)`;
    grid.appendChild(document.createElement("span"));
    images.slice(0, cols).forEach((v) => grid.appendChild(pictureOf(v.b64, "mix source b")));
    for (let i = 0; i < rows; i++) {
      grid.appendChild(pictureOf(images[cols + i].b64, "mix source a"));
      for (let j = 0; j < cols; j++) grid.appendChild(pictureOf(images[cols + rows + i * cols + j].b64, "mix cell"));
    }
    $("outputs").appendChild(grid);
    setStatus(`done in ${Math.round(performance.now() - started)} ms (one mapping + one synthesis request)`);
  } catch (err) {
    setStatus(String(err.message || err), true);
  }
}

function updateRunnable() {
  const m = current();
  const ok = m && m.signatures.includes("serving_images") &&
    [...document.querySelectorAll(".image-file")].every((f) => f.files.length === 1);
  $("run").disabled = !ok;
  if (m && !m.signatures.includes("serving_images")) setStatus("this model has no image outputs to show", true);
}

function targetSize(entry, w, h, dynamic) {
  const [H, W] = [entry.shape[1], entry.shape[2]];
  if (H && W) return [W, H];
  const mult = (dynamic.spatial_size && dynamic.spatial_size.multiple) || 1;
  const scale = Math.min(1, 256 / Math.max(w, h));
  const fit = (x) => Math.max(mult, Math.round((x * scale) / mult) * mult);
  return [fit(w), fit(h)];
}

async function encodeImage(file, entry, dynamic) {
  const bitmap = await createImageBitmap(file);
  const [w, h] = targetSize(entry, bitmap.width, bitmap.height, dynamic);
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h);
  const url = canvas.toDataURL("image/png");
  return { url, b64: url.slice(url.indexOf(",") + 1) };
}

function pictureOf(b64, cls) {
  const img = document.createElement("img");
  img.src = "data:image/png;base64," + b64;
  img.className = cls;
  return img;
}

async function run() {
  const m = current(), info = m.info;
  const instance = {};
  $("input-view").innerHTML = "";
  $("outputs").innerHTML = "";
  setStatus("running…");
  const started = performance.now();
  try {
    for (const file of document.querySelectorAll(".image-file")) {
      const entry = info.inputs.find((e) => e.name === file.dataset.input);
      const { url, b64 } = await encodeImage(file.files[0], entry, info.dynamic || {});
      instance[`${entry.name}_bytes`] = { b64 };
      $("input-view").appendChild(pictureOf(url.slice(url.indexOf(",") + 1), "input"));
    }
    for (const e of info.inputs) {
      if (e.role === "label") instance[e.name] = Number($("label").value);
      if (e.role === "latent") instance[e.name] = normals(e.shape[1], Number($("seed").value));
    }
    if (!Object.keys(instance).some((k) => k.endsWith("_bytes"))) {
      const parts = info.inputs.filter((e) => e.role !== "image")
        .map((e) => `${e.name} = ${e.role === "label" ? $("label").value : "seed " + $("seed").value}`);
      $("input-view").textContent = parts.join(", ");
    }
    const response = await fetch(`/v1/models/${encodeURIComponent(m.name)}:predict`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ signature_name: "serving_images", instances: [instance] }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    let prediction = body.predictions[0];
    const names = info.outputs.map((e) => (e.role === "image" ? `${e.name}_png_bytes` : e.name));
    if (names.length === 1) prediction = { [names[0]]: prediction };
    for (const name of names) {
      const value = prediction[name];
      if (value && value.b64) {
        $("outputs").appendChild(pictureOf(value.b64, "output"));
      } else {
        const pre = document.createElement("pre");
        pre.textContent = `${name}: ${JSON.stringify(value).slice(0, 2000)}`;
        $("outputs").appendChild(pre);
      }
    }
    setStatus(`done in ${Math.round(performance.now() - started)} ms`);
  } catch (err) {
    setStatus(String(err.message || err), true);
  }
}

async function init() {
  $("server").textContent = location.host;
  try {
    const response = await fetch("/kzoo/models");
    models = (await response.json()).models;
  } catch (err) {
    setStatus(`cannot list models: ${err}`, true);
    return;
  }
  for (const m of models) $("model").add(new Option(m.name, m.name));
  $("model").addEventListener("change", showModel);
  $("run").addEventListener("click", run);
  $("sample").addEventListener("click", sample);
  $("steps").addEventListener("input", () => { $("steps-value").textContent = $("steps").value; });
  $("mix").addEventListener("click", mix);
  $("psi").addEventListener("input", () => { $("psi-value").value = $("psi").value; });
  $("psi-value").addEventListener("input", () => { $("psi").value = $("psi-value").value; });
  $("crossover").addEventListener("change", () => { $("range-row").hidden = $("crossover").value !== "range"; });
  $("to-mix").addEventListener("click", () => {
    $("model").value = mixTarget(current()).name;
    showModel();
  });
  $("to-sampler").addEventListener("click", () => {
    $("model").value = current().info.sampler_endpoint;
    showModel();
  });
  if (models.length) showModel();
  document.body.dataset.ready = "1";
}

init();
