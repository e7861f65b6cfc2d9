// strom Connect console: renders views from the public Connect REST API (same origin) with
// fetch. No framework and no build step; every value from the API goes into the page as text
// (textContent), never as HTML, because connector names, configs and traces are user data.
"use strict";

const REFRESH_MS = 5000;
const view = document.getElementById("view");
let refreshTimer = null;
// The detail view's restart options; kept here because the periodic refresh rebuilds the view.
const restartOptions = { includeTasks: false, onlyFailed: false };

// ---- REST calls

// An error from the API: its {"error_code", "message"} body, or the HTTP status if it had none.
class ApiError extends Error {
  constructor(status, body) {
    const code = body && body.error_code !== undefined ? body.error_code : status;
    const message = body && body.message ? body.message : `HTTP ${status}`;
    super(`${code}: ${message}`);
    this.code = code;
  }
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch (_) { json = null; }
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

const enc = encodeURIComponent;
const connectorPath = (name) => `/connectors/${enc(name)}`;

// ---- DOM helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (k === "text") e.textContent = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function stateBadge(state) {
  return el("span", { class: `state state-${state || "UNKNOWN"}`, text: state || "UNKNOWN" });
}

function showError(err) {
  const box = document.getElementById("error");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

function showNotice(msg) {
  document.getElementById("error").hidden = true;
  const box = document.getElementById("notice");
  box.textContent = msg;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 4000);
}

function clearMessages() {
  document.getElementById("error").hidden = true;
}

// Runs an action, reports its outcome, then re-renders the current view.
async function act(label, fn) {
  try {
    await fn();
    showNotice(`${label}: done`);
  } catch (e) {
    showError(e);
  }
  render();
}

function actionButton(action, name, label, fn) {
  return el("button", { "data-action": action, "data-connector": name, onclick: () => act(`${label} ${name}`, fn) }, label);
}

function connectorActions(name) {
  return [
    actionButton("pause", name, "Pause", () => api("PUT", `${connectorPath(name)}/pause`)),
    actionButton("resume", name, "Resume", () => api("PUT", `${connectorPath(name)}/resume`)),
    actionButton("stop", name, "Stop", () => api("PUT", `${connectorPath(name)}/stop`)),
    actionButton("restart", name, "Restart", () => api("POST", `${connectorPath(name)}/restart`)),
    el("button", {
      "data-action": "delete", "data-connector": name,
      onclick: () => {
        if (!confirm(`Delete connector ${name}?`)) return;
        act(`Delete ${name}`, async () => {
          await api("DELETE", connectorPath(name));
          location.hash = "#/";
        });
      },
    }, "Delete"),
  ];
}

// ---- Kafka .properties text (java.util.Properties rules: comments, continuations, escapes)

function parseProperties(text) {
  const out = {};
  const raw = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < raw.length; i++) {
    let line = raw[i].replace(/^[ \t\f]+/, "");
    if (line === "" || line[0] === "#" || line[0] === "!") continue;
    // A line ending in an odd number of backslashes continues on the next one.
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < raw.length) {
      line = line.slice(0, -1) + raw[++i].replace(/^[ \t\f]+/, "");
    }
    let k = 0;
    while (k < line.length && !"=: \t\f".includes(line[k])) k += line[k] === "\\" ? 2 : 1;
    const key = line.slice(0, k);
    let rest = line.slice(k).replace(/^[ \t\f]*/, "");
    if (rest[0] === "=" || rest[0] === ":") rest = rest.slice(1).replace(/^[ \t\f]*/, "");
    out[unescapeProperty(key)] = unescapeProperty(rest);
  }
  return out;
}

function unescapeProperty(s) {
  return s.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, c) => {
    if (c[0] === "u" && c.length === 5) return String.fromCharCode(parseInt(c.slice(1), 16));
    return { t: "\t", n: "\n", r: "\r", f: "\f" }[c] || c;
  });
}

// {"name", "config"} or a flat config with "name" in it, from the editor's text.
function parseConnectorText(text, format) {
  let name, config;
  if (format === "properties") {
    config = parseProperties(text);
    name = config.name;
  } else {
    let v;
    try { v = JSON.parse(text); } catch (e) { throw new Error(`Not valid JSON: ${e.message}`); }
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("Expected a JSON object");
    if (v.config && typeof v.config === "object") {
      config = v.config;
      name = v.name || config.name;
    } else {
      config = v;
      name = v.name;
    }
  }
  if (!name) throw new Error('The connector needs a "name"');
  const strings = {};
  for (const [k, val] of Object.entries(config)) strings[k] = val === null ? null : String(val);
  strings.name = name;
  return { name, config: strings };
}

// ---- Validation: PUT /connector-plugins/{class}/config/validate, per-field errors shown

async function validate(config, target) {
  target.replaceChildren();
  const cls = config["connector.class"];
  if (!cls) throw new Error('The config needs "connector.class" to be validated');
  const res = await api("PUT", `/connector-plugins/${enc(cls)}/config/validate`, config);
  const bad = (res.configs || []).filter((c) => c.value && c.value.errors && c.value.errors.length);
  if (res.error_count === 0) {
    target.append(el("p", { class: "notice", text: "Validation: no errors." }));
    return true;
  }
  target.append(
    el("p", { class: "error", text: `Validation: ${res.error_count} error(s).` }),
    el("table", { class: "field-errors" },
      el("tr", {}, el("th", { text: "Field" }), el("th", { text: "Value" }), el("th", { text: "Errors" })),
      bad.map((c) => el("tr", {},
        el("td", { class: "key", text: c.value.name }),
        el("td", { text: c.value.value === null || c.value.value === undefined ? "" : c.value.value }),
        el("td", {}, c.value.errors.map((m) => el("div", { text: m })))))),
  );
  return false;
}

// ---- Views

async function renderList() {
  const data = await api("GET", "/connectors?expand=status&expand=info");
  const names = Object.keys(data).sort();
  const rows = names.map((name) => {
    const st = data[name].status || {};
    const info = data[name].info || {};
    const tasks = st.tasks || [];
    return el("tr", { "data-connector": name },
      el("td", {}, el("a", { href: `#/connectors/${enc(name)}`, text: name })),
      el("td", { text: info.type || st.type || "" }),
      el("td", { text: (info.config || {})["connector.class"] || "" }),
      el("td", { class: "connector-state" }, stateBadge(st.connector && st.connector.state)),
      el("td", {}, tasks.length ? tasks.map((t) => el("span", { title: `task ${t.id} on ${t.worker_id}` }, `${t.id} `, stateBadge(t.state), " ")) : el("span", { class: "muted", text: "none" })),
      el("td", {}, connectorActions(name)));
  });
  view.replaceChildren(
    el("h2", { text: `Connectors (${names.length})` }),
    names.length
      ? el("table", { id: "connectors" },
        el("tr", {}, ["Name", "Type", "Class", "State", "Tasks", "Actions"].map((h) => el("th", { text: h }))),
        rows)
      : el("p", { class: "muted" }, "No connectors yet. ", el("a", { href: "#/new", text: "Create one." })),
  );
}

// Fetches one part of the detail view; a failing part shows its error in place.
async function part(path, show) {
  try {
    return show(await api("GET", path));
  } catch (e) {
    return el("p", { class: "error", text: e.message });
  }
}

async function renderDetail(name) {
  const base = connectorPath(name);
  const status = await api("GET", `${base}/status`);
  const option = (key, id) => {
    const box = el("input", { type: "checkbox", id, checked: restartOptions[key] });
    box.addEventListener("change", () => { restartOptions[key] = box.checked; });
    return box;
  };
  const includeTasks = option("includeTasks", "include-tasks");
  const onlyFailed = option("onlyFailed", "only-failed");
  const restartWith = el("button", {
    "data-action": "restart-with", "data-connector": name,
    onclick: () => act(`Restart ${name}`, () => api("POST",
      `${base}/restart?includeTasks=${includeTasks.checked}&onlyFailed=${onlyFailed.checked}`)),
  }, "Restart with options");
  const c = status.connector || {};
  const [config, tasks, topics, offsets] = await Promise.all([
    part(`${base}/config`, (cfg) => el("pre", { id: "config", text: JSON.stringify(cfg, null, 2) })),
    part(`${base}/tasks`, (list) => list),
    part(`${base}/topics`, (t) => el("p", { id: "topics", text: ((t[name] || {}).topics || []).join(", ") || "none" })),
    part(`${base}/offsets`, (o) => el("pre", { id: "offsets", text: JSON.stringify(o.offsets || [], null, 2) })),
  ]);
  const taskConfigs = Array.isArray(tasks) ? tasks : [];
  const taskRows = (status.tasks || []).map((t) => {
    const tc = taskConfigs.find((x) => x.id && x.id.task === t.id);
    return el("tr", { "data-task": t.id },
      el("td", { text: t.id }),
      el("td", {}, stateBadge(t.state)),
      el("td", { text: t.worker_id || "" }),
      el("td", {}, t.trace ? el("pre", { class: "trace", text: t.trace }) : "",
        tc ? el("details", {}, el("summary", { text: "config" }), el("pre", { text: JSON.stringify(tc.config, null, 2) })) : ""),
      el("td", {}, el("button", {
        "data-action": "restart-task", "data-connector": name, "data-task": t.id,
        onclick: () => act(`Restart task ${name}-${t.id}`, () => api("POST", `${base}/tasks/${t.id}/restart`)),
      }, "Restart task")));
  });
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/", text: "← all connectors" })),
    el("h2", {}, `${name} `, stateBadge(c.state), el("span", { class: "muted", text: ` ${status.type || ""} on ${c.worker_id || "?"}` })),
    c.trace ? el("pre", { class: "trace", text: c.trace }) : "",
    el("div", {}, connectorActions(name), " ", restartWith,
      el("label", {}, includeTasks, " includeTasks "), el("label", {}, onlyFailed, " onlyFailed "),
      el("a", { href: `#/connectors/${enc(name)}/edit` }, el("button", { text: "Edit config" }))),
    el("h2", { text: "Tasks" }),
    taskRows.length
      ? el("table", { id: "tasks" }, el("tr", {}, ["Id", "State", "Worker", "Details", ""].map((h) => el("th", { text: h }))), taskRows)
      : el("p", { class: "muted", text: "No tasks." }),
    Array.isArray(tasks) ? "" : tasks,
    el("h2", { text: "Active topics" }), topics,
    el("h2", { text: "Offsets" }), offsets,
    el("h2", { text: "Config" }), config,
  );
}

// The editor for a new connector (name === null) or for an existing one's config.
function renderEditor(name, initialText) {
  const format = el("select", { id: "format" },
    el("option", { value: "json", text: "JSON" }), el("option", { value: "properties", text: ".properties" }));
  const text = el("textarea", { id: "editor", spellcheck: "false" });
  text.value = initialText;
  const results = el("div", { id: "validation" });
  const read = () => {
    const parsed = parseConnectorText(text.value, format.value);
    if (name !== null && parsed.name !== name) throw new Error(`The name must stay ${name}`);
    return parsed;
  };
  const run = async (submit) => {
    clearMessages();
    try {
      const parsed = read();
      const ok = await validate(parsed.config, results);
      if (!ok || !submit) return;
      if (name === null) await api("POST", "/connectors", parsed);
      else await api("PUT", `${connectorPath(name)}/config`, parsed.config);
      showNotice(`${name === null ? "Created" : "Updated"} ${parsed.name}`);
      location.hash = `#/connectors/${enc(parsed.name)}`;
    } catch (e) {
      showError(e);
    }
  };
  view.replaceChildren(
    el("h2", { text: name === null ? "New connector" : `Edit ${name}` }),
    el("p", { class: "muted" }, name === null
      ? 'JSON as for POST /connectors ({"name": ..., "config": {...}}), a flat JSON config with "name", or Kafka .properties text.'
      : "The connector's config as JSON (or .properties text); saved with PUT /connectors/{name}/config."),
    el("label", {}, "Format: ", format),
    text,
    el("div", {},
      el("button", { id: "validate", onclick: () => run(false) }, "Validate"),
      el("button", { id: "submit", onclick: () => run(true) }, name === null ? "Validate and create" : "Validate and save")),
    results,
  );
}

async function renderEdit(name) {
  const cfg = await api("GET", `${connectorPath(name)}/config`);
  renderEditor(name, JSON.stringify(cfg, null, 2));
}

async function renderPlugins() {
  const list = await api("GET", "/connector-plugins?connectorsOnly=false");
  view.replaceChildren(
    el("h2", { text: `Plugins (${list.length})` }),
    el("table", { id: "plugins" },
      el("tr", {}, ["Class", "Type", "Version"].map((h) => el("th", { text: h }))),
      list.map((p) => el("tr", {}, el("td", { text: p.class }), el("td", { text: p.type }), el("td", { text: p.version || "" })))),
  );
}

async function renderWorker() {
  try {
    const w = await api("GET", "/");
    document.getElementById("worker").textContent =
      `worker ${w.version} (${w.commit}), Kafka cluster ${w.kafka_cluster_id || "unknown"}`;
  } catch (e) {
    document.getElementById("worker").textContent = `worker unreachable: ${e.message}`;
  }
}

// ---- Routing (#/, #/connectors/NAME, #/connectors/NAME/edit, #/new, #/plugins)

function route() {
  const h = location.hash.replace(/^#/, "") || "/";
  let m;
  if ((m = h.match(/^\/connectors\/([^/]+)\/edit$/))) return { view: "edit", name: decodeURIComponent(m[1]) };
  if ((m = h.match(/^\/connectors\/([^/]+)$/))) return { view: "detail", name: decodeURIComponent(m[1]) };
  if (h === "/new") return { view: "new" };
  if (h === "/plugins") return { view: "plugins" };
  return { view: "list" };
}

async function render() {
  const r = route();
  try {
    if (r.view === "detail") await renderDetail(r.name);
    else if (r.view === "edit") await renderEdit(r.name);
    else if (r.view === "new") renderEditor(null, JSON.stringify({ name: "", config: { "connector.class": "", "tasks.max": "1" } }, null, 2));
    else if (r.view === "plugins") await renderPlugins();
    else await renderList();
  } catch (e) {
    showError(e);
  }
}

// Editors are not refreshed: that would throw away what the user is typing.
function refresh() {
  renderWorker();
  const v = route().view;
  if (v !== "new" && v !== "edit") render();
}

function schedule() {
  clearInterval(refreshTimer);
  if (document.getElementById("auto-refresh").checked) refreshTimer = setInterval(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", () => { clearMessages(); render(); });
document.getElementById("auto-refresh").addEventListener("change", schedule);
renderWorker();
render();
schedule();
