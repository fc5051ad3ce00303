"""``python -m services.pages`` is ``rcc serve pages``."""

from services.cli import main

main(["serve", "pages"])
