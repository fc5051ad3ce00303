"""The pages people use — the front-desk kiosk, the volunteer's phone, the coordinator's desk — served on one port
with a proxy to the services' HTTP APIs, so the browser talks to one origin. No business logic lives here."""

SERVICE = "pages"
