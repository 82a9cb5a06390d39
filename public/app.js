// The Switchboard demo page: connect with a token, watch what arrives, publish a test message.
import { connect } from "/vendor/switchboard-client.js";

const $ = (id) => document.getElementById(id);
let client = null;
let devTools = false;
let identity = { user: "", site: "" };

function showError(error) {
  const box = $("error");
  box.hidden = !error;
  box.textContent = error ? `${error.code}: ${error.message}` : "";
  box.dataset.code = error ? error.code : "";
}

function showState(state) {
  const badge = $("state");
  const status = state.status === "disconnected" && state.code === "kicked" ? "kicked" : state.status;
  badge.dataset.status = status;
  badge.textContent =
    state.status === "connected" ? "connected"
    : state.status === "connecting" ? "connecting…"
    : state.code ? `${status} (${state.code})` : `disconnected: ${state.reason}`;
  $("node").textContent = state.status === "connected" ? `node ${state.welcome.node}` : "";
  $("disconnect").hidden = state.status === "disconnected";
  if (state.status !== "connected") {
    $("socket-id").textContent = "–";
    $("rooms").replaceChildren();
  }
}

function showWelcome(welcome) {
  $("user").textContent = welcome.user;
  $("site").textContent = welcome.site ?? "–";
  $("socket-id").textContent = welcome.id;
  $("rooms").replaceChildren(...welcome.rooms.map((room) => Object.assign(document.createElement("li"), { textContent: room })));
  const roomInput = document.querySelector("#send-form [name=room]");
  if (!roomInput.dataset.edited) roomInput.value = welcome.rooms[0];
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
  showError(null);
  client = connect({ url: location.origin, ...options });
  client.on("state", showState);
  client.on("welcome", showWelcome);
  client.on("error", showError);
  client.on("kicked", (body) => showMessage("kicked", [body]));
  // Every application event, whatever its name.
  client.socket.onAny((event, ...args) => {
    if (!["welcome", "authenticated", "unauthorized", "token_expiring", "kicked"].includes(event)) showMessage(event, args);
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

$("disconnect").addEventListener("click", () => client?.close());
$("clear").addEventListener("click", () => {
  $("messages").replaceChildren();
  $("no-messages").hidden = false;
});
document.querySelector("#send-form [name=room]").addEventListener("input", (event) => {
  event.target.dataset.edited = "1";
});

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
  } catch {
    status.textContent = "Data is not valid JSON.";
    return;
  }
  const failure = await post("/dev/publish", { room: form.get("room"), event: form.get("event"), data });
  status.textContent = failure ?? `Published to ${form.get("room")} at ${new Date().toLocaleTimeString()}.`;
});

$("kick").addEventListener("click", async () => {
  const user = client?.state.status === "connected" ? client.state.welcome.user : identity.user;
  const failure = await post("/dev/kick", { user });
  $("send-status").textContent = failure ?? `Kicked user ${user}.`;
});

// Development nodes offer /dev; production nodes answer 404 and the page asks for a token instead.
const dev = await fetch("/dev").catch(() => null);
devTools = dev?.ok === true;
$("dev-form").hidden = !devTools;
$("token-form").hidden = devTools;
for (const element of document.querySelectorAll("#send-form button, #send-form input, #send-form textarea")) element.disabled = !devTools;
if (!devTools) $("send-status").textContent = "Publishing from this page needs a development node (DEV_TOKENS=1).";
