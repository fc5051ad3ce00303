// The coordinator's board: who is here (a count), groups and events, the week's shifts with their gaps and full ones,
// a roster for any shift, session or event (confirmed in order, then the waitlist in order, with drop and seat
// actions), hours to approve, whether a volunteer can be reached, and the monthly report with its chart and CSV.
// Volunteers are shown by the display name they chose (each look-up is recorded as a disclosure by the check-in
// service), else by the start of their id.

import { $, ApiError, addDays, api, el, hours, localDate, say, shortId, tokenGate, when, words } from "./common.js";
import { currentLanguage, formatDateTime, formatNumber, preferredLanguage, t, useLanguage } from "./i18n.js";
import { explain } from "./problems.js";

const PAGE = "coordinator";
const message = $("#message");
const status = $("#status");
let token = null;
let zone;
let weekStart;
let roster = null; // { kind: "shift" | "session" | "event", id }

const OCCUPANCY = words({ ok: "Room to spare", near: "Nearly full", full: "Full" });
// Why hours need a look before approval (ReviewCode in services/volunteering/domain.py).
const REVIEW = words({
  auto_closed: "Checked out automatically at closing",
  no_signup: "No sign-up for this shift",
  zero_minutes: "No time recorded",
  outside_shift: "Outside the shift's times",
});
const FIGURES = words({
  visits: "Visits",
  unduplicated_members: "People (unduplicated)",
  new_members: "New members",
  anonymous_visits: "Anonymous visits",
  volunteer_hours_approved: "Volunteer hours approved",
  volunteers_active: "Volunteers active",
  group_attendance: "Group attendance",
  events_held: "Events held",
});

const call = (service, method, path, options = {}) => api(service, method, path, { token, ...options });

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
    if (token) {
      await refresh();
      if (roster) await showRoster();
      if ($("#month").value) await report();
    }
  });
  gate = tokenGate("coordinator", (saved) => {
    token = saved;
    say(message, "");
    $("#content").hidden = false;
    refresh().then(() => {
      $("#month").value = localDate(zone).slice(0, 7);
      report();
    });
  });
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

// --- names: the volunteer's own choice, else a number -----------------------------------------------------------

const names = new Map();

// Asks the check-in service for the names not known yet, at most 200 at a time.
async function learnNames(ids) {
  const unknown = [...new Set(ids.map(String))].filter((id) => !names.has(id));
  for (let i = 0; i < unknown.length; i += 200) {
    const batch = unknown.slice(i, i + 200);
    try {
      const { body } = await call("checkin", "POST", "/members/display-names", { body: { member_ids: batch } });
      for (const id of batch) names.set(id, body.names?.[id] || null);
    } catch (error) {
      // Without the names the board still works, by number; anything but an older service is worth saying.
      for (const id of batch) names.set(id, null);
      if (!(error instanceof ApiError && [404, 405].includes(error.status))) throw error;
    }
  }
}

const nameOf = (id) => names.get(String(id)) || t("Volunteer {id}", { id: shortId(id) });

// --- the board ----------------------------------------------------------------------------------------------------

async function refresh() {
  try {
    // The site's time zone comes with the gatherings; the other lists are read in it.
    const upcoming = (await call("gatherings", "GET", "/upcoming")).body;
    zone = upcoming.timezone;
    weekStart ||= monday(localDate(zone));
    const [occupancy, pending, roles] = await Promise.all([
      call("checkin", "GET", "/occupancy"),
      call("volunteering", "GET", "/hours?status=pending&limit=100"),
      call("volunteering", "GET", "/roles"),
    ]);
    showOccupancy(occupancy.body);
    showGatherings(upcoming.items);
    const titles = Object.fromEntries(roles.body.items.map((r) => [r.role_id, r.title]));
    await learnNames(pending.body.items.map((h) => h.member_id));
    showPending(pending.body.items, titles);
    await showWeek();
  } catch (error) {
    failed(error);
  }
}

function showOccupancy(o) {
  $("#present").textContent = formatNumber(o.present);
  const text = OCCUPANCY[o.status] ? t(OCCUPANCY[o.status]) : t("Unknown");
  const badge = $("#occupancy");
  badge.textContent = t("{state} · capacity {capacity}", { state: text, capacity: formatNumber(o.capacity) });
  badge.className = `badge ${o.status}`;
}

function showGatherings(items) {
  const list = $("#gatherings");
  list.replaceChildren(
    ...items
      .filter((g) => !g.cancelled)
      .map((g) => {
        const id = g.type === "event" ? g.event_id : g.session_id;
        return el("li", { dataset: { gathering: id } },
          el("strong", {}, g.title),
          el("span", {}, when(g.starts_at, zone)),
          el("span", {}, t("{taken} of {capacity} registered", {
            taken: formatNumber(g.capacity - g.seats_left), capacity: formatNumber(g.capacity) })),
          el("span", { class: g.waitlisted ? "badge full" : "badge ok" },
            g.waitlisted
              ? t("{count} waiting", { count: formatNumber(g.waitlisted) })
              : t("{count} seats left", { count: formatNumber(g.seats_left) })),
          el("button", { type: "button", onclick: () => openRoster(g.type, id) }, t("Roster")),
        );
      }),
  );
  empty(list, t("No groups or events in the next days."));
}

// --- the week's shifts: gaps and full ones alike --------------------------------------------------------------------

function monday(isoDate) {
  const weekday = new Date(`${isoDate}T12:00:00Z`).getUTCDay(); // 0 = Sunday
  return addDays(isoDate, -((weekday + 6) % 7));
}

const dayName = (isoDate, options) => formatDateTime(`${isoDate}T12:00:00Z`, { timeZone: "UTC", ...options });

async function showWeek() {
  const last = addDays(weekStart, 6);
  const { body } = await call("volunteering", "GET", `/shifts?from=${weekStart}&to=${last}&limit=200`);
  $("#week-range").textContent = t("{first} to {last}", {
    first: dayName(weekStart, { weekday: "short", month: "short", day: "numeric" }),
    last: dayName(last, { weekday: "short", month: "short", day: "numeric", year: "numeric" }),
  });
  const byDay = new Map([...Array(7).keys()].map((i) => [addDays(weekStart, i), []]));
  for (const s of body.items) byDay.get(String(s.local_start).slice(0, 10))?.push(s);
  $("#gaps").replaceChildren(
    ...[...byDay].map(([day, shifts]) => {
      const list = el("ul", { class: "cards" }, shifts.map(shiftCard));
      empty(list, t("No shifts"));
      return el("li", { class: "day", dataset: { day } },
        el("h3", {}, dayName(day, { weekday: "long", month: "long", day: "numeric" })), list);
    }),
  );
}

function shiftCard(s) {
  const left = s.spots_left;
  const waiting = s.waitlisted;
  const state = s.status === "cancelled" ? "cancelled" : left > 0 ? "open" : "full";
  return el("li", { dataset: { shift: s.shift_id, state } },
    el("strong", {}, s.role_title),
    el("span", {}, `${when(s.starts_at, zone, false)} – ${when(s.ends_at, zone, false)}`),
    el("span", {}, t("{confirmed} of {capacity} filled", {
      confirmed: formatNumber(s.confirmed), capacity: formatNumber(s.capacity) })),
    state === "cancelled" && el("span", { class: "badge" }, t("Cancelled")),
    state === "open" && el("span", { class: "badge pending" }, t("{count} open", { count: formatNumber(left) })),
    state === "full" && el("span", { class: "badge full" }, t("Full")),
    state !== "cancelled" && waiting > 0 &&
      el("span", { class: "badge waitlisted" }, t("{count} waiting", { count: formatNumber(waiting) })),
    s.needs_supervisor && !s.supervisor_on_duty && state !== "cancelled" &&
      el("span", { class: "badge full" }, t("No supervisor")),
    state !== "cancelled" && el("button", { type: "button", onclick: () => openRoster("shift", s.shift_id) }, t("Roster")),
  );
}

async function moveWeek(days) {
  weekStart = addDays(weekStart, days);
  try {
    await showWeek();
  } catch (error) {
    failed(error);
  }
}

$("#week-before").addEventListener("click", () => moveWeek(-7));
$("#week-after").addEventListener("click", () => moveWeek(7));

// --- rosters ------------------------------------------------------------------------------------------------------

async function openRoster(kind, id) {
  roster = { kind, id };
  await showRoster();
  $("#roster-section").hidden = false;
  $("#roster-title").focus();
}

$("#close-roster").addEventListener("click", () => {
  roster = null;
  $("#roster-section").hidden = true;
});

// One shape for the three kinds: what it is, its seats, the confirmed and the waiting (each in order), and what
// removing one of them means.
async function loadRoster({ kind, id }) {
  if (kind === "shift") {
    const [shift, signups] = await Promise.all([
      call("volunteering", "GET", `/shifts/${id}`),
      call("volunteering", "GET", `/shifts/${id}/signups`),
    ]);
    const items = signups.body.items;
    const s = shift.body;
    return {
      title: t("{title}, {time}", { title: s.role_title, time: when(s.starts_at, zone) }),
      capacity: s.capacity,
      confirmed: items.filter((i) => i.status === "confirmed")
        .sort((a, b) => a.signed_up_at.localeCompare(b.signed_up_at)),
      waiting: items.filter((i) => i.status === "waitlisted").sort((a, b) => a.position - b.position),
      remove: (entry) => call("volunteering", "DELETE", `/shifts/${id}/signups/${entry.member_id}`),
      grow: (capacity) => call("volunteering", "PATCH", `/shifts/${id}`, { body: { capacity } }),
    };
  }
  const plural = kind === "event" ? "events" : "sessions";
  const [gathering, registrations] = await Promise.all([
    call("gatherings", "GET", `/${plural}/${id}`),
    call("gatherings", "GET", `/${plural}/${id}/registrations`),
  ]);
  const g = gathering.body;
  return {
    title: t("{title}, {time}", { title: g.title, time: when(g.starts_at, zone) }),
    capacity: registrations.body.capacity,
    confirmed: registrations.body.confirmed,
    waiting: [...registrations.body.waitlist].sort((a, b) => a.position - b.position),
    remove: (entry) => call("gatherings", "DELETE", `/registrations/${entry.registration_id}`),
    grow: (capacity) => call("gatherings", "PATCH", `/${plural}/${id}`, { body: { capacity } }),
  };
}

async function showRoster() {
  let r;
  try {
    r = await loadRoster(roster);
    await learnNames([...r.confirmed, ...r.waiting].map((e) => e.member_id));
  } catch (error) {
    failed(error);
    return;
  }
  $("#roster-title").textContent = t("Roster: {what}", { what: r.title });
  $("#roster-summary").textContent = t("{confirmed} of {capacity} seats taken · {waiting} waiting", {
    confirmed: formatNumber(r.confirmed.length), capacity: formatNumber(r.capacity),
    waiting: formatNumber(r.waiting.length),
  });
  const party = (e) => (e.adults || e.children)
    ? t("{adults} adults, {children} children", { adults: formatNumber(e.adults), children: formatNumber(e.children) })
    : null;
  const row = (entry, waiting) => el("li", { dataset: { member: entry.member_id } },
    waiting && el("span", { class: "badge waitlisted" }, t("#{position}", { position: formatNumber(entry.position) })),
    el("strong", {}, nameOf(entry.member_id)),
    party(entry) && el("span", { class: "muted" }, party(entry)),
    el("button", { type: "button", onclick: () => remove(r, entry, waiting) },
      waiting ? t("Take off the waitlist") : roster.kind === "shift" ? t("Drop") : t("Cancel registration")),
  );
  $("#roster-confirmed").replaceChildren(...r.confirmed.map((e) => row(e, false)));
  empty($("#roster-confirmed"), t("Nobody yet."));
  $("#roster-waiting").replaceChildren(...r.waiting.map((e) => row(e, true)));
  empty($("#roster-waiting"), t("Nobody is waiting."));
  const seat = $("#add-seat");
  seat.hidden = !r.waiting.length;
  seat.onclick = () => addSeat(r);
}

async function remove(r, entry, waiting) {
  const who = nameOf(entry.member_id);
  const question = waiting ? t("Take {name} off the waitlist?", { name: who }) : t("Remove {name} from the roster?", { name: who });
  if (!confirm(question)) return;
  try {
    await r.remove(entry);
    // A freed seat goes to the first one waiting at once: the roster read again tells who moved up.
    const after = await loadRoster(roster);
    const seated = new Set(after.confirmed.map((e) => String(e.member_id)));
    const moved = r.waiting.filter((e) => seated.has(String(e.member_id))).map((e) => nameOf(e.member_id));
    const done = waiting ? t("{name} is off the waitlist.", { name: who }) : t("{name} is off the roster.", { name: who });
    say(status, moved.length ? `${done} ${t("Moved up from the waitlist: {names}.", { names: moved.join(", ") })}` : done, "ok");
    say(message, "");
  } catch (error) {
    failed(error);
  }
  await Promise.all([showRoster(), refresh()]);
}

async function addSeat(r) {
  try {
    await r.grow(r.capacity + 1);
    say(status, t("One more seat: {name} moved up from the waitlist.", { name: nameOf(r.waiting[0].member_id) }), "ok");
    say(message, "");
  } catch (error) {
    failed(error);
  }
  await Promise.all([showRoster(), refresh()]);
}

// --- hours to approve ---------------------------------------------------------------------------------------------

function showPending(items, titles) {
  const list = $("#pending-hours");
  list.replaceChildren(
    ...items.map((h) => {
      const reason = el("input", { id: `reject-${h.hours_id}`, maxlength: "200", placeholder: t("Reason") });
      const checks = h.review_codes.map((code) => (REVIEW[code] ? t(REVIEW[code]) : t("Needs a look")));
      return el("li", { dataset: { hours: h.hours_id } },
        el("strong", {}, hours(h.minutes)),
        el("span", {}, `${nameOf(h.member_id)} · ${titles[h.role_id] || h.role_id} · ${when(h.shift_starts_at, zone)}`),
        checks.length > 0 && el("span", { class: "badge pending" }, t("Check: {reasons}", { reasons: checks.join(", ") })),
        el("div", { class: "row" },
          el("button", { type: "button", class: "primary", onclick: () => decide(h.hours_id, "approve") }, t("Approve")),
          el("label", { for: `reject-${h.hours_id}`, class: "visually-hidden" }, t("Reason for not approving")),
          reason,
          el("button", { type: "button", onclick: () => decide(h.hours_id, "reject", reason.value.trim()) }, t("Reject")),
        ),
      );
    }),
  );
  empty(list, t("Nothing waiting for approval."));
}

async function decide(hoursId, decision, reason) {
  if (decision === "reject" && !reason) {
    say(message, t("Give a reason for not approving these hours."), "error");
    $(`#reject-${hoursId}`).focus();
    return;
  }
  try {
    await call("volunteering", "POST", `/hours/${hoursId}/${decision}`, {
      body: decision === "reject" ? { reason } : undefined,
    });
    say(status, decision === "approve" ? t("Hours approved.") : t("Hours not approved."), "ok");
    say(message, "");
  } catch (error) {
    failed(error);
  }
  await refresh();
}

// --- whether a volunteer can be reached (never where) ------------------------------------------------------------

$("#reach-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const memberId = $("#reach-member").value.trim().toLowerCase();
  const answer = $("#reach-answer");
  try {
    const { body } = await call("notify", "GET", `/members/${encodeURIComponent(memberId)}/reachability`);
    await learnNames([body.member_id]);
    const channels = body.channels.filter((c) => c.reachable).map((c) => (c.channel === "email" ? t("e-mail") : c.channel));
    answer.replaceChildren(
      `${nameOf(body.member_id)}: `,
      el("span", { class: `badge ${body.reachable ? "ok" : "full"}` },
        body.reachable ? t("Reachable by {channels}", { channels: channels.join(", ") }) : t("Not reachable")),
      body.reachable ? "" : ` ${t("No confirmed address, or messages bounce. Tell them in person.")}`,
    );
    answer.hidden = false;
    say(message, "");
  } catch (error) {
    answer.hidden = true;
    failed(error);
  }
});

// --- the monthly report -------------------------------------------------------------------------------------------

function range() {
  const [year, month] = $("#month").value.split("-").map(Number);
  const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const mm = String(month).padStart(2, "0");
  return `from=${year}-${mm}-01&to=${year}-${mm}-${String(last).padStart(2, "0")}`;
}

const monthName = () => formatDateTime(`${$("#month").value}-15T12:00:00Z`, { timeZone: "UTC", month: "long", year: "numeric" });

let chartUrl;
async function report() {
  try {
    const [summary, chart] = await Promise.all([
      call("audit", "GET", `/reports/summary?${range()}`),
      call("audit", "GET", `/reports/daily.svg?${range()}`, { accept: "image/svg+xml" }),
    ]);
    // Each label and its figure share one cell of the grid (a <div> inside the <dl>), so they never part.
    $("#summary").replaceChildren(
      ...Object.entries(FIGURES).map(([key, label]) => {
        const value = summary.body[key];
        return el("div", { class: "figure-cell", dataset: { figure: key } },
          el("dt", {}, t(label)), el("dd", {}, typeof value === "number" ? formatNumber(value) : "–"));
      }),
    );
    // Drawn as an image from a blob: the SVG is the service's, and an <img> never runs anything in it.
    if (chartUrl) URL.revokeObjectURL(chartUrl);
    chartUrl = URL.createObjectURL(await chart.response.blob());
    const img = $("#chart");
    img.src = chartUrl;
    img.alt = t("Daily visits and unduplicated members, {month}", { month: monthName() });
    img.hidden = false;
    $("#chart-caption").textContent = t("Visits and people per day, {month}", { month: monthName() });
  } catch (error) {
    failed(error);
  }
}

$("#report-form").addEventListener("submit", (event) => {
  event.preventDefault();
  report();
});

$("#download-csv").addEventListener("click", async () => {
  try {
    const { response } = await call("audit", "GET", `/reports/daily?${range()}&format=csv`);
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "report.csv";
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    say(status, t("Downloaded {name}.", { name }), "ok");
  } catch (error) {
    failed(error);
  }
});
