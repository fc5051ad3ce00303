// A volunteer's phone: my shifts, the shifts I am qualified for (sign up, join or leave a waitlist, drop), hours,
// stipends, how we reach me (reach.js), the name coordinators see, calendar. In the browser's language or the one
// picked here.

import { $, ApiError, api, dollars, el, hours, say, tokenGate, when, words } from "./common.js";
import { currentLanguage, formatNumber, preferredLanguage, t, useLanguage } from "./i18n.js";
import { explain } from "./problems.js";
import { reach } from "./reach.js";

const PAGE = "volunteer";
const message = $("#message");
const status = $("#status");
let token = null;
let zone;

// Before the gate: with a token saved on the phone, it starts the page at once, and refresh() needs these.
const call = (method, path, body) => api("volunteering", method, path, { token, body });
const reaching = reach({ token: () => token, memberId: () => myId(), zone: () => zone, failed, status, message });

const SHIFT_STATUS = words({
  confirmed: "Confirmed",
  waitlisted: "On the waitlist",
  cancelled: "Cancelled",
});
const HOURS_STATUS = words({ pending: "Waiting for approval", approved: "Approved", rejected: "Not approved" });

let gate;
start();

async function start() {
  try {
    await useLanguage(PAGE, preferredLanguage());
  } catch (error) {
    console.error(error); // the page stays in English rather than not at all
  }
  $("#language").value = currentLanguage();
  $("#language").addEventListener("change", async (event) => {
    try {
      await useLanguage(PAGE, event.target.value, { remember: true });
    } catch (error) {
      failed(error);
    }
    if (token) await refresh();
  });
  gate = tokenGate("volunteer", (saved) => {
    token = saved;
    say(message, "");
    $("#content").hidden = false;
    refresh();
  });
}

async function refresh() {
  try {
    // The shifts carry the site's time zone; my shifts are shown in it too. Full shifts come too: their waitlist
    // is the way onto them.
    const offered = (await call("GET", "/shifts?include_full=true&limit=100")).body.items;
    zone = offered[0]?.timezone || zone;
    const [mine, myHours, stipends] = await Promise.all([
      call("GET", "/me/shifts?past_limit=0"),
      call("GET", "/me/hours?limit=20"),
      call("GET", "/me/stipends"),
    ]);
    showMine(mine.body.upcoming);
    showOffered(offered);
    showHours(myHours.body);
    showStipends(stipends.body);
    await Promise.all([reaching.refresh(), showName()]);
  } catch (error) {
    failed(error);
  }
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    $("#content").hidden = true;
    gate.rejected();
  } else say(message, explain(error), "error");
}

function empty(list, text) {
  if (!list.children.length) list.append(el("li", { class: "muted" }, text));
}

const span = (iso, ends, timeZone) => `${when(iso, timeZone)} – ${when(ends, timeZone, false)}`;

function leaveButton(shiftId, title, waiting) {
  return el("button", { type: "button", onclick: () => drop(shiftId, title, waiting) },
    waiting ? t("Leave the waitlist") : t("Drop"));
}

function showMine(items) {
  const list = $("#my-shifts");
  list.replaceChildren(
    ...items
      .filter((s) => s.status === "confirmed" || s.status === "waitlisted")
      .map((s) => {
        const state = s.shift_status === "cancelled" ? "cancelled" : s.status;
        return el("li", { dataset: { shift: s.shift_id } },
          el("strong", {}, s.role_title),
          el("span", {}, span(s.starts_at, s.ends_at, zone)),
          el("span", { class: `badge ${state}` },
            state === "waitlisted" ? t("Waitlist #{position}", { position: formatNumber(s.position) }) : t(SHIFT_STATUS[state])),
          state !== "cancelled" && leaveButton(s.shift_id, s.role_title, state === "waitlisted"),
        );
      }),
  );
  empty(list, t("No shifts yet. Pick one below."));
}

function seatsText(s) {
  if (s.spots_left) {
    return t("{left} of {capacity} open", { left: formatNumber(s.spots_left), capacity: formatNumber(s.capacity) });
  }
  return t("Full · {waiting} waiting", { waiting: formatNumber(s.waitlisted) });
}

function showOffered(items) {
  const list = $("#open-shifts");
  list.replaceChildren(
    ...items.map((s) => {
      const mine = s.my_signup?.status ?? null;
      const position = s.my_signup?.position ?? null;
      const full = !s.spots_left;
      return el("li", { dataset: { shift: s.shift_id, full: String(full) } },
        el("strong", {}, s.role_title),
        el("span", {}, span(s.starts_at, s.ends_at, s.timezone)),
        el("span", { class: full ? "badge full" : "muted" }, seatsText(s)),
        mine === "confirmed" && [el("span", { class: "badge confirmed" }, t("You're on it")),
          leaveButton(s.shift_id, s.role_title, false)],
        mine === "waitlisted" && [
          el("span", { class: "badge waitlisted" }, t("You are #{position} on the waitlist", { position: formatNumber(position) })),
          leaveButton(s.shift_id, s.role_title, true)],
        !mine && el("button", { type: "button", class: "primary", onclick: () => signUp(s.shift_id) },
          full ? t("Join the waitlist") : t("Sign up")),
      );
    }),
  );
  empty(list, t("No shifts for your roles right now."));
}

async function signUp(shiftId) {
  try {
    const { body } = await call("POST", `/shifts/${shiftId}/signups`, {});
    say(status, body.status === "confirmed"
      ? t("You are signed up. Thank you!")
      : t("You are on the waitlist (#{position}).", { position: formatNumber(body.position) }), "ok");
    say(message, "");
  } catch (error) {
    failed(error);
  }
  await refresh();
}

async function drop(shiftId, title, waiting) {
  const question = waiting
    ? t("Leave the waitlist of the {title} shift?", { title })
    : t("Drop your {title} shift?", { title });
  if (!confirm(question)) return;
  try {
    const { body } = await call("DELETE", `/shifts/${shiftId}/signups/${await myId()}`);
    const done = waiting ? t("You left the waitlist.")
      : body.promoted ? t("Dropped. Someone from the waitlist takes your place.") : t("Dropped.");
    say(status, done, "ok");
    say(message, "");
  } catch (error) {
    failed(error);
  }
  await refresh();
}

// The token acts as one member; its id is on every hours record and stipend statement of /me.
let memberId;
async function myId() {
  memberId ||= (await call("GET", "/me/stipends")).body.member_id;
  return memberId;
}

function showHours(page) {
  const totals = page.total_minutes || {};
  $("#hours-total").textContent = ["approved", "pending"]
    .filter((s) => totals[s])
    .map((s) => t("{label}: {hours}", { label: t(HOURS_STATUS[s]), hours: hours(totals[s]) }))
    .join(" · ");
  const list = $("#my-hours");
  list.replaceChildren(
    ...page.items.map((h) =>
      el("li", {},
        el("span", {}, when(h.shift_starts_at, zone)),
        el("strong", {}, hours(h.minutes)),
        el("span", { class: `badge ${h.status}` }, HOURS_STATUS[h.status] ? t(HOURS_STATUS[h.status]) : t("Unknown")),
        // The coordinator's own words, in whatever language they wrote them.
        h.decision_reason && el("span", { class: "muted" }, h.decision_reason),
      ),
    ),
  );
  empty(list, t("No hours recorded yet."));
}

function showStipends(statement) {
  memberId = statement.member_id;
  const list = $("#my-stipends");
  list.replaceChildren(
    ...statement.periods.map((p) =>
      el("li", {},
        el("strong", {}, p.period),
        el("span", {}, t("{hours} · {shifts} shifts", { hours: hours(p.minutes), shifts: formatNumber(p.shifts) })),
        el("span", {}, t("Earned {amount}", { amount: dollars(p.accrued_cents - p.reversed_cents) })),
        el("span", { class: `badge ${p.paid_cents ? "approved" : "pending"}` },
          p.paid_cents
            ? t("Paid {amount}", { amount: dollars(p.paid_cents) })
            : t("To be paid {amount}", { amount: dollars(p.payable_cents) })),
      ),
    ),
  );
  empty(list, t("No stipend statements for {year}.", { year: statement.year }));
}

// --- the name coordinators see (kept by the check-in service, never in events) -----------------------------------

const nameCall = async (method, body) =>
  api("checkin", method, `/members/${await myId()}/display-name`, { token, body });

async function showName() {
  const input = $("#display-name");
  if (document.activeElement === input) return; // not while the person is typing
  try {
    input.value = (await nameCall("GET")).body?.display_name || "";
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) input.value = "";
    else throw error;
  }
}

$("#name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("#display-name").value.trim();
  if (!name) return clearName();
  try {
    await nameCall("PUT", { display_name: name });
    say(status, t("Saved. Coordinators see you as {name}.", { name }), "ok");
    say(message, "");
  } catch (error) {
    failed(error);
  }
});

async function clearName() {
  try {
    await nameCall("DELETE");
  } catch (error) {
    // No name was set: it is removed all the same.
    if (!(error instanceof ApiError && error.status === 404)) return failed(error);
  }
  $("#display-name").value = "";
  say(status, t("Removed. Coordinators see you by a number."), "ok");
  say(message, "");
}

$("#clear-name").addEventListener("click", clearName);

$("#calendar").addEventListener("click", async () => {
  try {
    const { body } = await call("POST", "/me/calendar-feed");
    const link = $("#calendar-link");
    link.href = new URL(`/api/volunteering${body.url}`, location.origin).href;
    link.textContent = link.href;
    link.hidden = false;
    say(status, t("Your calendar link is ready. Keep it private: anyone with it sees your shifts."), "ok");
  } catch (error) {
    failed(error);
  }
});
