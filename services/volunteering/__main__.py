"""``python -m services.volunteering`` is ``rcc serve volunteering``."""

from services.cli import main

main(["serve", "volunteering"])
