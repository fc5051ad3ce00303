"""``python -m services.checkin`` is ``rcc serve checkin``."""

from services.cli import main

main(["serve", "checkin"])
