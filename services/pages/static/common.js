// What the three pages share: the device's token, calls to the APIs (through this origin's /api/ proxy), small DOM
// helpers, and dates, hours and money in the site's time zone and the person's language (i18n.js). Text goes in
// with textContent only, never as HTML.

import { currentLanguage, formatDateTime, formatNumber, t } from "./i18n.js";

// Marks a table of English texts that a page passes to t() by key ({code: "words"}), so the catalogue test reads
// its values as texts to translate; it changes nothing at run time.
export const words = (table) => table;

export class NetworkError extends Error {}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code || "http_error";
    this.problem = problem || {};
  }
}

// The service was not reached, or could not answer now: the same request may be sent again later.
export function isRetryable(error) {
  return error instanceof NetworkError || (error instanceof ApiError && [408, 429, 502, 503, 504].includes(error.status));
}

export async function api(service, method, path, { token, body, idempotencyKey, accept } = {}) {
  // The services answer a problem's title and detail in this language; its code stays the same.
  const headers = { "Accept-Language": currentLanguage() };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  if (accept) headers.Accept = accept;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/${service}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new NetworkError(String(error));
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    const problem = type.includes("json") ? await response.json().catch(() => null) : null;
    throw new ApiError(response.status, problem);
  }
  return { response, body: type.includes("json") ? await response.json() : null };
}

// A random UUID; crypto.randomUUID exists only in secure contexts, and a kiosk on the center's LAN may use plain http.
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

export function say(region, text, kind = "info") {
  region.textContent = text;
  region.dataset.kind = kind;
  region.hidden = !text;
}

// The page's bearer token, kept on this device until someone chooses "forget this device".
export function deviceToken(role) {
  const key = `rcc.${role}.token`;
  return {
    get: () => localStorage.getItem(key),
    set: (token) => localStorage.setItem(key, token.trim()),
    forget: () => localStorage.removeItem(key),
  };
}

// Shows the token form until a token is saved; then calls start(token). "Forget this device" clears it and the
// page's other keys; a page that keeps more on the device clears that in beforeForget, which may also call it off
// (resolving to false). Every page has the same setup form (#setup, #token-form, #token, #forget) and a #message line.
export function tokenGate(role, start, { beforeForget = async () => true } = {}) {
  const [gate, form, input, forget, message] = ["#setup", "#token-form", "#token", "#forget", "#message"]
    .map((id) => $(id));
  const store = deviceToken(role);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.value.trim()) return;
    store.set(input.value);
    input.value = "";
    gate.hidden = true;
    start(store.get());
  });
  forget.addEventListener("click", async () => {
    if (!(await beforeForget())) return;
    store.forget();
    for (const key of Object.keys(localStorage)) {
      if (key.startsWith(`rcc.${role}.`)) localStorage.removeItem(key);
    }
    location.reload();
  });
  const token = store.get();
  if (token) start(token);
  else {
    gate.hidden = false;
    input.focus();
  }
  return {
    rejected() {
      store.forget();
      gate.hidden = false;
      say(message, t("This device's token was not accepted. Enter a valid token."), "error");
      input.focus();
    },
  };
}

// The date (YYYY-MM-DD) in the site's time zone, put together from its parts: no language's format is relied on.
export function localDate(timeZone, at = new Date()) {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(at);
  const part = (type) => parts.find((p) => p.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")}`;
}

export function addDays(isoDate, days) {
  const day = new Date(`${isoDate}T12:00:00Z`);
  day.setUTCDate(day.getUTCDate() + days);
  return day.toISOString().slice(0, 10);
}

// A time in the site's zone, in the person's language ("Tue, Dec 8, 2:00 PM" / "mar, 8 dic, 14:00").
export function when(iso, timeZone, withDay = true) {
  const options = { timeZone, hour: "numeric", minute: "2-digit" };
  if (withDay) Object.assign(options, { weekday: "short", month: "short", day: "numeric" });
  return formatDateTime(iso, options);
}

// Minutes as "2 h 30 min" (the same units in English and Spanish), the numbers in the person's language.
export function hours(minutes) {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  if (h && m) return `${formatNumber(h)} h ${formatNumber(m)} min`;
  return h ? `${formatNumber(h)} h` : `${formatNumber(m)} min`;
}

export function dollars(cents) {
  return formatNumber(cents / 100, { style: "currency", currency: "USD" });
}

// A member, volunteer or visit is shown by the start of its pseudonymous id, never by a name.
export const shortId = (id) => String(id).slice(0, 8);
