// The model server's page: draws or uploads a digit, fills a house form, and shows what the
// server answers. Only the public API: /v1/models, /v2/models/{name}, V1 :predict.
"use strict";

// What the housing features mean; a tabular model with other features gets bare fields.
const FEATURES = {
  CRIM: ["Crime rate", "per-capita crimes per resident, by town", 0.26],
  ZN: ["Large-lot zoning", "% of residential land in lots over 25,000 sq ft", 0],
  INDUS: ["Industry", "% of town acres in non-retail business", 9.69],
  CHAS: ["Charles River", "1 if the tract bounds the river, else 0", 0],
  NOX: ["Air pollution", "nitric oxides, parts per 10 million", 0.538],
  RM: ["Rooms", "average rooms per dwelling", 6.21],
  AGE: ["Old buildings", "% of owner-occupied units built before 1940", 77.5],
  DIS: ["Distance to jobs", "weighted distance to 5 Boston employment centres", 3.21],
  RAD: ["Highway access", "index of access to radial highways (1-24)", 5],
  TAX: ["Property tax", "full-value tax rate per $10,000", 330],
  PTRATIO: ["Pupils per teacher", "pupil-teacher ratio by town", 19.05],
  B: ["B statistic", "1000(Bk - 0.63)² where Bk is the proportion of Black residents", 391.44],
  LSTAT: ["Lower-status population", "% of the population", 11.36],
};

const $ = (id) => document.getElementById(id);
let models = [];      // [{name, versions: [version...]}] of ready models
let meta = null;      // V2 metadata of the chosen model

// -- talking to the server ---------------------------------------------------------------
async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = $("token").value.trim();
  if (token) headers.Authorization = "Bearer " + token;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  } catch (err) {
    throw new Error("The server cannot be reached: " + err.message);
  }
  if (resp.status === 401) askForToken();
  let data = null;
  try { data = await resp.json(); } catch (err) { data = null; }
  if (!resp.ok) {
    let message = (data && data.error) || `The server answered ${resp.status}.`;
    if (resp.status === 401) {
      message = `This server needs a token: enter it above, then try again (${message}).`;
    }
    const error = new Error(message);
    error.details = (data && data.details) || {};
    throw error;
  }
  return data;
}

function askForToken() {
  $("token-field").hidden = false;
  $("token-help").hidden = false;
}

function modelPath() {
  const version = $("version").value;
  return `/v1/models/${encodeURIComponent($("model").value)}` +
         (version ? `/versions/${encodeURIComponent(version)}` : "");
}

// -- model and version picker -------------------------------------------------------------
async function loadModels() {
  $("server-error").textContent = "";
  try {
    const list = await call("GET", "/v1/models");
    models = list.models.filter((m) => m.ready).map((m) => ({
      name: m.name, versions: m.versions.filter((v) => v.ready).map((v) => v.version) }));
  } catch (err) {
    $("server-error").textContent = err.message;
    return;
  }
  const select = $("model");
  select.replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  if (!models.length) $("server-error").textContent = "No model is ready on this server.";
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && models.some((m) => m.name === wanted)) select.value = wanted;
  await chooseModel();
}

async function chooseModel() {
  const model = models.find((m) => m.name === $("model").value);
  if (!model) return;
  const versions = [...model.versions].sort((a, b) => b - a);
  $("version").replaceChildren(new Option("latest", ""),
                               ...versions.map((v) => new Option(v, v)));
  try {
    meta = await call("GET", `/v2/models/${encodeURIComponent(model.name)}`);
  } catch (err) {
    $("server-error").textContent = err.message;
    return;
  }
  const pictures = meta.inputs.some((t) => t.datatype === "BYTES");
  const features = (meta.parameters || {}).features;
  $("digit-panel").hidden = !pictures;
  $("table-panel").hidden = !features;
  if (features) buildFields(features);
}

// -- digit: drawing pad ---------------------------------------------------------------------
const pad = $("pad");
const ink = pad.getContext("2d");
let drawing = false;
let drawn = false;

function clearPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  drawn = false;
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  ink.beginPath();
  ink.moveTo(x, y);
  ink.lineTo(x + 0.1, y);
  ink.stroke();
  drawn = true;
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  ink.lineTo(x, y);
  ink.stroke();
});
function endStroke() {
  if (!drawing) return;
  drawing = false;
  if ($("auto").checked) predictDrawing();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function predictDrawing() {
  if (!drawn) {
    showDigitError("Draw a digit first.");
    return;
  }
  predictPicture(pad.toDataURL("image/png"));
}

// -- digit: files -----------------------------------------------------------------------------
function readFile(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => predictPicture(reader.result);
  reader.onerror = () => showDigitError("The file cannot be read.");
  reader.readAsDataURL(file);
}

$("file").addEventListener("change", () => readFile($("file").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  readFile(event.dataTransfer.files[0]);
});

// -- digit: prediction and result -----------------------------------------------------------
async function predictPicture(dataUrl) {
  showDigitError("");
  try {
    const answer = await call("POST", modelPath() + ":predict", {
      instances: [{ b64: dataUrl }], parameters: { return_image: true } });
    showDigit(answer.predictions[0]);
  } catch (err) {
    showDigitError(err.message);
  }
}

function showDigitError(message) {
  $("digit-error").textContent = message;
  if (message) {
    $("digit-label").textContent = "";
    $("bars").replaceChildren();
    $("seen-figure").hidden = true;
  }
}

function showDigit(prediction) {
  const labels = (meta.parameters || {}).labels || [];
  const name = (i) => labels[i] ?? String(i);
  $("digit-label").textContent = `It is a ${name(prediction.label)}`;
  $("bars").replaceChildren(...prediction.probabilities.map((p, i) => {
    const row = document.createElement("li");
    const pct = (100 * p).toFixed(1) + "%";
    row.className = i === prediction.label ? "top" : "";
    row.setAttribute("aria-label", `${name(i)}: ${pct}`);
    row.innerHTML = `<span></span><span class="track"><span class="fill"></span></span>` +
                    `<span class="pct"></span>`;
    row.children[0].textContent = name(i);
    row.querySelector(".fill").style.width = (100 * p).toFixed(2) + "%";
    row.children[2].textContent = pct;
    return row;
  }));
  drawSeen(prediction.image);
}

function drawSeen(image) {
  if (!image) return;
  const seen = $("seen").getContext("2d");
  const pixels = seen.createImageData(28, 28);
  image.flat().forEach((v, i) => {
    pixels.data.set([v, v, v, 255], 4 * i);
  });
  seen.putImageData(pixels, 0, 0);
  $("seen-figure").hidden = false;
}

// -- tabular form -----------------------------------------------------------------------------
function buildFields(features) {
  $("fields").replaceChildren(...features.map((feature) => {
    const [title, meaning, typical] = FEATURES[feature] || [feature, "", 0];
    const box = document.createElement("div");
    box.className = "field";
    box.innerHTML = `<label><span></span> <small></small>
      <input type="text" inputmode="decimal" autocomplete="off"></label>
      <p class="error" role="status"></p>`;
    box.querySelector("span").textContent = `${title} (${feature})`;
    box.querySelector("small").textContent = meaning;
    const input = box.querySelector("input");
    input.name = feature;
    input.id = "f-" + feature;
    input.defaultValue = String(typical);
    const error = box.querySelector(".error");
    error.id = "e-" + feature;
    input.setAttribute("aria-describedby", error.id);
    return box;
  }));
}

function fieldValue(text) {
  const trimmed = text.trim();
  const number = Number(trimmed);
  // What is not a number goes to the server as typed, so its message says what is wrong.
  return trimmed !== "" && Number.isFinite(number) ? number : trimmed;
}

function showFieldErrors(details) {
  const perField = ((details.instances || {})["0"]) || {};
  let shown = false;
  for (const input of $("fields").querySelectorAll("input")) {
    const messages = Array.isArray(perField) ? [] : perField[input.name] || [];
    $("e-" + input.name).textContent = messages.join(" ");
    input.setAttribute("aria-invalid", messages.length ? "true" : "false");
    shown ||= messages.length > 0;
  }
  return shown;
}

$("table-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const instance = {};
  for (const input of $("fields").querySelectorAll("input")) {
    instance[input.name] = fieldValue(input.value);
  }
  $("table-error").textContent = "";
  $("table-answer").textContent = "";
  showFieldErrors({});
  try {
    const answer = await call("POST", modelPath() + ":predict", { instances: [instance] });
    const value = answer.predictions[0];
    $("table-answer").textContent = meta.outputs[0].name === "MEDV"
      ? `Predicted price: $${Math.round(value * 1000).toLocaleString("en-US")}`
      : `Prediction: ${value}`;
  } catch (err) {
    const atFields = showFieldErrors(err.details || {});
    $("table-error").textContent = atFields ? "Some values need fixing (see below each field)."
                                            : err.message;
  }
});
$("table-form").addEventListener("reset", () => {
  showFieldErrors({});
  $("table-error").textContent = "";
});

// -- start ----------------------------------------------------------------------------------
ink.lineWidth = 20;
ink.lineCap = "round";
ink.lineJoin = "round";
ink.strokeStyle = "#000";
clearPad();
$("clear").addEventListener("click", () => { clearPad(); showDigitError(""); });
$("predict-digit").addEventListener("click", predictDrawing);
$("model").addEventListener("change", chooseModel);
$("token").addEventListener("change", loadModels);
loadModels();
