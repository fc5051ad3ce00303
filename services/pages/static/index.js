// The start page: three links, in the browser's language or the one picked here (kept for the other pages too).

import { currentLanguage, preferredLanguage, useLanguage } from "./i18n.js";

const picker = document.querySelector("#language");

async function show(language, remember) {
  try {
    await useLanguage("index", language, { remember });
  } catch (error) {
    console.error(error); // the page stays in English rather than not at all
  }
  picker.value = currentLanguage();
}

picker.addEventListener("change", () => show(picker.value, true));
show(preferredLanguage(), false);
