"""The library every service uses: settings, logging, database, outbox, messaging, events, HTTP helpers, auth."""
