// "How we reach you" on the volunteer's phone: their e-mail addresses (added with consent, confirmed by the link in
// a message), language, quiet hours, which kinds of message they want, withdrawing; and the messages sent to them,
// so someone without e-mail still sees "you moved up from the waitlist". Only the person sees an address.

import { $, ApiError, api, el, newKey, say, when, words } from "./common.js";
import { t } from "./i18n.js";

const KINDS = words({
  confirmations: "Confirmations of sign-ups and registrations",
  changes: "Changes and cancellations",
  reminders: "Reminders before a shift or event",
  approvals: "Hours approved and stipends",
});
const DELIVERY = words({ sent: "Sent", pending: "Waiting to be sent", failed: "Not delivered", dropped: "Not sent" });
// The badge colour of each (a class name, not words).
const deliveryBadge = { sent: "approved", pending: "pending", failed: "rejected", dropped: "rejected" };
// What each message was about (MessagePurpose in shared/contracts/notify.py), in the page's language: notify's own
// one-line summary is in the language of the person's contacts, which may not be the page's.
const PURPOSES = words({
  verification: "Confirm your e-mail",
  shift_confirmed: "You have a place on a volunteer shift",
  shift_waitlisted: "You are on the waitlist for a volunteer shift",
  shift_promoted: "A place opened up: you are on a volunteer shift",
  shift_dropped: "You are no longer on a volunteer shift",
  shift_changed: "A volunteer shift of yours changed",
  shift_cancelled: "A volunteer shift of yours was cancelled",
  shift_missed: "A friendly check-in about a missed shift",
  hours_approved: "Your volunteer hours were approved",
  hours_rejected: "A coordinator would like a word about your volunteer hours",
  stipend_paid: "Your stipend was paid",
  gathering_confirmed: "You have a place at a group or event",
  gathering_waitlisted: "You are on the waitlist for a group or event",
  gathering_promoted: "A place opened up: you have a place at a group or event",
  gathering_cancelled: "Your place at a group or event was cancelled",
  session_cancelled: "A session you had a place at was cancelled",
  event_cancelled: "An event you had a place at was cancelled",
  shift_reminder: "Reminder: your volunteer shift",
  gathering_reminder: "Reminder: your group or event",
});

// ctx: { token: () => string, memberId: () => Promise<string>, zone: () => string, failed(error), status, message }
export function reach(ctx) {
  const call = async (method, path, body, idempotencyKey) =>
    api("notify", method, `/members/${await ctx.memberId()}${path}`, { token: ctx.token(), body, idempotencyKey });

  async function refresh() {
    try {
      showContacts((await call("GET", "/contacts")).body.items);
    } catch (error) {
      ctx.failed(error);
    }
    try {
      showNotifications((await call("GET", "/notifications?limit=20")).body.items);
    } catch (error) {
      // The list arrives with messages sent from events; until a center runs that, there is nothing to show.
      if (error instanceof ApiError && error.status === 404) showNotifications([]);
      else ctx.failed(error);
    }
  }

  function showContacts(items) {
    const list = $("#contacts");
    list.replaceChildren(...items.map(contactCard));
    if (!items.length) list.append(el("li", { class: "muted" }, t("No address yet: add one below to get messages.")));
  }

  function contactCard(c) {
    const id = (name) => `contact-${c.contact_id}-${name}`;
    const locale = el("select", { id: id("locale") },
      el("option", { value: "en", selected: c.locale === "en" }, "English"),
      el("option", { value: "es", lang: "es", selected: c.locale === "es" }, "Español"));
    const quietFrom = el("input", { id: id("quiet-from"), type: "time", value: c.quiet_hours?.start?.slice(0, 5) });
    const quietTo = el("input", { id: id("quiet-to"), type: "time", value: c.quiet_hours?.end?.slice(0, 5) });
    const kinds = Object.entries(KINDS).map(([kind, label]) => {
      const box = el("input", { id: id(kind), type: "checkbox", value: kind, checked: c.kinds.includes(kind) });
      return el("div", { class: "check" }, box, el("label", { for: id(kind) }, t(label)));
    });
    const form = el("form", { class: "stack", onsubmit: (event) => save(event, c, locale, quietFrom, quietTo, form) },
      el("label", { for: id("locale") }, t("Language")), locale,
      el("fieldset", {},
        el("legend", {}, t("Quiet hours (nothing arrives then; leave empty for none)")),
        el("div", { class: "row" },
          el("label", { for: id("quiet-from") }, t("From")), quietFrom,
          el("label", { for: id("quiet-to") }, t("to")), quietTo)),
      el("fieldset", {}, el("legend", {}, t("What to receive")), kinds),
      el("div", { class: "row" },
        el("button", { type: "submit", class: "primary" }, t("Save")),
        el("button", { type: "button", onclick: () => withdraw(c) }, t("Stop using this address"))));
    return el("li", { class: "contact", dataset: { contact: c.contact_id } },
      el("strong", {}, c.address),
      el("span", { class: `badge ${c.verified ? "approved" : "pending"}` },
        c.verified ? t("Confirmed") : t("Check your inbox to confirm")),
      form);
  }

  async function save(event, c, locale, quietFrom, quietTo, form) {
    event.preventDefault();
    if (Boolean(quietFrom.value) !== Boolean(quietTo.value)) {
      say(ctx.message, t("Quiet hours need a start and an end (or neither)."), "error");
      return;
    }
    const body = {
      locale: locale.value,
      quiet_hours: quietFrom.value ? { start: quietFrom.value, end: quietTo.value } : null,
      kinds: [...form.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value),
    };
    try {
      await call("PATCH", `/contacts/${c.contact_id}`, body);
      say(ctx.status, t("Saved."), "ok");
      say(ctx.message, "");
    } catch (error) {
      ctx.failed(error);
    }
    await refresh();
  }

  async function withdraw(c) {
    if (!confirm(t("Stop sending messages to {address}? The address is deleted.", { address: c.address }))) return;
    try {
      await call("DELETE", `/contacts/${c.contact_id}`);
      say(ctx.status, t("Done: we deleted that address and send nothing more to it."), "ok");
      say(ctx.message, "");
    } catch (error) {
      ctx.failed(error);
    }
    await refresh();
  }

  function showNotifications(items) {
    const list = $("#notifications");
    list.replaceChildren(
      ...items.map((n) => {
        const title = PURPOSES[n.purpose] ? t(PURPOSES[n.purpose]) : t("A message from the center");
        return el("li", { dataset: { delivery: n.delivery_id } },
          el("strong", {}, title),
          el("span", {}, when(n.sent_at || n.created_at, ctx.zone())),
          el("span", { class: `badge ${deliveryBadge[n.status] || ""}` },
            DELIVERY[n.status] ? t(DELIVERY[n.status]) : t("Unknown")));
      }),
    );
    if (!items.length) list.append(el("li", { class: "muted" }, t("No messages yet.")));
  }

  const form = $("#contact-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const address = $("#contact-address").value.trim();
    if (!address) return;
    try {
      await call("POST", "/contacts", { address, locale: $("#contact-locale").value, source: "pages/volunteer" }, newKey());
      form.reset();
      say(ctx.status, t("Check your inbox to confirm: we sent a link to {address}.", { address }), "ok");
      say(ctx.message, "");
    } catch (error) {
      ctx.failed(error);
    }
    await refresh();
  });

  return { refresh };
}
