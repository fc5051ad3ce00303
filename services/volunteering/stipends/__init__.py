"""Stipends: policy versions, monthly periods, caps, an append-only ledger and payouts, priced from the hours
volunteering approves. Same schema and migration history as volunteering, same app and routes; the rules are in
``domain``, the boundary with volunteering proper is described in ``models``."""
