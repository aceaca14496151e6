// kzoo serve demo: pick a model, give it an image (or a label / seed), see what it makes.
// Talks only to the TF Serving REST API (signature "serving_images") plus /kzoo/models.
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
  if (models.length) showModel();
  document.body.dataset.ready = "1";
}

init();
