// The coordinator's board: who is here (a count), shifts with gaps, groups and events with their registrations and
// waitlists, hours to approve, whether a volunteer can be reached, and the monthly report with its chart and CSV.

import { $, ApiError, addDays, api, el, hours, localDate, say, shortId, tokenGate, when } from "./common.js";

const message = $("#message");
const status = $("#status");
let token = null;
let zone;

const gate = tokenGate("coordinator", (saved) => {
  token = saved;
  say(message, "");
  $("#content").hidden = false;
  refresh().then(() => {
    $("#month").value = localDate(zone).slice(0, 7);
    report();
  });
});

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

async function refresh() {
  try {
    // The site's time zone comes with the gatherings; the other lists are read in it.
    const upcoming = (await api("gatherings", "GET", "/upcoming", { token })).body;
    zone = upcoming.timezone;
    const from = localDate(zone);
    const [occupancy, shifts, pending, roles] = await Promise.all([
      api("checkin", "GET", "/occupancy", { token }),
      api("volunteering", "GET", `/shifts?from=${from}&to=${addDays(from, 13)}&limit=200`, { token }),
      api("volunteering", "GET", "/hours?status=pending&limit=100", { token }),
      api("volunteering", "GET", "/roles", { token }),
    ]);
    showOccupancy(occupancy.body);
    showGaps(shifts.body.items);
    showGatherings(upcoming.items);
    const titles = Object.fromEntries(roles.body.items.map((r) => [r.role_id, r.title]));
    showPending(pending.body.items, titles);
  } catch (error) {
    failed(error);
  }
}

function showOccupancy(o) {
  $("#present").textContent = String(o.present);
  const text = { ok: "Room to spare", near: "Nearly full", full: "Full" }[o.status] || o.status;
  const badge = $("#occupancy");
  badge.textContent = `${text} · capacity ${o.capacity}`;
  badge.className = `badge ${o.status}`;
}

function showGaps(shifts) {
  const list = $("#gaps");
  list.replaceChildren(
    ...shifts
      .filter((s) => s.status !== "cancelled" && s.spots_left > 0 && new Date(s.starts_at) > new Date())
      .map((s) =>
        el("li", {},
          el("strong", {}, s.role_title),
          el("span", {}, when(s.starts_at, zone)),
          el("span", {}, `${s.confirmed} of ${s.capacity} filled`),
          el("span", { class: "badge pending" }, `${s.spots_left} open`),
          s.needs_supervisor && !s.supervisor_on_duty && el("span", { class: "badge full" }, "No supervisor"),
        ),
      ),
  );
  empty(list, "Every shift is filled.");
}

function showGatherings(items) {
  const list = $("#gatherings");
  list.replaceChildren(
    ...items
      .filter((g) => !g.cancelled)
      .map((g) =>
        el("li", {},
          el("strong", {}, g.title),
          el("span", {}, when(g.starts_at, zone)),
          el("span", {}, `${g.capacity - g.seats_left} of ${g.capacity} registered`),
          el("span", { class: g.waitlisted ? "badge full" : "badge ok" },
            g.waitlisted ? `${g.waitlisted} waiting` : `${g.seats_left} seats left`),
        ),
      ),
  );
  empty(list, "No groups or events in the next days.");
}

function showPending(items, titles) {
  const list = $("#pending-hours");
  list.replaceChildren(
    ...items.map((h) => {
      const reason = el("input", { id: `reject-${h.hours_id}`, maxlength: "200", placeholder: "Reason" });
      return el("li", { dataset: { hours: h.hours_id } },
        el("strong", {}, hours(h.minutes)),
        el("span", {}, `Volunteer ${shortId(h.member_id)} · ${titles[h.role_id] || h.role_id} · ${when(h.shift_starts_at, zone)}`),
        h.review_codes.length > 0 && el("span", { class: "badge pending" }, `Check: ${h.review_codes.join(", ")}`),
        el("div", { class: "row" },
          el("button", { type: "button", class: "primary", onclick: () => decide(h.hours_id, "approve") }, "Approve"),
          el("label", { for: `reject-${h.hours_id}`, class: "visually-hidden" }, "Reason for not approving"),
          reason,
          el("button", { type: "button", onclick: () => decide(h.hours_id, "reject", reason.value.trim()) }, "Reject"),
        ),
      );
    }),
  );
  empty(list, "Nothing waiting for approval.");
}

async function decide(hoursId, decision, reason) {
  if (decision === "reject" && !reason) {
    say(message, "Give a reason for not approving these hours.", "error");
    $(`#reject-${hoursId}`).focus();
    return;
  }
  try {
    await api("volunteering", "POST", `/hours/${hoursId}/${decision}`, {
      token,
      body: decision === "reject" ? { reason } : undefined,
    });
    say(status, decision === "approve" ? "Hours approved." : "Hours not approved.", "ok");
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
    const { body } = await api("notify", "GET", `/members/${encodeURIComponent(memberId)}/reachability`, { token });
    const channels = body.channels.filter((c) => c.reachable).map((c) => (c.channel === "email" ? "e-mail" : c.channel));
    answer.replaceChildren(
      `Volunteer ${shortId(body.member_id)}: `,
      el("span", { class: `badge ${body.reachable ? "ok" : "full"}` },
        body.reachable ? `Reachable by ${channels.join(", ")}` : "Not reachable"),
      body.reachable ? "" : " (no confirmed address, or messages bounce). Tell them in person.",
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

const FIGURES = [
  ["visits", "Visits"],
  ["unduplicated_members", "People (unduplicated)"],
  ["new_members", "New members"],
  ["anonymous_visits", "Anonymous visits"],
  ["volunteer_hours_approved", "Volunteer hours approved"],
  ["volunteers_active", "Volunteers active"],
  ["group_attendance", "Group attendance"],
  ["events_held", "Events held"],
];

let chartUrl;
async function report() {
  try {
    const [summary, chart] = await Promise.all([
      api("audit", "GET", `/reports/summary?${range()}`, { token }),
      api("audit", "GET", `/reports/daily.svg?${range()}`, { token, accept: "image/svg+xml" }),
    ]);
    $("#summary").replaceChildren(
      ...FIGURES.flatMap(([key, label]) => [el("dt", {}, label), el("dd", {}, summary.body[key] ?? "–")]),
    );
    // Drawn as an image from a blob: the SVG is the service's, and an <img> never runs anything in it.
    if (chartUrl) URL.revokeObjectURL(chartUrl);
    chartUrl = URL.createObjectURL(await chart.response.blob());
    const img = $("#chart");
    img.src = chartUrl;
    img.alt = `Daily visits and unduplicated members, ${$("#month").value}`;
    img.hidden = false;
    $("#chart-caption").textContent = `Visits and people per day, ${$("#month").value}`;
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
    const { response } = await api("audit", "GET", `/reports/daily?${range()}&format=csv`, { token });
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "report.csv";
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    say(status, `Downloaded ${name}.`, "ok");
  } catch (error) {
    failed(error);
  }
});
