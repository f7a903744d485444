# The two commands of the README, and the set-up they share.
#   make run    set everything up, then run the system with simulated officers
#   make test   set everything up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# npm ci writes this file; it is newer than the lock file once web/node_modules matches it
WEB_STAMP := web/node_modules/.package-lock.json
CHROMIUM  := /usr/bin/chromium

.PHONY: setup chromium run test bench clean

setup: $(STAMP) $(WEB_STAMP) chromium
	@echo "==> Kafka broker jars (Maven resolves them into .cache/kafka-jars/ the first time)"
	@$(BIN)/python -c "from core.broker import ensure_jars; from core.settings import get_settings; ensure_jars(get_settings().kafka_jars_dir)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	@command -v java >/dev/null || { echo "java not found: install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn not found: install Apache Maven (Debian: apt-get install maven)"; exit 1; }
	@echo "==> Python virtual environment in $(VENV)/"
	$(PYTHON) -m venv $(VENV)
	@echo "==> pip: upgrading pip"
	$(BIN)/pip install --progress-bar on --upgrade pip
	@# setuptools' "Editable installation" box only says that our own top-level folders shadow same-named
	@# packages when run from the repo, which is the point of an editable install here: hidden, nothing else is.
	@echo "==> pip: installing hotspot-patrol and its dependencies (a few minutes the first time)"
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --progress-bar on -e '.[test]'
	@touch $@
	@echo "==> Python packages installed"

# Swagger UI and ReDoc for the gateway's /docs and /redoc, pinned by web/package-lock.json (no CDN at run time)
$(WEB_STAMP): web/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js and npm (Debian: apt-get install npm)"; exit 1; }
	@echo "==> npm ci in web/ (API docs assets: swagger-ui-dist, redoc)"
	cd web && npm ci --omit=peer --ignore-scripts --no-audit --no-fund
	@touch $@

# The browser tests (tests/e2e) drive Debian's chromium; Playwright's own browser download is never used.
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> apt-get install chromium (for the browser tests in tests/e2e)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "warning: $(CHROMIUM) not found; the browser tests in tests/e2e need it (Debian: sudo apt-get install chromium)"; \
	fi

run: setup
	$(BIN)/hotspot run --simulate 20

test: setup
	$(BIN)/pytest

clean:
	-$(BIN)/hotspot broker stop
	rm -rf $(VENV) .cache var web/node_modules
