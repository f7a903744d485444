# The two commands of the README, and the set-up they share.
#   make run    set everything up, then run the system with simulated officers
#   make test   set everything up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench clean

setup: $(STAMP)
	@echo "== Kafka broker jars (Maven, first use only)"
	@$(BIN)/python -c "from streams.broker import ensure_jars; from streams.settings import get_settings; ensure_jars(get_settings().kafka_jars_dir)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	@command -v java >/dev/null || { echo "java not found: install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn not found: install Apache Maven (Debian: apt-get install maven)"; exit 1; }
	@echo "== set-up 1/3: virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "== set-up 2/3: pip itself"
	$(BIN)/pip install --progress-bar on --upgrade pip
	@echo "== set-up 3/3: the project and its test tools (a few minutes the first time)"
	$(BIN)/pip install --progress-bar on -e '.[test]'
	@touch $@

run: setup
	$(BIN)/hotspot run --simulate 20

test: setup
	$(BIN)/pytest

clean:
	-$(BIN)/hotspot broker stop
	rm -rf $(VENV) .cache var
