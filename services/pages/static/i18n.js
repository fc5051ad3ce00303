// Words on the pages, in the person's language. One way for every page: the English text is the key, and each
// other language has one JSON catalogue per page, /static/i18n/<page>.<lang>.json ({"English text": "texto"}).
// Adding a language = adding its catalogues and its code to LANGUAGES; a test fails while a page string lacks one.
// Placeholders are {name}; numbers, dates and times are formatted with Intl for the chosen language.

export const LANGUAGES = ["en", "es"];
const STORED = "rcc.language";

let language = "en";
let catalogue = {};

// The language this device was set to, else the browser's first supported one, else English.
export function preferredLanguage() {
  const stored = localStorage.getItem(STORED);
  if (LANGUAGES.includes(stored)) return stored;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export function currentLanguage() {
  return language;
}

// Loads the page's catalogue for `wanted` (kept for the next visit when `remember`) and translates the document.
export async function useLanguage(page, wanted = preferredLanguage(), { remember = false } = {}) {
  const next = LANGUAGES.includes(wanted) ? wanted : "en";
  let loaded = {};
  if (next !== "en") {
    const response = await fetch(`/static/i18n/${page}.${next}.json`);
    if (!response.ok) throw new Error(`catalogue ${page}.${next}: HTTP ${response.status}`);
    loaded = await response.json();
  }
  language = next;
  catalogue = loaded;
  if (remember) localStorage.setItem(STORED, next);
  document.documentElement.lang = next;
  translateDocument();
  return next;
}

export function t(text, values = {}) {
  const template = (language === "en" ? text : catalogue[text]) ?? text;
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// Elements marked data-i18n keep their English text as the key; attributes listed in data-i18n-attr
// ("placeholder,aria-label") are translated from their English values the same way.
export function translateDocument(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    node.dataset.i18n ||= node.textContent.trim();
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const name of node.dataset.i18nAttr.split(",")) {
      // A dataset name is camelCase: "aria-label" is kept as data-i18n-aria-label (dataset.i18nAriaLabel).
      const key = `i18n-${name}`.replace(/-([a-z])/g, (_, letter) => letter.toUpperCase());
      node.dataset[key] ||= node.getAttribute(name) || "";
      node.setAttribute(name, t(node.dataset[key]));
    }
  }
}

export function formatNumber(value, options = {}) {
  return new Intl.NumberFormat(language, options).format(value);
}

export function formatDateTime(value, options = {}) {
  return new Intl.DateTimeFormat(language, options).format(value instanceof Date ? value : new Date(value));
}
