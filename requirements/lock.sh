#!/usr/bin/env bash
# Writes the lock files from pyproject.toml: every package pinned with its hashes, for Python 3.11 on any platform.
# app.lock.txt is what the services and the demo need (deploy/demo.sh, deploy/Dockerfile); test.lock.txt adds the
# test and dev tools (.ci/run) and is held to the same runtime pins. Run it after editing the dependencies in
# pyproject.toml; pass uv's options through, e.g. `--upgrade` (everything) or `--upgrade-package aiohttp`.
#
#   bash requirements/lock.sh [uv pip compile options...]
#
# uv is pinned in the dev extra, so `bash .ci/run` has put it in .venv/bin; any uv on PATH does too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
uv=.venv/bin/uv
[ -x "$uv" ] || uv=uv
# uv reads no pip configuration, so the lock names PyPI's files whatever find-links or extra index this machine's
# pip has.
compile() {
    "$uv" pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
        --custom-compile-command "bash requirements/lock.sh" "$@"
}
compile --extra demo -o requirements/app.lock.txt "$@"
compile --extra demo --extra test --extra dev --constraint requirements/app.lock.txt -o requirements/test.lock.txt "$@"
