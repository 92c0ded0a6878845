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
  const hasBody = method !== "GET" && method !== "DELETE" && Object.keys(fields).length > 0;
  showError(form, "");
  const button = form.querySelector("[type=submit]");
  if (button) button.disabled = true;
  try {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: hasBody ? { "content-type": "application/json" } : {},
      body: hasBody ? JSON.stringify(fields) : undefined,
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const code = answer.error ? ` (${answer.error})` : "";
      showError(form, (answer.message || response.statusText) + code);
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
