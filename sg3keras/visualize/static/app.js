// sg3keras visualize: the page. Reads the controls, asks /api/render for one picture at a time
// (a newer change waits for the running request, then only the newest settings are sent) and
// shows it with its render time. No framework, no build step.
"use strict";
const $ = (id) => document.getElementById(id);
const client = Math.random().toString(36).slice(2, 10);
const STEP_Y = 100;   // the latent lattice point (x, y) is seed x + 100 y, as the official one
let nets = [], busy = false, again = false, animTimer = null, pos = {x: 0, y: 0};

function info() { return nets[Number($("net").value)] || nets[0]; }

function fmt(v, digits) { return v === null || v === undefined ? "" : Number(v).toFixed(digits); }

function setupNetwork() {
  const n = info();
  $("class-row").hidden = n.c_dim === 0;
  $("class").max = Math.max(0, n.c_dim - 1);
  $("noise-row").hidden = !n.has_noise;
  $("transform").hidden = !n.has_input_transform;
  $("equivariance").hidden = !n.has_input_transform;
  for (const id of ["cutoff", "mix-lo", "mix-hi"]) $(id).max = n.num_ws;
  $("cutoff").value = n.num_ws;
  const layer = $("layer"), old = layer.value;
  layer.innerHTML = "";
  const body = $("table").tBodies[0];
  body.innerHTML = "";
  for (const row of n.layers) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = row.name;
    layer.appendChild(opt);
    const tr = body.insertRow();
    tr.dataset.layer = row.name;
    for (const v of [row.name, row.size + "x" + row.size, row.channels, fmt(row.cutoff, 2),
                     fmt(row.stopband, 2), fmt(row.sampling_rate, 1), ""]) tr.insertCell().textContent = v;
    tr.onclick = () => { layer.value = row.name; changed(); };
  }
  layer.value = n.layers.some((r) => r.name === old) ? old : "output";
  $("stale").hidden = !n.stale;
}

function query() {
  const n = info(), q = new URLSearchParams();
  q.set("net", $("net").value);
  q.set("seed", Number(pos.x.toFixed(4)).toString());
  if (pos.y > 0) q.set("seed_y", Number(pos.y.toFixed(4)).toString());
  q.set("psi", $("psi").value);
  if (Number($("cutoff").value) < n.num_ws) q.set("cutoff", $("cutoff").value);
  if (n.c_dim > 0) q.set("class", $("class").value);
  if (n.has_noise) q.set("noise", $("noise").value);
  const lo = Number($("mix-lo").value), hi = Number($("mix-hi").value);
  if (hi > lo) { q.set("mix_seed", $("mix-seed").value); q.set("mix_lo", lo); q.set("mix_hi", hi); }
  if (n.has_input_transform) {
    for (const k of ["tx", "ty", "rot"]) if (Number($(k).value) !== 0) q.set(k, $(k).value);
    if ($("untransform").checked && $("layer").value === "output" && !$("fft").checked && !$("eq").value) q.set("untransform", "1");
  }
  q.set("layer", $("layer").value);
  q.set("sel", $("sel").value);
  q.set("ch", $("ch").value);
  if ($("sel").value === "range") q.set("ch_end", Math.max(Number($("ch").value), Number($("ch-end").value)));
  if (Number($("zoom").value) > 1) q.set("zoom", $("zoom").value);
  if ($("fft").checked) q.set("fft", "1");
  if ($("eq").value && n.has_input_transform) {
    q.set("eq", $("eq").value);
    q.set("eq_tx", $("eq-tx").value); q.set("eq_ty", $("eq-ty").value); q.set("eq_rot", $("eq-rot").value);
  }
  return q.toString();
}

function show(data, q) {
  const view = $("view");
  view.src = data.image;
  view.dataset.query = q;
  $("save").href = data.image;
  $("res").textContent = data.width + "x" + data.height + " (layer " + data.shape.join("x") + ")";
  $("time").textContent = "render " + data.ms.toFixed(0) + " ms (" + (info().precision || "float32") + ")";
  $("psnr").textContent = data.psnr === null ? "" : "PSNR " + data.psnr.toFixed(2) + " dB";
  $("command").textContent = data.command || "(no sg3keras generate equivalent: between seeds, style mixing, cutoff or untransform)";
  for (const tr of $("table").tBodies[0].rows) {
    const ms = data.times[tr.dataset.layer];
    tr.cells[6].textContent = ms === undefined ? "" : ms.toFixed(1);
    tr.classList.toggle("picked", tr.dataset.layer === $("layer").value);
  }
  $("error").textContent = "";
}

async function render() {
  if (busy) { again = true; return; }
  busy = true; again = false;
  const q = query();
  try {
    const r = await fetch("/api/render?" + q + "&client=" + client);
    const data = await r.json();
    if (r.ok) show(data, q);
    else if (r.status !== 409) $("error").textContent = data.error;
  } catch (e) {
    $("error").textContent = "server unreachable: " + e;
  }
  busy = false;
  if (again) render();
}

function changed() {
  for (const id of ["psi", "tx", "ty", "rot"]) $(id + "-out").textContent = $(id).value;
  const n = info();
  $("cutoff-out").textContent = Number($("cutoff").value) >= n.num_ws ? "all" : $("cutoff").value;
  render();
}

// The latent position (x, y): the server blends the w's of the four lattice seeds around it
// bilinearly. The seed field shows the nearest seed; typing a seed moves to (seed, 0).
function setPos(x, y) {
  pos = {x: Math.max(0, x), y: Math.max(0, y)};
  $("seed-shown").textContent = "x " + pos.x.toFixed(2) + ", y " + pos.y.toFixed(2);
  $("seed").value = Math.round(pos.x) + STEP_Y * Math.round(pos.y);
  changed();
}

function dragPad() {   // 100 px per seed, in x and in y
  const pad = $("seed-pad");
  let start = null;
  pad.addEventListener("pointerdown", (e) => { start = {cx: e.clientX, cy: e.clientY, x: pos.x, y: pos.y}; pad.setPointerCapture(e.pointerId); });
  pad.addEventListener("pointermove", (e) => { if (start) setPos(start.x + (e.clientX - start.cx) / 100, start.y + (e.clientY - start.cy) / 100); });
  for (const end of ["pointerup", "pointercancel"]) pad.addEventListener(end, () => { start = null; });
}

async function loadNetworks(keep) {
  const r = await fetch("/api/networks");
  nets = await r.json();
  if (!keep) {
    $("net").innerHTML = "";
    nets.forEach((n, i) => { const o = document.createElement("option"); o.value = i; o.textContent = n.ref; $("net").appendChild(o); });
  }
  setupNetwork();
}

async function reload() {
  const r = await fetch("/api/reload?net=" + $("net").value);
  const data = await r.json();
  if (!r.ok) { $("error").textContent = data.error; return; }
  await loadNetworks(true);
  changed();
}

async function poll() {
  try {
    const r = await fetch("/api/networks");
    const fresh = await r.json();
    const n = fresh[Number($("net").value)];
    $("stale").hidden = !n.stale;
    if (n.stale && $("autoreload").checked) await reload();
  } catch (e) { /* the server may be restarting */ }
}

function main() {
  for (const el of document.querySelectorAll("#controls input, #controls select")) {
    if (el.id === "autoreload" || el.id === "animate") continue;
    el.addEventListener("input", () => { if (el.id === "seed") { setPos(Number(el.value), 0); } else { changed(); } });
  }
  $("net").addEventListener("change", () => { setupNetwork(); changed(); });
  $("random").onclick = () => setPos(Math.floor(Math.random() * 100000), 0);
  $("reset-transform").onclick = () => { for (const k of ["tx", "ty", "rot"]) $(k).value = 0; changed(); };
  $("reload").onclick = reload;
  $("animate").onchange = () => {
    clearInterval(animTimer);
    if ($("animate").checked) animTimer = setInterval(() => { if (!busy) setPos(pos.x + 0.05, pos.y); }, 50);
  };
  dragPad();
  setInterval(poll, 5000);
  loadNetworks(false).then(changed);
}
main();
