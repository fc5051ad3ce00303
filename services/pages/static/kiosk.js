// The front-desk kiosk. A check-in or check-out that cannot reach the server is kept in this device's IndexedDB with
// its Idempotency-Key and the time of the tap (this clock, corrected by the server's Date header) and sent again
// until the server answers: a retry of one that did arrive changes nothing, and one that did not is recorded at the
// time it was made. The page and its files come from the service worker's cache, so it starts with no network.

import { $, api, el, isRetryable, localDate, newKey, say, tokenGate } from "./common.js";
import { formatDateTime, formatNumber, preferredLanguage, t, translateDocument, useLanguage } from "./i18n.js";

const PAGE = "kiosk";
const params = new URLSearchParams(location.search);
const IDLE_MS = 1000 * Number(params.get("idle") || 45);
// Retries after a failure wait 1 s, then twice as long each time, up to this.
const SYNC_MS = 1000 * Number(params.get("sync") || 20);
const FIRST_RETRY_MS = Math.min(1000, SYNC_MS);
const SKEW_KEY = "rcc.kiosk.skew";
const OLD_QUEUE_KEY = "rcc.kiosk.queue";
const LANGUAGE_NAMES = { en: "English", es: "Español" };

const message = $("#message");
const syncState = $("#sync-state");
const languageButton = $("#language");
let token = null;
let today = { timezone: undefined, items: [], todays: [] };
let flow = {};
let busy = false;

// --- words: what is on screen is drawn again when the language changes ------------------------------------------

const drawn = new Map(); // region → [draw, kind]
function tell(region, draw, kind = "info") {
  if (draw) drawn.set(region, [draw, kind]);
  else drawn.delete(region);
  say(region, draw ? draw() : "", kind);
}

// The language the kiosk starts in (this device's choice, else the browser's); a visitor's switch lasts until the
// kiosk goes back to its start screen for the next person.
const kioskLanguage = preferredLanguage();
async function speak(language, { remember = false } = {}) {
  try {
    await useLanguage(PAGE, language, { remember });
  } catch (error) {
    console.error("kiosk: the catalogue did not load", error);
    return;
  }
  const other = language === "es" ? "en" : "es";
  languageButton.textContent = LANGUAGE_NAMES[other];
  languageButton.lang = other;
  for (const [region, [draw, kind]] of drawn) say(region, draw(), kind);
  drawToday();
}
languageButton.addEventListener("click", () => speak(document.documentElement.lang === "es" ? "en" : "es"));
$("#keep-language").addEventListener("click", async () => {
  await speak(document.documentElement.lang, { remember: true });
  tell(message, () => t("This kiosk will start in this language."), "ok");
});

// --- the server's clock: the time of a tap is sent in the server's time ------------------------------------------

let skewMs = Number(localStorage.getItem(SKEW_KEY)) || 0;
const serverNow = () => new Date(Date.now() + skewMs);

// Date has whole seconds: the server's time was within [Date, Date + 1 s) halfway through the round trip.
function learnSkew(response, sentAt, receivedAt) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  skewMs = Math.round(date + 500 - (sentAt + receivedAt) / 2);
  localStorage.setItem(SKEW_KEY, String(skewMs));
}

async function call(service, method, path, options) {
  const sentAt = Date.now();
  const result = await api(service, method, path, { token, ...options });
  learnSkew(result.response, sentAt, Date.now());
  return result;
}

// --- the token, screens and the idle return -----------------------------------------------------------------------

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
  tell(message, null);
  show("home");
}

let idleTimer;
function stillHere() {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    if (!token) return;
    if (!$("#home").hidden && document.documentElement.lang === kioskLanguage) return;
    home();
    if (document.documentElement.lang !== kioskLanguage) speak(kioskLanguage);
    updateWhenIdle();
  }, IDLE_MS);
}
for (const type of ["pointerdown", "keydown", "input"]) document.addEventListener(type, stillHere, true);

// --- the queue, in IndexedDB (kept across reloads and reboots) ------------------------------------------------------

let opened;
function database() {
  opened ||= new Promise((resolve, reject) => {
    const request = indexedDB.open("rcc-kiosk", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("queue", { keyPath: "id", autoIncrement: true });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

async function inQueue(mode, act) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction("queue", mode);
    const request = act(tx.objectStore("queue"));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}
const queued = () => inQueue("readonly", (store) => store.getAll());
const enqueue = (item) => inQueue("readwrite", (store) => store.add(item));
const dequeue = (id) => inQueue("readwrite", (store) => store.delete(id));

// "Forget this device" takes the queue with it: who came and when is not left on a device given up. Check-ins not
// yet sent are lost then, so the person is asked first.
async function forgetQueue() {
  const count = (await queued()).length;
  const question = count === 1
    ? t("1 saved check-in has not been sent yet. Forgetting this device deletes it. Forget this device anyway?")
    : t("{count} saved check-ins have not been sent yet. Forgetting this device deletes them. Forget this device anyway?", { count: formatNumber(count) });
  if (count && !confirm(question)) return false;
  (await database()).close();
  opened = undefined;
  await new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase("rcc-kiosk");
    request.onsuccess = resolve;
    // Another tab still has it open: the deletion waits for that one to close (a reload does), and nothing can
    // read the queue meanwhile; this page goes on.
    request.onblocked = resolve;
    request.onerror = () => reject(request.error);
  });
  return true;
}

// A kiosk updated with check-ins still in its old (localStorage) queue sends them too, at the time they were saved.
async function adoptOldQueue() {
  const old = JSON.parse(localStorage.getItem(OLD_QUEUE_KEY) || "[]");
  for (const item of old) await enqueue({ ...item, body: { ...item.body, occurred_at: item.saved_at } });
  localStorage.removeItem(OLD_QUEUE_KEY);
}

async function showQueue(sent = 0) {
  const count = (await queued()).length;
  if (count === 1) tell(syncState, () => t("1 check-in saved — it will be sent when we're back online"), "pending");
  else if (count) {
    tell(syncState, () => t("{count} check-ins saved — they'll be sent when we're back online", { count: formatNumber(count) }), "pending");
  } else tell(syncState, sent ? () => t("All saved check-ins are sent.") : null, "ok");
}

let syncing = false;
let retryIn = FIRST_RETRY_MS;
let retryTimer;
async function sync() {
  clearTimeout(retryTimer);
  if (syncing || !token) return;
  syncing = true;
  let sent = 0;
  let waiting = false;
  try {
    for (const item of await queued()) {
      try {
        await call("checkin", "POST", item.path, { body: item.body, idempotencyKey: item.key });
        sent += 1;
      } catch (error) {
        if (isRetryable(error)) {
          waiting = true;
          break;
        }
        if (error.status === 401) {
          // Not a refusal of the check-in: this device needs its token again, then it is sent.
          signedOut();
          break;
        }
        const why = explain(error);
        tell(message, () => (item.what === "check-out" ? t("A saved check-out could not be sent: {why}", { why: why() }) : t("A saved check-in could not be sent: {why}", { why: why() })), "error");
      }
      await dequeue(item.id);
    }
  } finally {
    syncing = false;
    await showQueue(sent);
  }
  if (waiting) {
    retryTimer = setTimeout(sync, retryIn);
    retryIn = Math.min(retryIn * 2, SYNC_MS);
  } else retryIn = FIRST_RETRY_MS;
}
// Back online: at once, and the waits start short again.
addEventListener("online", () => {
  retryIn = FIRST_RETRY_MS;
  sync();
});

async function submit(what, path, body, done, saved) {
  if (busy) return;
  busy = true;
  const tappedAt = serverNow().toISOString();
  const key = newKey();
  try {
    const { body: result } = await call("checkin", "POST", path, { body, idempotencyKey: key });
    done(result);
  } catch (error) {
    if (isRetryable(error)) {
      await enqueue({ key, what, path, body: { ...body, occurred_at: tappedAt } });
      saved();
      await showQueue();
      retryTimer = setTimeout(sync, retryIn);
    } else if (error.status === 401) {
      signedOut();
    } else {
      const why = explain(error);
      tell(message, why, "error");
    }
  } finally {
    busy = false;
  }
}

// What went wrong, in words (never a code), as a function so it is said again in a newly chosen language.
function explain(error) {
  switch (error.code) {
    case "already_checked_in":
      return () => t("You are already checked in. Welcome back!");
    case "member_not_found":
      return () => t("We could not find that code. Please check it, or choose “New here?”.");
    case "not_checked_in":
    case "already_checked_out":
    case "visit_not_found":
      return () => t("You are not checked in right now.");
    case "invalid_input":
    case "invalid_request":
      return () => t("Please check the code and try again.");
    case "occurred_in_future":
    case "occurred_too_long_ago":
    case "occurred_before_closing":
      return () => t("It was saved too long ago, or this kiosk's clock is wrong; please tell the front desk.");
    case "rate_limited":
      return () => t("Too many tries. Please wait a minute and try again.");
    default:
      console.error("kiosk: refused", error.status, error.code);
      return () => t("Something went wrong. Please ask someone at the front desk.");
  }
}

function finish(title, text) {
  tell($("#done-title"), title);
  tell($("#done-text"), text);
  show("done-screen");
}

// --- today's groups and events ------------------------------------------------------------------------------------

async function refreshToday() {
  try {
    const { body } = await call("gatherings", "GET", "/upcoming");
    today = body;
  } catch (error) {
    if (error.status === 401) signedOut();
    return;
  }
  const now = new Date();
  const date = localDate(today.timezone, now);
  today.todays = today.items.filter(
    (item) => !item.cancelled && new Date(item.ends_at) > now && localDate(today.timezone, new Date(item.starts_at)) === date,
  );
  drawToday();
}
setInterval(() => token && refreshToday(), 5 * 60 * 1000);

const clock = (iso) => formatDateTime(iso, { timeZone: today.timezone, hour: "numeric", minute: "2-digit" });

function drawToday() {
  const items = today.todays || [];
  const list = $("#today-list");
  list.replaceChildren(
    ...items.map((item) =>
      el("li", {},
        el("span", { class: "time" }, clock(item.starts_at)),
        " ",
        el("span", { class: "title" }, item.title),
        " ",
        el("span", { class: item.seats_left ? "seats" : "seats full" },
          item.seats_left === 1
            ? t("1 seat left")
            : item.seats_left
              ? t("{count} seats left", { count: formatNumber(item.seats_left) })
              : t("Full: waitlist")),
      ),
    ),
  );
  if (!items.length) list.append(el("li", { class: "muted" }, t("No groups or events later today.")));
}

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
  const title = $("#code-title");
  title.dataset.i18n = mode === "checkout" ? "Check out: enter your code" : "Enter your code";
  translateDocument(title.parentElement);
  show("code-screen");
  $("#code").focus();
}

$("#code").addEventListener("input", (event) => {
  event.target.value = event.target.value.toUpperCase().replace(/\s+/g, "");
});

// A wrong code is said at once, before the visitor picks why they came. Offline, the check-in goes on and the
// server says it when the queue is sent.
async function codeIsUnknown(code) {
  try {
    const { body } = await call("checkin", "POST", "/code-checks", { body: { kiosk_code: code } });
    return !body.exists;
  } catch (error) {
    if (error.status === 401) signedOut();
    return false;
  }
}

$("#code-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = $("#code").value.trim();
  if (!code || busy) return;
  if (flow.mode === "checkout") {
    submit(
      "check-out",
      "/checkouts",
      { kiosk_code: code },
      (result) => finish(() => t("See you soon"), () => t("You are checked out after {minutes} minutes. Take care!", { minutes: formatNumber(result.minutes) })),
      () => finish(() => t("See you soon"), () => t("You are checked out. Take care!")),
    );
    return;
  }
  busy = true;
  const unknown = await codeIsUnknown(code).finally(() => (busy = false));
  if (unknown) {
    tell(message, () => t("We could not find that code. Please check it, or choose “New here?”."), "error");
    $("#code").focus();
    return;
  }
  tell(message, null);
  flow.identity = { kiosk_code: code };
  show("purpose-screen");
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
        `${clock(item.starts_at)} · ${item.title}`),
    ),
    el("button", { type: "button", onclick: () => checkIn(purpose), "data-i18n": "Something else" }, t("Something else")),
  );
  show("gathering-screen");
}

function checkIn(purpose, ref) {
  const body = { ...flow.identity, purpose };
  if (ref) body.ref = ref;
  const nickname = flow.nickname;
  const welcome = () => finish(
    () => (nickname ? t("Welcome, {name}!", { name: nickname }) : t("Welcome!")),
    () => t("You are checked in. Enjoy your time here."),
  );
  submit("check-in", "/visits", body, welcome, welcome);
}

$("#register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (busy) return;
  busy = true;
  const nickname = $("#nickname").value.trim();
  try {
    // Not queued when offline: the code comes from the server. The key makes a double tap register once.
    const { body } = await call("checkin", "POST", "/members", {
      body: nickname ? { nickname } : {},
      idempotencyKey: newKey(),
    });
    flow = { identity: { kiosk_code: body.kiosk_code }, nickname: nickname || null };
    $("#new-code").textContent = body.kiosk_code;
    show("new-code-screen");
  } catch (error) {
    if (error.status === 401) signedOut();
    else if (isRetryable(error)) tell(message, () => t("We cannot register anyone right now. Please try again in a moment."), "error");
    else tell(message, explain(error), "error");
  } finally {
    busy = false;
  }
});

$("#checkin-new").addEventListener("click", () => show("purpose-screen"));

// --- the installed app: its service worker, and a new version taken on when nobody is using the kiosk ------------

let updateReady = false;
function updateWhenIdle() {
  if (updateReady && !$("#home").hidden && !busy && !syncing) location.reload();
}
if ("serviceWorker" in navigator) {
  let controlled = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    // The first install takes over this page as it is; a later worker is a new deploy's, with new files.
    if (!controlled) {
      controlled = true;
      return;
    }
    updateReady = true;
    updateWhenIdle();
  });
  navigator.serviceWorker.register("/sw.js", { scope: "/kiosk" }).catch((error) => console.error("kiosk: no service worker", error));
}

// --- start --------------------------------------------------------------------------------------------------------

await speak(kioskLanguage);
const gate = tokenGate("kiosk", (saved) => {
  token = saved;
  home();
  // When the kiosk is ready for a visitor (measured by tests/e2e/test_kiosk_offline.py).
  if (!performance.getEntriesByName("kiosk-usable").length) performance.mark("kiosk-usable");
  refreshToday();
  sync();
}, { beforeForget: forgetQueue });
// After the start screen shows, not before it: a visitor need not wait for the queue.
adoptOldQueue()
  .catch((error) => console.error("kiosk: the old queue was not moved", error))
  .finally(() => {
    showQueue();
    if (token) retryTimer = setTimeout(sync, FIRST_RETRY_MS);
  });
