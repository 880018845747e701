// The labsky cockpit page: one ES module, no build step. State comes from the
// server's WebSocket (a snapshot, then changes); actions are POSTs that carry
// the X-Labsky-Action header. uPlot (MIT, vendored) draws the plots; the
// camera view draws frames into a canvas itself.
import uPlot from "./vendor/uPlot.esm.js";

const state = {
  profile: "", status: {}, queue: { items: [], running_item: {} }, history: [],
  devices: { devices: [], failed: [], groups: {} }, values: {}, errors: {}, focus: [],
  plans: [], scan: null, log: [], health: {},
};
const cockpit = { state, frames: 0, cameraFps: 0, lastFrame: null, valueUpdates: 0 };
window.cockpit = cockpit;

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function toast(text, bad = false) {
  const note = el("div", { class: bad ? "bad" : "", text });
  $("#toast").append(note);
  setTimeout(() => note.remove(), bad ? 8000 : 3000);
}

async function action(path, body = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Labsky-Action": "1" },
    body: JSON.stringify(body),
  });
  const reply = await response.json().catch(() => ({}));
  if (response.status === 401) showLogin();
  if (!response.ok) throw new Error(reply.detail || reply.error || response.statusText);
  return reply;
}

async function get(path) {
  const response = await fetch(path);
  if (response.status === 401) { showLogin(); throw new Error("API key needed"); }
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(reply.detail || reply.error || response.statusText);
  return reply;
}

function fmt(value, precision) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value) && precision === undefined) return String(value);
    const digits = precision ?? 4;
    const abs = Math.abs(value);
    return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? value.toExponential(3) : value.toFixed(digits);
  }
  if (typeof value === "object") return value.shape ? `array ${value.shape.join("×")}` : JSON.stringify(value);
  return String(value);
}

// ---------------------------------------------------------------- connection

let socket = null;
function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => setConnection("live", "idle");
  socket.onclose = () => {
    setConnection("disconnected", "bad");
    fetch("/api/state").then((r) => { if (r.status === 401) showLogin(); });
    setTimeout(connect, 1000);
  };
  socket.onmessage = (event) => {
    if (typeof event.data === "string") handle(JSON.parse(event.data));
    else cameraFrame(event.data);
  };
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function setConnection(text, kind) {
  const pill = $("#connection");
  pill.textContent = text;
  pill.className = `pill ${kind}`;
}

function handle(message) {
  switch (message.type) {
    case "snapshot":
      Object.assign(state, message);
      $("#profile").textContent = message.profile;
      renderStatus(); renderQueue(); renderHistory(); renderDevices(); renderPlans();
      resetScan(message.scan); renderLog(); renderAlarms(); renderCameras();
      break;
    case "status": state.status = message.status; renderStatus(); renderAlarms(); break;
    case "queue": state.queue = message.queue; renderQueue(); renderStatus(); break;
    case "history": state.history = message.history; renderHistory(); break;
    case "devices":
      Object.assign(state, { devices: message.devices, values: message.values, errors: message.errors, focus: message.focus });
      renderDevices(); renderAlarms(); renderCameras(); break;
    case "values": updateValues(message.values); break;
    case "errors": state.errors = message.errors; renderAlarms(); renderDeviceErrors(); break;
    case "focus": state.focus = message.focus; renderFocus(); break;
    case "scan_start": resetScan({ start: message.start, descriptors: [], rows: [], stop: null }); break;
    case "descriptor": scanDescriptor(message.descriptor); break;
    case "rows": scanRows(message.rows); break;
    case "peak": if (scan) { scan.peak = message.peak; showPeak(); } break;
    case "scan_stop": scanStop(message.stop); break;
    case "log": state.log.push(message.entry); appendLog(message.entry, true); break;
    case "health": state.health = message.health; renderAlarms(); break;
  }
}

// ---------------------------------------------------------------- header

function renderStatus() {
  const status = state.status;
  const re = status.re_state || "unknown";
  const pill = $("#re-state");
  pill.textContent = `RE: ${re}`;
  pill.className = `pill ${re === "idle" ? "idle" : re === "running" ? "running" : re === "paused" ? "paused" : "bad"}`;
  const manager = status.reachable === false ? "unreachable" : (status.manager_state || "…");
  $("#manager-state").textContent = `queue: ${manager}${status.queue_stop_pending ? " (stop pending)" : ""}`;
  $("#manager-state").className = `pill ${status.reachable === false ? "bad" : ""}`;
  const running = state.queue.running_item || {};
  $("#running-plan").textContent = running.name ? `running ${running.name}` : "";
  $("#btn-pause").disabled = re !== "running";
  for (const id of ["#btn-resume", "#btn-stop-run", "#btn-abort"]) $(id).disabled = re !== "paused";
  $("#btn-halt").disabled = !(re === "running" || re === "paused");
}

for (const [id, path] of [["#btn-pause", "/api/re/pause"], ["#btn-resume", "/api/re/resume"],
  ["#btn-stop-run", "/api/re/stop"], ["#btn-abort", "/api/re/abort"], ["#btn-halt", "/api/re/halt"]]) {
  $(id).addEventListener("click", () => action(path).catch((e) => toast(e.message, true)));
}

for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => showView(button.dataset.view));
}

function showView(name) {
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.view === name);
  for (const view of document.querySelectorAll(".view")) view.classList.toggle("active", view.id === `view-${name}`);
  cameraVisible(name === "camera");
  if (name === "plots") for (const plot of plots) plot.resize();
  if (name === "runs" && !runsSearched) searchRuns();
}

// ---------------------------------------------------------------- devices

let valueCells = new Map(); // key -> [{node, precision}]

function addCell(key, node, precision) {
  if (!valueCells.has(key)) valueCells.set(key, []);
  valueCells.get(key).push({ node, precision });
  const value = state.values[key];
  node.textContent = value ? fmt(value[0], precision) : "—";
}

function renderDevices() {
  const view = $("#view-devices");
  view.replaceChildren();
  valueCells = new Map();
  const { devices, failed } = state.devices;
  const sections = new Map();
  const place = (group, card) => {
    if (!sections.has(group)) sections.set(group, []);
    sections.get(group).push(card);
  };
  for (const device of devices) place(device.groups[0] || "other", deviceCard(device));
  for (const device of failed) place(device.groups[0] || "other", failedCard(device));
  const ordered = [...sections].sort(([a], [b]) => (a === "other") - (b === "other"));
  for (const [group, cards] of ordered) {
    view.append(el("div", { class: "group", "data-testid": `group-${group}` },
      el("h2", { text: group }), el("div", { class: "cards" }, cards)));
  }
  if (!devices.length && !failed.length) view.append(el("p", { text: "No devices (is the daemon's device API up?)" }));
  renderDeviceErrors();
}

function deviceCard(device) {
  const message = el("div", { class: "message", "data-testid": `message-${device.name}` });
  const card = el("div", { class: "card", "data-testid": `device-${device.name}` },
    el("h3", {}, device.name, " ", el("span", { class: "kind", text: `${device.kind}${device.mocked ? " (mock)" : ""}` })),
    device.description ? el("div", { class: "desc", text: device.description }) : null);
  for (const movable of device.movables) card.append(moveRow(movable, message));
  const moved = new Set(device.movables.map((m) => m.key));
  const readings = device.signals.filter((s) => s.kind === "read" && !moved.has(s.key));
  if (readings.length) card.append(signalTable(readings, message));
  const config = device.signals.filter((s) => s.kind === "config");
  if (config.length) {
    card.append(el("details", {}, el("summary", { text: `configuration (${config.length})` }), signalTable(config, message)));
  }
  card.append(el("div", { class: "error", "data-testid": `error-${device.name}` }), message);
  return card;
}

function moveRow(movable, message) {
  const value = el("span", { class: "value", "data-testid": `value-${movable.name}` });
  addCell(movable.key, value, movable.precision);
  const input = el("input", { "data-testid": `target-${movable.name}`, placeholder: "target", "aria-label": `target of ${movable.name}` });
  const row = el("div", { class: "move", "data-testid": `movable-${movable.name}` });
  const units = movable.units ? ` ${movable.units}` : "";
  const move = async () => {
    input.classList.remove("bad");
    let target = input.value.trim();
    if (movable.dtype === "number" || movable.dtype === "integer") {
      const number = Number(target);
      if (target === "" || !Number.isFinite(number)) return refuse(`${movable.name}: ${JSON.stringify(target)} is not a number`);
      if (movable.limits && (number < movable.limits[0] || number > movable.limits[1])) {
        return refuse(`${movable.name}: ${number}${units} is outside the soft limits [${movable.limits[0]}, ${movable.limits[1]}]${units}`);
      }
      target = number;
    }
    row.classList.add("busy");
    message.className = "message"; message.textContent = `moving ${movable.name} to ${target}${units} …`;
    try {
      await action("/api/devices/set", { name: movable.name, value: target });
      message.className = "message ok"; message.textContent = `${movable.name} at ${target}${units}`;
    } catch (error) { refuse(error.message); } finally { row.classList.remove("busy"); }
  };
  const refuse = (text) => { input.classList.add("bad"); message.className = "message bad"; message.textContent = text; };
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") move(); });
  row.append(el("span", { text: movable.name.split(".").slice(1).join(".") || movable.name }),
    el("span", {}, value, units),
    el("span", { class: "controls" }, input,
      el("button", { "data-testid": `move-${movable.name}`, onclick: move, text: "Move" }),
      movable.stoppable ? el("button", { class: "danger", "data-testid": `stop-${movable.name}`, text: "Stop",
        onclick: () => action("/api/devices/stop", { name: movable.name }).then(() => toast(`${movable.name} stopped`)).catch((e) => refuse(e.message)) }) : null));
  row.append(el("span", { class: "limits", text: movable.limits ? `limits ${movable.limits[0]} … ${movable.limits[1]}${units}` : "" }));
  return row;
}

function signalTable(signals, message) {
  const table = el("table", { class: "signals" });
  for (const signal of signals) {
    const value = el("td", { class: "v", "data-testid": `signal-${signal.key}` });
    addCell(signal.key, value, signal.precision);
    const cells = [el("td", { text: signal.path.split(".").slice(1).join(".") }), value, el("td", { text: signal.units || "" })];
    if (signal.kind === "config" && signal.settable && !signal.shape.length) {
      const input = signal.choices.length
        ? el("select", {}, signal.choices.map((c) => el("option", { text: c })))
        : el("input", { size: 7 });
      const set = async () => {
        let target = input.value;
        if (signal.dtype === "number" || signal.dtype === "integer") target = Number(target);
        if (signal.dtype === "boolean") target = target === "true";
        try {
          await action("/api/devices/set", { name: signal.path, value: target });
          message.className = "message ok"; message.textContent = `${signal.path} = ${target}`;
        } catch (error) { message.className = "message bad"; message.textContent = error.message; }
      };
      cells.push(el("td", {}, input, el("button", { onclick: set, text: "Set" })));
    }
    table.append(el("tr", {}, cells));
  }
  return table;
}

function failedCard(device) {
  const message = el("div", { class: "message" });
  const button = el("button", { "data-testid": `reconnect-${device.name}`, text: "Reconnect" });
  button.addEventListener("click", async () => {
    button.disabled = true; message.textContent = `reconnecting ${device.name} …`;
    try {
      const reply = await action("/api/devices/reconnect", { name: device.name });
      toast(`reconnected ${reply.reconnected.join(", ")}`);
    } catch (error) { message.className = "message bad"; message.textContent = error.message; }
    finally { button.disabled = false; }
  });
  return el("div", { class: "card failed", "data-testid": `device-${device.name}` },
    el("h3", {}, device.name, " ", el("span", { class: "kind", text: `${device.kind} — not connected` })),
    device.description ? el("div", { class: "desc", text: device.description }) : null,
    el("div", { class: "error", "data-testid": `error-${device.name}`, text: device.error }), button, message);
}

function renderDeviceErrors() {
  for (const device of state.devices.devices) {
    const node = document.querySelector(`[data-testid="error-${device.name}"]`);
    if (node) node.textContent = state.errors[device.name] || "";
  }
}

function updateValues(values) {
  cockpit.valueUpdates += 1;
  for (const [key, value] of Object.entries(values)) {
    state.values[key] = value;
    for (const cell of valueCells.get(key) || []) cell.node.textContent = fmt(value[0], cell.precision);
  }
}

// ---------------------------------------------------------------- plans and queue

function renderPlans() {
  const select = $("#plan-select");
  const chosen = select.value;
  select.replaceChildren(...state.plans.map((plan) => el("option", { value: plan.name, text: plan.name, title: plan.summary })));
  select.value = chosen || (state.plans.find((p) => p.name === "scan") ? "scan" : state.plans[0]?.name);
  renderForm();
}
$("#plan-select").addEventListener("change", renderForm);

function renderForm() {
  const plan = state.plans.find((p) => p.name === $("#plan-select").value);
  const form = $("#plan-form");
  form.replaceChildren();
  if (!plan) return;
  form.append(el("p", { text: plan.summary }));
  const readers = [];
  for (const field of plan.fields) {
    let input, read;
    if (field.device && field.many && field.options.length) {
      const boxes = field.options.map((name) => el("label", {}, el("input", { type: "checkbox", value: name, "data-testid": `field-${field.name}-${name}` }), name));
      input = el("div", { class: "choices" }, boxes);
      read = () => { const names = boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value); return names.length ? names : ""; };
    } else if (field.device && field.options.length) {
      input = el("select", { "data-testid": `field-${field.name}` }, el("option", { value: "", text: field.required ? "— choose —" : "(default)" }),
        field.options.map((name) => el("option", { text: name })));
      read = () => input.value;
    } else {
      const placeholder = field.kind === "args" ? (plan.axes ? "[stage.x, -1, 1]" : "[ … ]") : field.name === "md" ? "{sample: Si}" : field.default;
      input = el("input", { "data-testid": `field-${field.name}`, placeholder });
      read = () => input.value;
    }
    readers.push([field.name, read]);
    form.append(el("div", { class: "field" },
      el("label", { text: field.kind === "args" ? `*${field.name}` : field.name + (field.required ? " *" : "") }), input,
      el("span", { class: "hint", text: field.hint + (field.default ? ` = ${field.default}` : "") })));
  }
  const message = el("div", { class: "message", "data-testid": "plan-message" });
  const submit = async (start) => {
    const values = {};
    for (const [name, read] of readers) { const v = read(); if (v !== "") values[name] = v; }
    try {
      await action("/api/queue/add", { plan: plan.name, values, start });
      message.className = "message ok"; message.textContent = `${plan.name} queued`;
    } catch (error) { message.className = "message bad"; message.textContent = error.message; }
  };
  form.append(el("div", { class: "buttons" },
    el("button", { "data-testid": "queue-add", onclick: () => submit(false), text: "Add to queue" }),
    el("button", { "data-testid": "queue-add-start", onclick: () => submit(true), text: "Add and start" })), message);
}

function itemText(item) {
  const args = (item.args || []).map((a) => JSON.stringify(a)).join(", ");
  const kwargs = Object.entries(item.kwargs || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ");
  return `${item.name}(${[args, kwargs].filter(Boolean).join(", ")})`;
}

function renderQueue() {
  const { items, running_item: running } = state.queue;
  $("#queue-count").textContent = items.length || "";
  $("#running-item").textContent = running && running.name ? `running: ${itemText(running)}` : "";
  $("#queue-items").replaceChildren(...items.map((item, index) => el("li", { "data-testid": "queue-item" },
    itemText(item), " ",
    el("button", { title: "up", text: "↑", disabled: index === 0, onclick: () => queueAction("move", { uid: item.item_uid, pos: index - 1 }) }),
    el("button", { title: "down", text: "↓", disabled: index === items.length - 1, onclick: () => queueAction("move", { uid: item.item_uid, pos: index + 1 }) }),
    el("button", { title: "remove", text: "✕", "data-testid": "queue-remove", onclick: () => queueAction("remove", { uid: item.item_uid }) }))));
}

function queueAction(name, body = {}) { return action(`/api/queue/${name}`, body).catch((e) => toast(e.message, true)); }
$("#queue-start").addEventListener("click", () => queueAction("start"));
$("#queue-stop").addEventListener("click", () => queueAction(state.status.queue_stop_pending ? "stop_cancel" : "stop"));
$("#queue-clear").addEventListener("click", () => queueAction("clear"));

function renderHistory() {
  const rows = state.history.slice(-50).reverse().map((item) => {
    const result = item.result || {};
    const status = result.exit_status || "";
    return el("tr", { "data-testid": "history-item" }, el("td", { text: itemText(item) }),
      el("td", { class: `status-${status}`, text: status, "data-testid": "history-status" }),
      el("td", { text: (result.run_uids || []).map((u) => u.slice(0, 8)).join(" ") }),
      el("td", { text: result.msg || "" }));
  });
  $("#history").replaceChildren(...rows);
}

// ---------------------------------------------------------------- live plots

let scan = null;
let plots = [];

function resetScan(summary) {
  scan = summary ? { start: summary.start, descriptors: new Map(), rows: [], stop: summary.stop, peak: summary.peak || null } : null;
  for (const plot of plots) plot.destroy();
  plots = [];
  $("#plots").replaceChildren();
  if (!scan) { showPeak(); return; }
  for (const descriptor of summary.descriptors || []) scan.descriptors.set(descriptor.uid, descriptor);
  scan.rows = (summary.rows || []).filter((row) => primary(row.descriptor));
  const start = scan.start;
  $("#scan-title").textContent = `scan ${start.scan_id} · ${start.plan_name}${start.sample ? ` · ${start.sample}` : ""}`;
  setupPlots();
  scanStop(summary.stop);
  showPeak();
}

function primary(uid) { const d = scan && scan.descriptors.get(uid); return d && d.name === "primary"; }

function scanKeys() {
  const keys = new Set();
  for (const d of scan.descriptors.values()) if (d.name === "primary") for (const k of Object.keys(d.keys)) keys.add(k);
  return [...keys];
}

function defaultY() {
  const motors = new Set(scan.start.motors || []);
  const hinted = [];
  for (const d of scan.descriptors.values()) {
    if (d.name !== "primary") continue;
    for (const hint of Object.values(d.hints || {})) for (const f of hint.fields || []) if (!motors.has(f) && f in d.keys) hinted.push(f);
  }
  return hinted.length ? hinted.slice(0, 4) : scanKeys().filter((k) => !motors.has(k)).slice(0, 2);
}

function setupPlots() {
  const xSelect = $("#plot-x");
  const keys = scanKeys();
  const motors = (scan.start.motors || []).filter((m) => keys.includes(m));
  const options = [...motors, "time", "seq_num", ...keys.filter((k) => !motors.includes(k))];
  const chosen = xSelect.dataset.chosen;
  xSelect.replaceChildren(...options.map((k) => el("option", { text: k })));
  xSelect.value = chosen && options.includes(chosen) ? chosen : (motors[0] || "time");
  if (!plots.length && keys.length) addPlot(defaultY());
  else for (const plot of plots) plot.rebuild();
  setupRaster();
  $("#scan-points").textContent = `${scan.rows.length} points`;
}
$("#plot-x").addEventListener("change", (event) => {
  event.target.dataset.chosen = event.target.value;
  for (const plot of plots) plot.rebuild();
});
$("#plot-add").addEventListener("click", () => { if (scan) addPlot(defaultY().slice(0, 1)); });

class LivePlot {
  constructor(keys) {
    this.keys = new Set(keys);
    this.box = el("div", { class: "plot", "data-testid": "live-plot" });
    this.chooser = el("div", { class: "keys" });
    this.area = el("div");
    this.box.append(this.chooser, this.area);
    $("#plots").append(this.box);
    this.rebuild();
  }

  rebuild() {
    this.chooser.replaceChildren(...scanKeys().map((key) => {
      const box = el("input", { type: "checkbox", checked: this.keys.has(key) });
      box.addEventListener("change", () => { box.checked ? this.keys.add(key) : this.keys.delete(key); this.rebuild(); });
      return el("label", {}, box, key);
    }));
    if (this.uplot) this.uplot.destroy();
    const x = $("#plot-x").value;
    const series = [{ label: x }];
    const colours = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#0a7b83"];
    [...this.keys].forEach((key, i) => series.push({ label: key, stroke: colours[i % colours.length], points: { size: 5 } }));
    this.uplot = new uPlot({
      width: Math.max(400, $("#view-plots").clientWidth - 40 || 800), height: 300, series,
      scales: { x: { time: false } }, axes: [{ label: x }, {}],
      hooks: { draw: [(u) => drawPeak(u, this.keys)] },
    }, this.data(), this.area);
  }

  data() {
    const x = $("#plot-x").value;
    const t0 = scan.start.time || 0;
    const xs = scan.rows.map((row) => (x === "time" ? row.time - t0 : row[x] ?? null));
    return [xs, ...[...this.keys].map((key) => scan.rows.map((row) => row[key] ?? null))];
  }

  update() { this.uplot.setData(this.data()); }
  resize() { this.uplot.setSize({ width: Math.max(400, $("#view-plots").clientWidth - 40), height: 300 }); }
  destroy() { this.uplot.destroy(); this.box.remove(); }
}

function addPlot(keys) { plots.push(new LivePlot(keys)); }

// The plan's fitted peak (bluesky's PeakStats, computed by the cockpit from the
// same documents): a line at its centre, its FWHM shaded, in every plot of its
// signal against its motor.
function drawPeak(u, keys) {
  const peak = scan && scan.peak;
  if (!peak || $("#plot-x").value !== peak.x || !keys.has(peak.y)) return;
  const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
  const at = (v) => u.valToPos(v, "x", true);
  ctx.save();
  if (peak.fwhm) {
    ctx.fillStyle = "rgba(188, 76, 0, 0.08)";
    const left = at(peak.cen - peak.fwhm / 2), right = at(peak.cen + peak.fwhm / 2);
    ctx.fillRect(left, top, right - left, height);
  }
  // on whole pixels, two wide: a crisp line wherever the centre falls
  const x = Math.round(at(peak.cen));
  ctx.strokeStyle = "#bc4c00"; ctx.setLineDash([6, 4]); ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
  ctx.restore();
}

function showPeak() {
  const peak = scan && scan.peak;
  const line = $("#scan-peak");
  line.hidden = !peak;
  if (peak) {
    const fwhm = peak.fwhm ? `, FWHM ${peak.fwhm.toPrecision(3)}` : "";
    line.textContent = `peak of ${peak.y}: centre ${peak.x} = ${peak.cen.toPrecision(4)}${fwhm}; maximum ${peak.max[1].toPrecision(4)} at ${peak.max[0].toPrecision(4)}`;
  }
  for (const plot of plots) plot.uplot.redraw();
}

function scanDescriptor(descriptor) {
  if (!scan) return;
  scan.descriptors.set(descriptor.uid, descriptor);
  if (descriptor.name === "primary") setupPlots();
}

let redraw = false;
function scanRows(rows) {
  if (!scan) return;
  for (const row of rows) if (primary(row.descriptor)) scan.rows.push(row);
  if (!redraw) {
    redraw = true; // at most five redraws a second: the scan's CPU comes first
    setTimeout(() => requestAnimationFrame(() => {
      redraw = false;
      for (const plot of plots) plot.update();
      drawRaster();
      $("#scan-points").textContent = `${scan.rows.length} points`;
    }), 200);
  }
}

function scanStop(stop) {
  if (!scan) return;
  if (stop && runsSearched) setTimeout(searchRuns, 1500); // the catalog catches up
  scan.stop = stop;
  if (stop) { // the last rows came before the stop: draw them now
    for (const plot of plots) plot.update();
    drawRaster();
    $("#scan-points").textContent = `${scan.rows.length} points`;
  }
  const title = $("#scan-title");
  title.dataset.status = stop ? stop.exit_status : "running";
  const start = scan.start;
  title.textContent = `scan ${start.scan_id} · ${start.plan_name}${start.sample ? ` · ${start.sample}` : ""} · ${stop ? stop.exit_status : "running"}`;
}

function setupRaster() {
  const shape = scan.start.shape || [];
  $("#raster-box").hidden = !(shape.length === 2 && (scan.start.motors || []).length === 2);
  drawRaster();
}

function drawRaster() {
  if ($("#raster-box").hidden || !scan) return;
  const [ny, nx] = scan.start.shape;
  const key = [...(plots[0]?.keys || [])][0];
  const canvas = $("#raster");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!key) return;
  const values = scan.rows.map((r) => r[key]).filter((v) => typeof v === "number");
  const low = Math.min(...values), high = Math.max(...values);
  const w = canvas.width / nx, h = canvas.height / ny;
  for (const row of scan.rows) {
    const i = row.seq_num - 1, r = Math.floor(i / nx);
    let c = i % nx;
    if (r % 2 === 1 && (scan.start.snaking || [])[1]) c = nx - 1 - c;
    const v = row[key];
    if (typeof v !== "number") continue;
    const t = high > low ? (v - low) / (high - low) : 0.5;
    const [R, G, B] = colourMaps.viridis(t);
    context.fillStyle = `rgb(${R},${G},${B})`;
    context.fillRect(c * w, (ny - 1 - r) * h, Math.ceil(w), Math.ceil(h));
  }
}

// ---------------------------------------------------------------- camera

const colourMaps = {
  gray: (t) => [255 * t, 255 * t, 255 * t],
  viridis: ramp([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]]),
  inferno: ramp([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]]),
};

function ramp(stops) {
  return (t) => {
    const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
    return stops[i].map((c, k) => c + f * (stops[i + 1][k] - c));
  };
}

function lut(name) {
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) table.set(colourMaps[name](i / 255).map(Math.round), i * 3);
  return table;
}

const camera = { visible: false, name: "", frame: null, roi: null, cross: null, dragging: null, lut: lut("gray"), times: [] };

function renderCameras() {
  const select = $("#camera-select");
  const cameras = state.devices.devices.filter((d) => d.camera).map((d) => d.name);
  const chosen = select.value;
  select.replaceChildren(...cameras.map((name) => el("option", { text: name })));
  if (cameras.includes(chosen)) select.value = chosen;
  renderFocus();
  if (camera.visible) watchCamera();
}

function renderFocus() {
  const name = $("#camera-select").value;
  const on = state.focus.includes(name);
  const button = $("#focus-toggle");
  button.textContent = on ? "Stop focus mode" : "Focus mode";
  button.dataset.on = on ? "1" : "";
  // detectors that only write files show their frames while a plan acquires
  const device = state.devices.devices.find((d) => d.name === name);
  button.disabled = Boolean(device) && !device.focus;
  button.title = button.disabled ? `${name} shows the frames a plan acquires; it has no focus mode` : "";
  if (device && !device.focus && camera.frame?.name !== name) $("#camera-fps").textContent = `${name}: frames appear while a plan acquires it`;
}

function watchCamera() {
  const name = $("#camera-select").value;
  if (camera.name && camera.name !== name) send({ type: "camera", name: camera.name, on: false });
  camera.name = name;
  if (name) send({ type: "camera", name, on: camera.visible });
}

function cameraVisible(visible) {
  camera.visible = visible;
  if (camera.name || visible) watchCamera();
}

$("#camera-select").addEventListener("change", () => { renderFocus(); watchCamera(); });
$("#colour-map").addEventListener("change", (e) => { camera.lut = lut(e.target.value); drawFrame(); });
$("#focus-toggle").addEventListener("click", async () => {
  const on = !$("#focus-toggle").dataset.on;
  try {
    await action("/api/devices/focus", { name: $("#camera-select").value, on, exposure: Number($("#focus-exposure").value) || null });
  } catch (error) { toast(error.message, true); }
});
$("#roi-clear").addEventListener("click", () => { camera.roi = null; drawOverlay(); statsTable(); });

function decodeFrame(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const bytes = buffer.slice(4 + length);
  header.pixels = header.dtype === "uint8" ? new Uint8Array(bytes) : new Uint16Array(bytes);
  return header;
}

function cameraFrame(buffer) {
  const frame = decodeFrame(buffer);
  cockpit.frames += 1;
  const now = performance.now();
  camera.times.push(now);
  while (camera.times.length && now - camera.times[0] > 2000) camera.times.shift();
  cockpit.cameraFps = camera.times.length > 1 ? (camera.times.length - 1) / ((now - camera.times[0]) / 1000) : 0;
  cockpit.lastFrame = { number: frame.number, time: frame.time, max: frame.max, centroid: frame.centroid, shape: frame.shape };
  camera.frame = frame;
  $("#camera-fps").textContent = `${cockpit.cameraFps.toFixed(1)} fps · frame ${frame.number}`;
  drawFrame();
}

function drawFrame(frame = camera.frame, canvas = $("#camera-canvas")) {
  if (!frame) return;
  const [h, w] = frame.shape;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  let low = frame.min, high = frame.max;
  if (canvas.id === "camera-canvas") {
    if ($("#auto-scale").checked) { $("#scale-low").value = low; $("#scale-high").value = high; }
    else { low = Number($("#scale-low").value); high = Number($("#scale-high").value); }
  }
  const span = high > low ? 255 / (high - low) : 0;
  const image = new ImageData(w, h);
  const out = image.data, pixels = frame.pixels, table = camera.lut;
  for (let i = 0; i < pixels.length; i++) {
    const level = Math.max(0, Math.min(255, ((pixels[i] - low) * span) | 0)) * 3;
    out[i * 4] = table[level]; out[i * 4 + 1] = table[level + 1]; out[i * 4 + 2] = table[level + 2]; out[i * 4 + 3] = 255;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  if (canvas.id !== "camera-canvas") return;
  drawHistogram(frame); drawProfiles(frame); drawOverlay(); statsTable();
}

function drawHistogram(frame) {
  const canvas = $("#histogram"), context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const counts = frame.histogram?.counts || [];
  const top = Math.log10(Math.max(...counts, 1) + 1);
  const w = canvas.width / Math.max(counts.length, 1);
  context.fillStyle = "#1f6feb";
  counts.forEach((c, i) => { const hgt = (Math.log10(c + 1) / top) * canvas.height; context.fillRect(i * w, canvas.height - hgt, w - 1, hgt); });
}

function drawProfiles(frame) {
  const [h, w] = frame.shape;
  const step = frame.step || 1;
  const spot = frame.centroid ? [Math.round(frame.centroid[0] / step), Math.round(frame.centroid[1] / step)] : null;
  const [cx, cy] = (camera.cross || spot || [w / 2, h / 2]).map((v, i) => Math.min(Math.max(0, Math.floor(v)), [w, h][i] - 1));
  const row = Array.from({ length: w }, (_, x) => frame.pixels[cy * w + x]);
  const column = Array.from({ length: h }, (_, y) => frame.pixels[y * w + cx]);
  line($("#profile-x"), row); line($("#profile-y"), column);
}

function line(canvas, values) {
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const low = Math.min(...values), high = Math.max(...values);
  context.strokeStyle = "#cf222e"; context.beginPath();
  values.forEach((v, i) => {
    const x = (i / Math.max(values.length - 1, 1)) * canvas.width;
    const y = canvas.height - (high > low ? (v - low) / (high - low) : 0.5) * (canvas.height - 4) - 2;
    i ? context.lineTo(x, y) : context.moveTo(x, y);
  });
  context.stroke();
}

function imagePoint(event) {
  const canvas = $("#camera-overlay"), rect = canvas.getBoundingClientRect();
  const [h, w] = camera.frame ? camera.frame.shape : [canvas.height, canvas.width];
  return [Math.floor(((event.clientX - rect.left) / rect.width) * w), Math.floor(((event.clientY - rect.top) / rect.height) * h)];
}

const overlay = $("#camera-overlay");
overlay.addEventListener("mousedown", (event) => { camera.dragging = imagePoint(event); });
overlay.addEventListener("mousemove", (event) => {
  if (!camera.dragging) return;
  const [x0, y0] = camera.dragging, [x1, y1] = imagePoint(event);
  if (Math.abs(x1 - x0) > 2 && Math.abs(y1 - y0) > 2) camera.roi = [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
  drawOverlay();
});
overlay.addEventListener("mouseup", (event) => {
  const [x0, y0] = camera.dragging || imagePoint(event), [x1, y1] = imagePoint(event);
  if (Math.abs(x1 - x0) <= 2 && Math.abs(y1 - y0) <= 2) camera.cross = [x1, y1];
  camera.dragging = null;
  if (camera.frame) drawProfiles(camera.frame);
  drawOverlay(); statsTable();
});

function drawOverlay() {
  const canvas = $("#camera-overlay");
  const [h, w] = camera.frame ? camera.frame.shape : [512, 512];
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, w, h);
  context.lineWidth = Math.max(1, w / 512);
  if (camera.cross) {
    context.strokeStyle = "rgba(255,80,80,.8)";
    context.beginPath(); context.moveTo(0, camera.cross[1] + 0.5); context.lineTo(w, camera.cross[1] + 0.5);
    context.moveTo(camera.cross[0] + 0.5, 0); context.lineTo(camera.cross[0] + 0.5, h); context.stroke();
  }
  if (camera.roi) { context.strokeStyle = "#ffd33d"; context.strokeRect(...camera.roi); }
  const c = camera.frame?.centroid;
  if (c) {
    const step = camera.frame.step || 1;
    context.strokeStyle = "#3fb950"; context.beginPath(); context.arc(c[0] / step, c[1] / step, 6, 0, 2 * Math.PI); context.stroke();
  }
}

function statsTable() {
  const frame = camera.frame;
  if (!frame) return;
  const rows = [["frame", frame.number], ["size", `${frame.full_shape.join(" × ")} (shown 1:${frame.step})`],
    ["min / max", `${fmt(frame.min, 0)} / ${fmt(frame.max, 0)}`], ["mean ± std", `${fmt(frame.mean, 1)} ± ${fmt(frame.std, 1)}`],
    ["centroid (px)", frame.centroid ? frame.centroid.map((v) => v.toFixed(1)).join(", ") : "—"]];
  if (camera.roi) {
    const [x, y, rw, rh] = camera.roi, [h, w] = frame.shape;
    let sum = 0, max = -Infinity, n = 0;
    for (let j = y; j < Math.min(y + rh, h); j++) for (let i = x; i < Math.min(x + rw, w); i++) { const v = frame.pixels[j * w + i]; sum += v; max = Math.max(max, v); n++; }
    const step = frame.step || 1;
    rows.push(["ROI (px)", `${x * step}, ${y * step}, ${rw * step} × ${rh * step}`], ["ROI mean / max", `${fmt(n ? sum / n : 0, 1)} / ${fmt(max, 0)}`]);
  }
  $("#camera-stats").replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: v, "data-testid": `stat-${k.split(" ")[0]}` }))));
}

// ---------------------------------------------------------------- runs

let runsSearched = false;
let runsAsked = 0; // searches asked for: only the newest one's answer is shown
$("#run-search").addEventListener("submit", (event) => { event.preventDefault(); searchRuns(); });

async function searchRuns() {
  runsSearched = true;
  const asked = ++runsAsked;
  const form = new FormData($("#run-search"));
  const query = new URLSearchParams();
  for (const [key, value] of form) if (value) query.set(key, value);
  try {
    const runs = await get(`/api/runs?${query}`);
    if (asked !== runsAsked) return; // a newer search is under way (or shown)
    const list = $("#run-list");
    list.dataset.query = query.toString(); // what the rows answer, and how often
    list.dataset.answers = String(Number(list.dataset.answers || 0) + 1);
    list.replaceChildren(...runs.map((run) => el("tr", { "data-testid": "run-row", "data-uid": run.uid, onclick: () => openRun(run.uid) },
      el("td", { text: run.scan_id }), el("td", { text: run.plan_name }), el("td", { text: run.sample || "" }),
      el("td", { text: run.time ? new Date(run.time * 1000).toLocaleString() : "" }),
      el("td", { class: `status-${run.exit_status}`, text: run.exit_status, "data-testid": "run-exit-status-cell" }))));
    if (!runs.length) list.append(el("tr", {}, el("td", { colspan: 5, text: "no run matches" })));
  } catch (error) { toast(error.message, true); }
}

let runPlot = null;
async function openRun(uid) {
  for (const row of document.querySelectorAll("#run-list tr")) row.classList.toggle("open", row.dataset.uid === uid);
  const detail = $("#run-detail");
  detail.replaceChildren(el("p", { text: "loading …" }));
  let run;
  try { run = await get(`/api/runs/${uid}`); } catch (error) { detail.replaceChildren(el("p", { class: "message bad", text: error.message })); return; }
  const streamSelect = el("select", { "data-testid": "run-stream" }, Object.keys(run.streams).map((s) => el("option", { text: s })));
  if ("primary" in run.streams) streamSelect.value = "primary";
  const area = el("div", { "data-testid": "run-plot" });
  const frames = el("div");
  detail.replaceChildren(
    el("h2", { "data-testid": "run-title", text: `scan ${run.scan_id} · ${run.plan_name} · ${run.exit_status}` }),
    el("table", { class: "table" },
      el("tr", {}, el("td", { text: "uid" }), el("td", { text: run.uid, "data-testid": "run-uid" })),
      el("tr", {}, el("td", { text: "exit status" }), el("td", { text: run.exit_status, "data-testid": "run-exit-status" })),
      el("tr", {}, el("td", { text: "reason" }), el("td", { text: run.reason || "" })),
      el("tr", {}, el("td", { text: "sample" }), el("td", { text: run.sample || "" })),
      el("tr", {}, el("td", { text: "started" }), el("td", { text: run.time ? new Date(run.time * 1000).toLocaleString() : "" }))),
    el("div", { class: "buttons" }, el("label", {}, "stream ", streamSelect),
      run.file ? el("a", { href: `/api/runs/${uid}/file`, download: true, "data-testid": "run-download", text: "Download HDF5" }) : el("span", { text: "no run file here" })),
    area, frames,
    el("details", {}, el("summary", { text: "start document" }), el("pre", { text: JSON.stringify(run.start_doc, null, 1) })));
  const show = async () => {
    const stream = streamSelect.value;
    const keys = run.streams[stream] || {};
    let table;
    try { table = await get(`/api/runs/${uid}/streams/${stream}`); } catch (error) { area.replaceChildren(el("p", { text: error.message })); return; }
    const columns = Object.keys(table).filter((k) => k !== "time" && k !== "seq_num");
    const motors = (run.start_doc.motors || []).filter((m) => m in table);
    const x = motors[0] || (table.seq_num ? "seq_num" : "time");
    const ys = columns.filter((k) => k !== x).slice(0, 6);
    if (runPlot) runPlot.destroy();
    area.replaceChildren();
    if (table[x]) {
      runPlot = new uPlot({ width: Math.max(360, detail.clientWidth - 30), height: 260, scales: { x: { time: false } },
        series: [{ label: x }, ...ys.map((k, i) => ({ label: k, stroke: ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#0a7b83"][i % 6], points: { size: 4 } }))],
        axes: [{ label: x === "time" ? "time (s from the first point)" : x }, {}] },
        [x === "time" ? table.time.map((t) => t - table.time[0]) : table[x], ...ys.map((k) => table[k])], area);
    }
    const images = Object.entries(keys).filter(([, spec]) => spec.shape.length >= 2).map(([k]) => k);
    frames.replaceChildren();
    for (const key of images) {
      const canvas = el("canvas", { "data-testid": `run-frame-${key}`, width: 256, height: 256, style: "width:256px;height:256px;background:#000" });
      const index = el("input", { type: "number", value: 0, min: 0, style: "width:5em" });
      const load = async () => {
        const response = await fetch(`/api/runs/${uid}/frames/${stream}/${key}/${index.value}`);
        if (!response.ok) { toast((await response.json()).detail, true); return; }
        drawFrame(decodeFrame(await response.arrayBuffer()), canvas);
      };
      index.addEventListener("change", load);
      frames.append(el("div", {}, el("h3", { text: key }), el("label", {}, "frame ", index), el("br"), canvas));
      load();
    }
  };
  streamSelect.addEventListener("change", show);
  show();
}

// ---------------------------------------------------------------- log and alarms

function renderLog() { $("#log").replaceChildren(); for (const entry of state.log) appendLog(entry, false); }

function appendLog(entry, alarm) {
  const time = new Date(entry.time * 1000).toLocaleTimeString();
  $("#log").prepend(el("tr", { class: entry.level }, el("td", { text: time }), el("td", { text: entry.level }),
    el("td", { text: entry.source }), el("td", { text: entry.text })));
  if (alarm && entry.level === "error") toast(entry.text, true);
}

function renderAlarms() {
  const alarms = [];
  for (const failed of state.devices.failed) alarms.push(`${failed.name} is not connected: ${failed.error}`);
  for (const [name, error] of Object.entries(state.errors)) alarms.push(`${name}: ${error}`);
  if (state.status.reachable === false) alarms.push("the RE Manager does not answer");
  if (state.status.worker_environment_exists === false) alarms.push("the worker environment is closed: no session");
  const health = state.health || {};
  if (health.disk_low) alarms.push(`disk: ${(health.disk_free / 2 ** 30).toFixed(1)} GiB free of ${(health.disk_total / 2 ** 30).toFixed(0)} GiB in ${health.data_dir}`);
  if (health.disk_error) alarms.push(`disk: ${health.disk_error}`);
  if (health.catalog_late) alarms.push(`catalog: ${health.catalog_behind} stored runs not yet in the catalog (the run browser shows them once Tiled catches up)`);
  $("#alarms").replaceChildren(...(alarms.length ? alarms.map((a) => el("li", { class: "bad", text: a, "data-testid": "alarm" })) : [el("li", { text: "none" })]));
  $("#alarm-count").textContent = alarms.length || "";
}

// ---------------------------------------------------------------- login

function showLogin() { $("#login").hidden = false; $("#login-key").focus(); }
$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await action("/api/login", { key: $("#login-key").value });
    $("#login").hidden = true;
    if (socket) socket.close();
  } catch (error) { $("#login-error").textContent = error.message; }
});

connect();
