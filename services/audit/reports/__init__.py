"""Reports for funders: projections of the audit log (the ``rp_*`` tables) and the figures read from them.

Modules: ``tables`` (the projection tables), ``facts`` (facts read from logged events, one extractor per event
type, registered on its contract class), ``rows`` and ``statements`` (the rows as merged and the set-based SQL that
stores them), ``projector`` (applies a batch's facts to the tables, in the audit append's transaction), ``rules``
(dates, day bitmaps, occupancy, hours), ``suppression`` (small cells, primary and complementary), ``queries`` (the
report figures as SQL over the tables) and ``exports`` (CSV and SVG).

Every figure is a function of the events in the audit log and of each site's time zone, nothing else: the
projections can be dropped and rebuilt from the log (``rcc reports rebuild``) and the reports come out identical.

DEFINITIONS (the test generator computes the same figures independently, from these words; docs/reports.md says
the same for the directors who read the reports)

Dates. The local date of a fact is its instant converted to its site's time zone (``access.sites.timezone``; UTC
for a site the log names but ``access.sites`` does not know). A range [from, to] is inclusive local dates, at most
366 of them. For site=all each site uses its own zone, and the network's figures cover the facts of every site in
the log. A site's zone is read when an event is projected: after changing it, run ``rcc reports rebuild``.

Visits (``checkin.visitor_checked_in``; check-outs ``checkin.visitor_checked_out`` may arrive first).
- visits: check-ins whose check-in local date is in range; anonymous_visits: those with anonymous true.
- visits_by_purpose: the 7 purposes, each a key (0 when none); visits_by_support_type: the 4 SAMHSA types as the
  check-in recorded it (volunteer_shift has none and counts in no type).
- unduplicated_members: distinct non-null member ids among those visits. new_members: of those, the members whose
  first visit date at that site (over the whole log) is in the range; returning_members = unduplicated - new.
  For site=all a member is new when their earliest visit date anywhere (each visit's date in its own site's zone)
  is in the range.
- peak_occupancy: the most of those visits open at one instant. A visit is open on [check-in, check-out): a
  check-in at t counts from t, a check-out at t ends at t (and is applied before a check-in at the same t, so the
  two never overlap; a visit with check-out <= check-in is never open). A visit without a check-out stays open to
  the end of the range. For site=all: every site's visits, at the same instant.
  If a visit has several check-outs, the latest ends it; if several check-ins, the one with the latest event time.

Volunteering.
- volunteer_hours_approved: minutes of hours records whose latest decision is ``volunteering.hours_approved`` and
  whose shift local date (shift_starts_at) is in range, summed, then shown as hours with 2 decimals (half up), as a
  JSON string ("12.50") so it stays exact. "Latest" is by event time (ties: event id); a record approved, corrected
  and approved again counts once, with the last approval's minutes; a ``volunteering.hours_rejected`` after an
  approval takes it out. volunteer_hours_by_role: the same per role_id (roles with approved hours in range).
  volunteers_active: distinct members with approved hours in range.
- shifts_filled: distinct hours_id of ``volunteering.shift_worked`` whose shift local date is in range;
  shifts_missed: distinct signup_id of ``volunteering.shift_missed`` (starts_at) in range.
- stipends_accrued_cents: amount_cents of ``volunteering.stipend_accrued`` minus amount_cents of
  ``volunteering.stipend_reversed``; stipends_paid_cents: amount_cents of ``volunteering.stipend_paid``; each
  counted on its event time's local date.

Gatherings (a gathering is a group session, ``session_id``, or a sober event, ``event_id``). A gathering's local
date is that of its starts_at, as carried by its latest fact (event time); a gathering is cancelled once any
``*_cancelled`` fact names it.
- group_sessions_held / events_held: gatherings in range with at least one ``gatherings.attended`` and not
  cancelled. group_attendance / event_attendance: distinct attendance ids of gatherings in range (cancelled or not).
- event_registrations: for events in range that are not cancelled, ``gatherings.registered`` +
  ``gatherings.promoted_from_waitlist`` - ``gatherings.registration_cancelled`` with previous_status confirmed
  (parties, not seats).
- waitlist_promotions: ``volunteering.promoted_from_waitlist`` + ``gatherings.promoted_from_waitlist`` whose event
  time local date is in range.

Daily rows: every day of the range, zeros included: visits, unduplicated_members (that day), new_members (first
visit date that day), volunteer_hours (approved, by shift date, 2 decimals), attendance (group + event attendance
of gatherings on that day).

Small cells: min_cell=N (1..100) withholds every count of the report (people, visits, sessions, shifts...) that is
above 0 and below N: null in JSON, empty in CSV, absent from the chart, with ``suppressed: true``. Zero reveals no
one and is shown; hours and cents are not counts of people and are never withheld. Complements are withheld too
(services/audit/reports/suppression.py, ``withheld_cells``), over every report of the range and min_cell at once
(each site's and the network's summary and daily series), until no withheld count follows from the shown ones
through the identities: visits = sum of purposes; support type = sum of its purposes; unduplicated = new +
returning; summary visits / new members / attendance = sum of the days; network = sum of the sites for additive
counts.
"""
