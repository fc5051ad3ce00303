"""``python -m services.gatherings`` is ``rcc serve gatherings``."""

from services.cli import main

main(["serve", "gatherings"])
