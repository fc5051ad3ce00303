"""``python -m services.notify`` is ``rcc serve notify``."""

from services.cli import main

main(["serve", "notify"])
