// otter's web UI: the little it needs beyond HTML. Pages are rendered by the server; this file
// sends forms to the admin JSON API, refreshes live fragments and asks before destructive
// changes. Part of otter, Apache-2.0.
"use strict";

// The fields of a form as JSON. An input's `data-type` says how to read it: `number`, `bool`
// (a checkbox), `list` (comma-separated → array), `json` (parsed); otherwise a string. Empty
// fields are left out unless the input has `data-keep`, so a form never sends "" for "unset".
function formJson(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === "submit" || el.type === "file") continue;
    if (el.type === "radio" && !el.checked) continue;
    const type = el.dataset.type;
    let value;
    if (type === "bool" || el.type === "checkbox") value = el.checked;
    else if (el.value === "" && !("keep" in el.dataset)) continue;
    else if (type === "number") value = Number(el.value);
    else if (type === "list") value = el.value.split(",").map((s) => s.trim()).filter(Boolean);
    else if (type === "json") value = JSON.parse(el.value);
    else value = el.value;
    body[el.name] = value;
  }
  return body;
}

// `/api/v1/products/{product}` with `{product}` taken (and removed) from `fields`, encoded as
// one path segment.
function fillPath(template, fields, keep) {
  return template.replace(/\{(\w+)\}/g, (_, name) => {
    const value = fields[name];
    if (!keep) delete fields[name];
    return encodeURIComponent(value === undefined ? "" : String(value));
  });
}

// Shows `message` in the form's error line (made on first use).
function showError(form, message) {
  let line = form.querySelector(".form-error");
  if (!line) {
    line = document.createElement("p");
    line.className = "form-error";
    line.setAttribute("role", "alert");
    form.append(line);
  }
  line.textContent = message;
  line.hidden = !message;
}

// Asks inside the form before a change that cannot be undone: the first submit shows the
// question and a confirm button, the second (from that button) goes ahead.
function confirmed(form) {
  if (!form.dataset.confirm || form.dataset.confirmed === "yes") return true;
  let box = form.querySelector(".confirm");
  if (!box) {
    box = document.createElement("div");
    box.className = "confirm";
    const text = document.createElement("p");
    text.textContent = form.dataset.confirm;
    const yes = document.createElement("button");
    yes.type = "button";
    yes.className = "danger";
    yes.textContent = "Confirm";
    yes.addEventListener("click", () => {
      form.dataset.confirmed = "yes";
      form.requestSubmit();
    });
    const no = document.createElement("button");
    no.type = "button";
    no.textContent = "Cancel";
    no.addEventListener("click", () => box.remove());
    box.append(text, yes, no);
    form.append(box);
  }
  return false;
}

// A form with `data-api="METHOD /api/v1/…"` is sent as JSON with the session cookie; on
// success the browser goes to `data-then` (with `{field}` from the answer or the form), or
// reloads; on failure the API's message shows in the form.
async function submitApiForm(form) {
  if (!confirmed(form)) return;
  delete form.dataset.confirmed;
  const [method, template] = form.dataset.api.split(" ");
  const fields = formJson(form);
  const sent = { ...fields };
  const url = fillPath(template, fields, false);
  // `data-body="field"`: that field's value is the whole body (a root envelope, sent as is).
  const payload = form.dataset.body ? fields[form.dataset.body] : fields;
  const hasBody =
    method !== "GET" && method !== "DELETE" && Object.keys(payload || {}).length > 0;
  showError(form, "");
  const button = form.querySelector("[type=submit]");
  if (button) button.disabled = true;
  try {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: hasBody ? { "content-type": "application/json" } : {},
      body: hasBody ? JSON.stringify(payload) : undefined,
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      showError(form, errorText(response, answer));
      return;
    }
    // A page may take the answer itself (a token shown once): it cancels this event.
    const answered = new CustomEvent("otter:answer", { detail: answer, bubbles: true, cancelable: true });
    if (!form.dispatchEvent(answered)) return;
    if (form.dataset.then) {
      location.assign(fillPath(form.dataset.then, { ...sent, ...answer }, true));
    } else {
      location.reload();
    }
  } catch (e) {
    showError(form, `otter did not answer: ${e.message}`);
  } finally {
    if (button) button.disabled = false;
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  submitApiForm(form);
});

// `<div data-refresh="/ui/…" data-every="2">`: the fragment at that URL replaces the element's
// content every few seconds while the page is visible.
function refresh(element) {
  const every = Number(element.dataset.every || 5) * 1000;
  const tick = async () => {
    if (!document.hidden) {
      try {
        const response = await fetch(element.dataset.refresh, { credentials: "same-origin" });
        if (response.ok) element.innerHTML = await response.text();
      } catch (e) {
        // The next tick tries again; a live chart survives a restart of the server.
      }
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

for (const element of document.querySelectorAll("[data-refresh]")) refresh(element);

// ---- Fleet pages (devices, rollouts, tokens) ----

// The rollout form (`form[data-rollout]`): its stage rows and policy fields have no names; just
// before the form is sent (capture phase, ahead of the handler above) they are composed into
// the `stages` and `policy` JSON the API takes. A stage is its tags and/or its percentage; a
// policy field left empty keeps the API's default, `pauseOn.failures` nests as the API nests.
function composeRollout(form) {
  const stages = [];
  for (const row of form.querySelectorAll(".stage-row")) {
    const tags = row.querySelector("[data-stage=tags]").value.split(",").map((s) => s.trim()).filter(Boolean);
    const percent = row.querySelector("[data-stage=percent]").value;
    const stage = {};
    if (tags.length) stage.tags = tags;
    if (percent !== "") stage.percent = Number(percent);
    stages.push(stage);
  }
  const policy = {};
  for (const input of form.querySelectorAll("[data-policy]")) {
    if (input.value === "") continue;
    const path = input.dataset.policy.split(".");
    let at = policy;
    for (const key of path.slice(0, -1)) at = at[key] = at[key] || {};
    at[path[path.length - 1]] = Number(input.value);
  }
  form.elements.stages.value = JSON.stringify(stages);
  form.elements.policy.value = JSON.stringify(policy);
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-rollout]");
  if (form) composeRollout(form);
}, true);

document.addEventListener("click", (event) => {
  const add = event.target.closest("[data-add-stage]");
  if (add) {
    const rows = add.form.querySelector("[data-stage-rows]");
    const row = rows.querySelector(".stage-row").cloneNode(true);
    for (const input of row.querySelectorAll("input")) input.value = "";
    rows.append(row);
    row.querySelector("input").focus();
  }
  const remove = event.target.closest("[data-remove-stage]");
  if (remove && remove.form.querySelectorAll(".stage-row").length > 1) {
    remove.closest(".stage-row").remove();
  }
});

// `form[data-show-token]`: the new token is in the API's answer only, so it is shown in the
// form (once: a reload does not bring it back) rather than following a link.
document.addEventListener("otter:answer", (event) => {
  const form = event.target;
  if (!form.matches("form[data-show-token]") || !event.detail.token) return;
  event.preventDefault();
  form.querySelector("[data-new-token]").textContent = event.detail.token;
  form.querySelector(".new-token").hidden = false;
  for (const input of form.querySelectorAll("input")) input.value = "";
});

// ---------------------------------------------------------------------------------------------
// Products and releases (U1): the API's error as a line, field limits checked as the user
// types, and the upload widget.

// The API's error body as one line: its message and stable code.
function errorText(response, answer) {
  const code = answer.error ? ` (${answer.error})` : "";
  return (answer.message || response.statusText) + code;
}

// Shows `message` next to the field `el` (made on first use); empty hides it.
function fieldMessage(el, message) {
  let line = el.nextElementSibling;
  if (!line || !line.classList.contains("field-error")) {
    if (!message) return;
    line = document.createElement("span");
    line.className = "field-error";
    line.setAttribute("role", "alert");
    el.after(line);
  }
  line.textContent = message;
  line.hidden = !message;
}

// `data-max="60"`: the contract's length limit. Checked as the user types rather than with
// `maxlength`, which would silently cut a pasted text: the field says it is too long and the
// browser will not submit the form until it fits.
function checkLength(el) {
  const max = Number(el.dataset.max);
  const length = [...el.value].length;
  el.setCustomValidity(length > max ? `At most ${max} characters (this has ${length}).` : "");
}

document.addEventListener("input", (event) => {
  const el = event.target;
  if (!el.form) return;
  if ("max" in el.dataset) checkLength(el);
  // A limit passed shows at once; other rules (a version's pattern) wait for the submit, so a
  // half-typed value is not called wrong.
  if (el.validity.valid) fieldMessage(el, "");
  else if (el.validity.customError) fieldMessage(el, el.validationMessage);
});

// A field the browser refuses says why next to it, not only in a passing tooltip.
document.addEventListener(
  "invalid",
  (event) => {
    const el = event.target;
    const hint = el.validity.patternMismatch && el.title ? ` ${el.title}.` : "";
    fieldMessage(el, el.validationMessage + hint);
  },
  true,
);

// A call to the admin API: `body` is sent as is when it is a Blob, else as JSON. Fails with
// the API's message, and the HTTP status as `status` (none when otter did not answer).
async function apiCall(method, url, body) {
  const raw = body instanceof Blob;
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: body === undefined || raw ? {} : { "content-type": "application/json" },
    body: body === undefined || raw ? body : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(errorText(response, answer));
    error.status = response.status;
    throw error;
  }
  return answer;
}

const UPLOAD_CHUNK = 1024 * 1024;
const UPLOAD_RETRIES = 5;

// SHA-256 in script, for a page served over plain HTTP from another machine: browsers give
// `crypto.subtle` to secure contexts only (HTTPS, localhost).
const SHA256_K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function sha256Script(bytes) {
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const length = bytes.length;
  const padded = new Uint8Array(Math.ceil((length + 9) / 64) * 64);
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  // The length in bits, big-endian in the last 8 bytes.
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded.length - 4, (length * 8) >>> 0);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 =
        (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i]) |
        0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    [a, b, c, d, e, f, g, k].forEach((x, i) => {
      h[i] += x;
    });
  }
  return Array.from(h, (x) => x.toString(16).padStart(8, "0")).join("");
}

// The SHA-256 of `file` in hex: the browser's own when it gives it, else computed in script.
async function sha256Hex(file) {
  const bytes = await file.arrayBuffer();
  if (!crypto.subtle) return sha256Script(new Uint8Array(bytes));
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Sends `file` through the resumable upload API: begin with its size and SHA-256 (the API
// verifies the image against it), PUT chunks at the session's offset, finalize. A chunk that
// fails (a dropped connection, a server restarting, a chunk cut off mid-way) is not sent again
// from zero: after a short wait the widget asks the session where it stands and goes on from
// there. Returns the artifact.
async function uploadFile(widget, file) {
  const progress = widget.querySelector("progress");
  const status = widget.querySelector(".upload-status");
  const chunk = Number(widget.dataset.chunk) || UPLOAD_CHUNK;
  const show = (offset, note) => {
    progress.value = offset;
    const percent = Math.floor((offset * 100) / progress.max);
    status.textContent = `${percent} % of ${file.name}${note ? ` · ${note}` : ""}`;
  };
  progress.hidden = false;
  progress.max = Math.max(file.size, 1);
  progress.value = 0;
  status.textContent = `Hashing ${file.name}…`;
  // Only this much work in the browser: the API wants the SHA-256 at begin or finalize.
  const sha256 = await sha256Hex(file);
  const session = await apiCall("POST", "/api/v1/uploads", {
    size: file.size,
    sha256,
    filename: file.name,
  });
  const at = `/api/v1/uploads/${encodeURIComponent(session.id)}`;
  let offset = session.offset;
  let failures = 0;
  let resume = false;
  for (;;) {
    try {
      if (resume) offset = (await apiCall("GET", at)).offset;
      resume = false;
      if (offset >= file.size) break;
      show(offset, failures ? "resumed" : "");
      offset = (await apiCall("PUT", `${at}?offset=${offset}`, file.slice(offset, offset + chunk)))
        .offset;
      failures = 0;
    } catch (e) {
      // A refusal (403, 413…) will not change by trying again; a conflict about the offset
      // (409) or no answer at all will.
      if (e.status && e.status < 500 && e.status !== 409) throw e;
      failures += 1;
      if (failures > UPLOAD_RETRIES) throw e;
      show(offset, `connection lost, resuming in ${failures} s`);
      await new Promise((done) => setTimeout(done, 1000 * failures));
      resume = true;
    }
  }
  const artifact = await apiCall("POST", `${at}/finalize`);
  show(file.size, `uploaded, SHA-256 ${artifact.sha256}`);
  return artifact;
}

// `<div data-upload>`: a drop zone and a file input sharing one path (`start`); when the
// upload is done, the publish form next to it appears with the artifact's SHA-256 filled in.
function uploadWidget(widget) {
  const input = widget.querySelector("input[type=file]");
  const zone = widget.querySelector(".dropzone");
  const form = widget.parentElement.querySelector("form[name=publish]");
  const start = async (file) => {
    if (!file) return;
    input.disabled = true;
    try {
      const artifact = await uploadFile(widget, file);
      form.elements.artifact.value = artifact.sha256;
      form.hidden = false;
      form.elements.version.focus();
    } catch (e) {
      widget.querySelector(".upload-status").textContent = `Upload failed: ${e.message}`;
    } finally {
      input.disabled = false;
    }
  };
  input.addEventListener("change", () => start(input.files[0]));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    start(event.dataTransfer.files[0]);
  });
}

for (const widget of document.querySelectorAll("[data-upload]")) uploadWidget(widget);
