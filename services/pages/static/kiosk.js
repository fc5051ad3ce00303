// The front-desk kiosk. Check-ins and check-outs that cannot reach the server are kept in this browser's storage
// with their Idempotency-Key and sent again until the server answers: a retry of one that did arrive changes nothing.

import { $, api, el, isRetryable, localDate, newKey, say, tokenGate, when } from "./common.js";

const params = new URLSearchParams(location.search);
const IDLE_MS = 1000 * Number(params.get("idle") || 45);
const SYNC_MS = 1000 * Number(params.get("sync") || 20);
const QUEUE_KEY = "rcc.kiosk.queue";

const message = $("#message");
const syncState = $("#sync-state");
let token = null;
let today = { timezone: undefined, items: [] };
let flow = {};
let busy = false;

const gate = tokenGate("kiosk", (saved) => {
  token = saved;
  home();
  refreshToday();
  sync();
});

function signedOut() {
  token = null;
  show("setup");
  gate.rejected();
}

function show(id) {
  for (const screen of document.querySelectorAll("main > .screen, #home")) screen.hidden = screen.id !== id;
  const heading = $(`#${id} h2`);
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

function home() {
  flow = {};
  say(message, "");
  show("home");
}

// --- idle: back to the start, so the next person never sees the last one's screen ---------------------------------

let idleTimer;
function stillHere() {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    if (token && $("#home").hidden) home();
  }, IDLE_MS);
}
for (const type of ["pointerdown", "keydown", "input"]) document.addEventListener(type, stillHere, true);

// --- the offline queue ------------------------------------------------------------------------------------------

const queued = () => JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
const keep = (items) => localStorage.setItem(QUEUE_KEY, JSON.stringify(items));

function showQueue() {
  const count = queued().length;
  const noun = count === 1 ? "check-in" : "check-ins";
  say(syncState, count ? `${count} ${noun} saved, will sync` : "", "pending");
}

let syncing = false;
async function sync() {
  if (syncing || !token) return;
  syncing = true;
  let sent = 0;
  try {
    for (const item of queued()) {
      try {
        await api("checkin", "POST", item.path, { token, body: item.body, idempotencyKey: item.key });
        sent += 1;
      } catch (error) {
        if (isRetryable(error)) break;
        if (error.status === 401) {
          // Not a refusal of the check-in: this device needs its token again, then it is sent.
          signedOut();
          break;
        }
        say(message, `A saved ${item.what} could not be sent: ${explain(error)}`, "error");
      }
      keep(queued().filter((other) => other.key !== item.key));
    }
  } finally {
    syncing = false;
    showQueue();
    if (sent && !queued().length) say(syncState, "All saved check-ins are synced.", "ok");
  }
}
addEventListener("online", sync);
setInterval(sync, SYNC_MS);
showQueue();

async function submit(what, path, body, done) {
  if (busy) return;
  busy = true;
  const item = { key: newKey(), what, path, body, saved_at: new Date().toISOString() };
  try {
    const { body: result } = await api("checkin", "POST", path, { token, body, idempotencyKey: item.key });
    done(result);
  } catch (error) {
    if (isRetryable(error)) {
      keep([...queued(), item]);
      showQueue();
      finish("Saved, will sync", "The connection is down. This kiosk saved it and will send it when it is back.");
    } else if (error.status === 401) {
      signedOut();
    } else {
      say(message, explain(error), "error");
    }
  } finally {
    busy = false;
  }
}

function explain(error) {
  switch (error.code) {
    case "already_checked_in":
      return "You are already checked in. Welcome back!";
    case "member_not_found":
      return "We could not find that code. Please check it, or choose “New here?”.";
    case "not_checked_in":
      return "You are not checked in right now.";
    case "invalid_request":
      return "Please check the code and try again.";
    default:
      return error.problem?.title || error.message;
  }
}

function finish(title, text) {
  $("#done-title").textContent = title;
  $("#done-text").textContent = text;
  show("done-screen");
}

// --- today's groups and events ------------------------------------------------------------------------------------

async function refreshToday() {
  try {
    const { body } = await api("gatherings", "GET", "/upcoming", { token });
    today = body;
  } catch (error) {
    if (error.status === 401) signedOut();
    return;
  }
  const now = new Date();
  const date = localDate(today.timezone, now);
  const items = today.items.filter(
    (item) => !item.cancelled && new Date(item.ends_at) > now && localDate(today.timezone, new Date(item.starts_at)) === date,
  );
  today.todays = items;
  const list = $("#today-list");
  list.replaceChildren(
    ...items.map((item) =>
      el("li", {},
        el("span", { class: "time" }, when(item.starts_at, today.timezone, false)),
        el("span", { class: "title" }, item.title),
        el("span", { class: item.seats_left ? "seats" : "seats full" },
          item.seats_left ? `${item.seats_left} ${item.seats_left === 1 ? "seat" : "seats"} left` : "Full: waitlist"),
      ),
    ),
  );
  if (!items.length) list.append(el("li", { class: "muted" }, "No groups or events later today."));
}
setInterval(() => token && refreshToday(), 5 * 60 * 1000);

// --- the flows ----------------------------------------------------------------------------------------------------

for (const back of document.querySelectorAll(".back")) back.addEventListener("click", home);

$("#go-checkin").addEventListener("click", () => startCode("checkin"));
$("#go-checkout").addEventListener("click", () => startCode("checkout"));
$("#go-anonymous").addEventListener("click", () => {
  flow = { identity: { anonymous: true } };
  show("purpose-screen");
});
$("#go-register").addEventListener("click", () => {
  $("#nickname").value = "";
  show("register-screen");
  $("#nickname").focus();
});

function startCode(mode) {
  flow = { mode };
  $("#code").value = "";
  $("#code-title").textContent = mode === "checkout" ? "Check out: enter your code" : "Enter your code";
  show("code-screen");
  $("#code").focus();
}

$("#code").addEventListener("input", (event) => {
  event.target.value = event.target.value.toUpperCase().replace(/\s+/g, "");
});

$("#code-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const code = $("#code").value.trim();
  if (!code) return;
  if (flow.mode === "checkout") {
    submit("check-out", "/checkouts", { kiosk_code: code }, (result) =>
      finish("See you soon", `You are checked out after ${result.minutes} minutes. Take care!`),
    );
  } else {
    flow.identity = { kiosk_code: code };
    show("purpose-screen");
  }
});

const GATHERING_TYPES = { recovery_group: "session", sober_event: "event" };

for (const choice of document.querySelectorAll("[data-purpose]")) {
  choice.addEventListener("click", () => {
    const purpose = choice.dataset.purpose;
    const options = (today.todays || []).filter((item) => item.type === GATHERING_TYPES[purpose]);
    if (options.length) pickGathering(purpose, options);
    else checkIn(purpose);
  });
}

function pickGathering(purpose, options) {
  $("#gathering-choices").replaceChildren(
    ...options.map((item) =>
      el("button", { type: "button", onclick: () => checkIn(purpose, item.session_id || item.event_id) },
        `${when(item.starts_at, today.timezone, false)} · ${item.title}`),
    ),
    el("button", { type: "button", onclick: () => checkIn(purpose) }, "Something else"),
  );
  show("gathering-screen");
}

function checkIn(purpose, ref) {
  const body = { ...flow.identity, purpose };
  if (ref) body.ref = ref;
  const nickname = flow.nickname;
  submit("check-in", "/visits", body, () =>
    finish(nickname ? `Welcome, ${nickname}!` : "Welcome!", "You are checked in. Enjoy your time here."),
  );
}

$("#register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (busy) return;
  busy = true;
  const nickname = $("#nickname").value.trim();
  try {
    // Not queued when offline: the code comes from the server. The key makes a double tap register once.
    const { body } = await api("checkin", "POST", "/members", {
      token,
      body: nickname ? { nickname } : {},
      idempotencyKey: newKey(),
    });
    flow = { identity: { kiosk_code: body.kiosk_code }, nickname: nickname || null };
    $("#new-code").textContent = body.kiosk_code;
    show("new-code-screen");
  } catch (error) {
    if (error.status === 401) signedOut();
    else if (isRetryable(error)) say(message, "We cannot register anyone right now. Please try again in a moment.", "error");
    else say(message, explain(error), "error");
  } finally {
    busy = false;
  }
});

$("#checkin-new").addEventListener("click", () => show("purpose-screen"));
