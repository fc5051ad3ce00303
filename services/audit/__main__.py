"""``python -m services.audit`` is ``rcc serve audit``."""

from services.cli import main

main(["serve", "audit"])
