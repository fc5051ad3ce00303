// A volunteer's phone: my shifts, open shifts I am qualified for (sign up, waitlist, drop), hours, stipends, how we
// reach me (reach.js), calendar.

import { $, ApiError, api, dollars, el, hours, say, tokenGate, when } from "./common.js";
import { reach } from "./reach.js";

const message = $("#message");
const status = $("#status");
let token = null;
let zone;

// Before the gate: with a token saved on the phone, it starts the page at once, and refresh() needs these.
const call = (method, path, body) => api("volunteering", method, path, { token, body });
const reaching = reach({ token: () => token, memberId: () => myId(), zone: () => zone, failed, status, message });

const gate = tokenGate("volunteer", (saved) => {
  token = saved;
  say(message, "");
  $("#content").hidden = false;
  refresh();
});

async function refresh() {
  try {
    // The open shifts carry the site's time zone; my shifts are shown in it too.
    const open = (await call("GET", "/shifts?open=true")).body.items;
    zone = open[0]?.timezone || zone;
    const [mine, myHours, stipends] = await Promise.all([
      call("GET", "/me/shifts?past_limit=0"),
      call("GET", "/me/hours?limit=20"),
      call("GET", "/me/stipends"),
    ]);
    showMine(mine.body.upcoming);
    showOpen(open);
    showHours(myHours.body);
    showStipends(stipends.body);
    await reaching.refresh();
  } catch (error) {
    failed(error);
  }
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    $("#content").hidden = true;
    gate.rejected();
  }
  else say(message, error instanceof ApiError ? error.message : "The server cannot be reached. Try again shortly.", "error");
}

function empty(list, text) {
  if (!list.children.length) list.append(el("li", { class: "muted" }, text));
}

function showMine(items) {
  const list = $("#my-shifts");
  list.replaceChildren(
    ...items
      .filter((s) => s.status === "confirmed" || s.status === "waitlisted")
      .map((s) =>
        el("li", { dataset: { shift: s.shift_id } },
          el("strong", {}, s.role_title),
          el("span", {}, `${when(s.starts_at, zone)} – ${when(s.ends_at, zone, false)}`),
          el("span", { class: `badge ${s.status}` },
            s.shift_status === "cancelled" ? "Cancelled" :
            s.status === "confirmed" ? "Confirmed" : `Waitlist #${s.position}`),
          s.shift_status !== "cancelled" &&
            el("button", { type: "button", onclick: () => drop(s.shift_id, s.role_title) }, "Drop"),
        ),
      ),
  );
  empty(list, "No shifts yet. Pick one below.");
}

function showOpen(items) {
  const list = $("#open-shifts");
  list.replaceChildren(
    ...items.map((s) => {
      const mine = s.my_signup;
      const seats = s.spots_left ? `${s.spots_left} of ${s.capacity} open` : `Full · ${s.waitlisted} waiting`;
      return el("li", { dataset: { shift: s.shift_id } },
        el("strong", {}, s.role_title),
        el("span", {}, `${when(s.starts_at, s.timezone)} – ${when(s.ends_at, s.timezone, false)}`),
        el("span", { class: "muted" }, seats),
        mine
          ? [el("span", { class: `badge ${mine.status}` }, mine.status === "confirmed" ? "You're on it" : `Waitlist #${mine.position}`),
             el("button", { type: "button", onclick: () => drop(s.shift_id, s.role_title) }, "Drop")]
          : el("button", { type: "button", class: "primary", onclick: () => signUp(s.shift_id) },
              s.spots_left ? "Sign up" : "Join the waitlist"),
      );
    }),
  );
  empty(list, "No open shifts for your roles right now.");
}

async function signUp(shiftId) {
  try {
    const { body } = await call("POST", `/shifts/${shiftId}/signups`, {});
    say(status, body.status === "confirmed" ? "You are signed up. Thank you!" : `You are on the waitlist (#${body.position}).`, "ok");
    say(message, "");
  } catch (error) {
    const reasons = {
      overlap: "You already have a shift at that time.",
      not_qualified: "This shift needs a role or training you don't have yet.",
      volunteer_paused: "Your volunteering is paused; talk to your coordinator.",
      already_signed_up: "You are already signed up for this shift.",
    };
    if (error instanceof ApiError && reasons[error.code]) say(message, reasons[error.code], "error");
    else failed(error);
  }
  await refresh();
}

async function drop(shiftId, title) {
  if (!confirm(`Drop your ${title} shift?`)) return;
  try {
    const { body } = await call("DELETE", `/shifts/${shiftId}/signups/${await myId()}`);
    say(status, body.promoted ? "Dropped. Someone from the waitlist takes your place." : "Dropped.", "ok");
    say(message, "");
  } catch (error) {
    if (error instanceof ApiError && error.code === "cutoff_passed") {
      say(message, "It is too close to the start to drop online. Please call your coordinator.", "error");
    } else failed(error);
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
  const labels = { pending: "Waiting for approval", approved: "Approved", rejected: "Not approved" };
  const totals = page.total_minutes || {};
  $("#hours-total").textContent = ["approved", "pending"]
    .filter((s) => totals[s])
    .map((s) => `${labels[s]}: ${hours(totals[s])}`)
    .join(" · ");
  const list = $("#my-hours");
  list.replaceChildren(
    ...page.items.map((h) =>
      el("li", {},
        el("span", {}, when(h.shift_starts_at, zone)),
        el("strong", {}, hours(h.minutes)),
        el("span", { class: `badge ${h.status}` }, labels[h.status] || h.status),
        h.decision_reason && el("span", { class: "muted" }, h.decision_reason),
      ),
    ),
  );
  empty(list, "No hours recorded yet.");
}

function showStipends(statement) {
  memberId = statement.member_id;
  const list = $("#my-stipends");
  list.replaceChildren(
    ...statement.periods.map((p) =>
      el("li", {},
        el("strong", {}, p.period),
        el("span", {}, `${hours(p.minutes)} · ${p.shifts} shifts`),
        el("span", {}, `Earned ${dollars(p.accrued_cents - p.reversed_cents)}`),
        el("span", { class: `badge ${p.paid_cents ? "approved" : "pending"}` },
          p.paid_cents ? `Paid ${dollars(p.paid_cents)}` : `To be paid ${dollars(p.payable_cents)}`),
      ),
    ),
  );
  empty(list, `No stipend statements for ${statement.year}.`);
}

$("#calendar").addEventListener("click", async () => {
  try {
    const { body } = await call("POST", "/me/calendar-feed");
    const link = $("#calendar-link");
    link.href = new URL(`/api/volunteering${body.url}`, location.origin).href;
    link.textContent = link.href;
    link.hidden = false;
    say(status, "Your calendar link is ready. Keep it private: anyone with it sees your shifts.", "ok");
  } catch (error) {
    failed(error);
  }
});
