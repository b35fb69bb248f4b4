# Two entry points, each installing what it needs first: `make serve` and `make test`.
SHELL := /bin/bash
PY ?= python3
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null)

.PHONY: serve test install install-dev lint typecheck pytest system-deps fuzz-api uv

# uv is pinned and comes from PyPI; it builds .venv from uv.lock exactly. Bytecode is compiled at install: where
# PYTHONDONTWRITEBYTECODE is set (containers, CI images) every process would otherwise compile SQLAlchemy, pydantic,
# FastAPI... from source at each start (`zhiban --help`: ~5.6 s of CPU instead of ~2.5 s).
uv:
	@if ! command -v uv >/dev/null 2>&1 || [ "$$(uv --version | cut -d' ' -f2)" != "$(UV_VERSION)" ]; then \
	  $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; fi

install: uv
	uv sync --frozen --no-dev --compile-bytecode

install-dev: uv
	uv sync --frozen --compile-bytecode

serve: install
	uv run --frozen --no-dev zhiban serve

# Debian packages the tests use: Chromium (Playwright drives /usr/bin/chromium; no browser download)
# a CJK font for the PDF reports, and Dovecot (the IMAP tests start their own server).
SYSTEM_PACKAGES := chromium fonts-wqy-microhei dovecot-imapd
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	  || echo "warning: could not install$$missing; tests that need them fail under CI=true"; fi

lint: install-dev
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .

typecheck: install-dev
	uv run --frozen mypy

# The suite starts dozens of `zhiban` processes (desks, workers, commands): our own modules compiled once, too.
pytest: install-dev system-deps
	uv run --frozen python -m compileall -q src
	uv run --frozen pytest -n 2 --dist loadgroup --durations=40

test: lint typecheck pytest

fuzz-api: install-dev
	uv run --frozen python tools/fuzz_api.py
