// The Switchboard demo page: connect with a token, watch what arrives, publish a test message.
import { connect } from "/vendor/switchboard-client.js";

const $ = (id) => document.getElementById(id);
let client = null;
let devTools = false;
let identity = { user: "", site: "" };
// Set when the person pressed Disconnect: that is a choice, not an error.
let closedOnPurpose = false;
let onlineTimer = null;

function showError(error) {
  const box = $("error");
  box.hidden = !error;
  box.textContent = error ? `${error.code}: ${error.message}` : "";
  box.dataset.code = error ? error.code : "";
}

function badgeText(state) {
  if (state.status === "connected") return "connected";
  if (state.status === "connecting") return "connecting…";
  if (closedOnPurpose) return "disconnected";
  // A kick's reason is the server's words; the registry's own message adds nothing to "kicked".
  if (state.code === "kicked") return state.reason && !/^The server disconnected/.test(state.reason) ? `kicked: ${state.reason}` : "kicked";
  return state.code ? `disconnected (${state.code})` : `disconnected: ${state.reason}`;
}

function showState(state) {
  const badge = $("state");
  badge.dataset.status =
    state.status === "disconnected" && closedOnPurpose
      ? "closed"
      : state.status === "disconnected" && state.code === "kicked"
        ? "kicked"
        : state.status;
  badge.textContent = badgeText(state);
  $("node").textContent = state.status === "connected" ? `node ${state.welcome.node}` : "";
  $("disconnect").hidden = state.status === "disconnected";
  if (state.status !== "connected") {
    $("socket-id").textContent = "–";
    $("rooms").replaceChildren();
    watchOnline(null);
  }
}

function showWelcome(welcome) {
  // A new session: what the last one said about publishing is no longer news.
  $("send-status").textContent = "";
  $("user").textContent = welcome.user;
  $("site").textContent = welcome.site ?? "–";
  $("socket-id").textContent = welcome.id;
  $("rooms").replaceChildren(...welcome.rooms.map((room) => Object.assign(document.createElement("li"), { textContent: room })));
  const roomInput = document.querySelector("#send-form [name=room]");
  if (!roomInput.dataset.edited) roomInput.value = welcome.rooms[0];
  watchOnline(welcome.site);
}

/** Lists the site's online users through the development endpoint, while connected with a site. */
function watchOnline(site) {
  clearInterval(onlineTimer);
  onlineTimer = null;
  const list = $("online");
  const hint = $("online-hint");
  list.replaceChildren();
  if (!site || !devTools) {
    hint.textContent = !site ? "–" : "needs a development node";
    return;
  }
  const refresh = async () => {
    const response = await fetch(`/dev/presence/sites/${encodeURIComponent(site)}?limit=50`).catch(() => null);
    if (!response?.ok) return;
    const { users, count } = await response.json();
    list.replaceChildren(...users.map((user) => Object.assign(document.createElement("li"), { textContent: user })));
    hint.textContent = count > users.length ? `and ${count - users.length} more` : "";
  };
  refresh();
  onlineTimer = setInterval(refresh, 2000);
}

function showMessage(event, args) {
  const item = document.createElement("li");
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.append(new Date().toLocaleTimeString(), " · ", Object.assign(document.createElement("b"), { textContent: event }));
  const body = document.createElement("pre");
  body.textContent = JSON.stringify(args.length === 1 ? args[0] : args, null, 2);
  item.append(meta, body);
  item.dataset.event = event;
  $("messages").prepend(item);
  $("no-messages").hidden = true;
}

async function devToken() {
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(identity),
  });
  const body = await response.json();
  if (!response.ok) throw Object.assign(new Error(body.message), { code: body.code });
  return body.token;
}

function start(options) {
  client?.close();
  closedOnPurpose = false;
  showError(null);
  $("send-status").textContent = "";
  client = connect({ url: location.origin, ...options });
  client.on("state", showState);
  client.on("welcome", showWelcome);
  client.on("error", showError);
  client.on("kicked", (body) => showMessage("kicked", [body]));
  // Every application event, whatever its name.
  client.socket.onAny((event, ...args) => {
    if (!["welcome", "authenticated", "unauthorized", "token_expiring", "kicked", "error", "reconnect", "configured"].includes(event))
      showMessage(event, args);
  });
  showState({ status: "connecting" });
}

$("dev-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  identity = { user: String(form.get("user")).trim(), site: String(form.get("site")).trim() };
  start({ getToken: devToken });
});

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = String(new FormData(event.target).get("token")).trim();
  start({ token });
});

$("disconnect").addEventListener("click", () => {
  closedOnPurpose = true;
  client?.close();
  if (client) showState(client.state);
});
$("clear").addEventListener("click", () => {
  $("messages").replaceChildren();
  $("no-messages").hidden = false;
});
document.querySelector("#send-form [name=room]").addEventListener("input", (event) => {
  event.target.dataset.edited = "1";
});
const dataField = document.querySelector("#send-form [name=data]");
function showDataError(message) {
  const box = $("data-error");
  box.hidden = !message;
  box.textContent = message ?? "";
  dataField.setAttribute("aria-invalid", message ? "true" : "false");
}
dataField.addEventListener("input", () => showDataError(null));

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (response.ok) return null;
  const error = await response.json().catch(() => ({}));
  return `${error.code ?? response.status}: ${error.message ?? response.statusText}`;
}

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const status = $("send-status");
  let data;
  try {
    const text = String(form.get("data")).trim();
    data = text === "" ? null : JSON.parse(text);
  } catch (error) {
    showDataError(`Data is not valid JSON: ${error.message}. Nothing was published.`);
    status.textContent = "";
    dataField.focus();
    return;
  }
  showDataError(null);
  const failure = await post("/dev/publish", { room: form.get("room"), event: form.get("event"), data });
  status.textContent = failure ?? `Published to ${form.get("room")} at ${new Date().toLocaleTimeString()}.`;
});

$("kick").addEventListener("click", async () => {
  const user = client?.state.status === "connected" ? client.state.welcome.user : identity.user;
  const failure = await post("/dev/kick", { user, reason: "kicked from the demo page" });
  $("send-status").textContent = failure ?? `Kicked user ${user}.`;
});

// The node says whether it offers development endpoints (/healthz answers on every node, so a
// production node shows no failed request); without them the page asks for a token instead.
const health = await fetch("/healthz")
  .then((response) => response.json())
  .catch(() => ({}));
devTools = health.devTools === true;
$("dev-form").hidden = !devTools;
$("token-form").hidden = devTools;
for (const element of document.querySelectorAll("#send-form button, #send-form input, #send-form textarea")) element.disabled = !devTools;
if (!devTools) $("send-status").textContent = "Publishing from this page needs a development node (DEV_TOKENS=1).";
