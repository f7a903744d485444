# The two commands of the README, and the set-up they share.
#   make run    set everything up, then run the system with simulated officers
#   make test   set everything up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench clean

setup: $(STAMP)
	@$(BIN)/python -c "from streams.broker import ensure_jars; from streams.settings import get_settings; ensure_jars(get_settings().kafka_jars_dir)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	@command -v java >/dev/null || { echo "java not found: install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn not found: install Apache Maven (Debian: apt-get install maven)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

run: setup
	$(BIN)/hotspot run --simulate 20

test: setup
	$(BIN)/pytest

clean:
	-$(BIN)/hotspot broker stop
	rm -rf $(VENV) .cache var
