# hfscraper: the commands the README gives.  Every target sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite mostly waits on crawls, replicas and servers, so 4 beat the 2 cores.
TEST_WORKERS ?= 4

.PHONY: install demo crawl export test quality bench deploy

install: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	touch $@

# The main job end to end against the bundled Hub replica (loopback only).
demo: install
	scripts/hermetic.sh $(PY) scripts/demo.py

# Crawl the real Hub (HF_ENDPOINT, HF_TOKEN as huggingface_hub reads them).
crawl: install
	$(VENV)/bin/scrapy crawlall -s JOBDIR=state/crawl

# The unified Parquet files and their data card (HFSCRAPER_EXPORT_DIR, default data/huggingface_hub_metadata) from
# the crawled output folder, merged with the previous export. EXPORT_ARGS: e.g. --drop-deleted, --from DIR.
export: install
	$(VENV)/bin/scrapy export $(EXPORT_ARGS)

# Lint (ruff.toml); part of `make test` so a green run means a clean tree.
quality: install
	$(VENV)/bin/ruff check hfscraper tests scripts

# The test suite, in a network namespace with only loopback where the OS allows.
test: install quality
	scripts/hermetic.sh $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The benchmarks against the bundled replica (loopback only): bench/results/<date>.json and bench/RESULTS.md.
bench: install
	scripts/hermetic.sh $(PY) -m bench.run $(BENCH_ARGS)

# Deploy to a scrapyd server with scrapyd-client: the [deploy] target of scrapy.cfg, or DEPLOY_TARGET=NAME for a
# [deploy:NAME] one, or SCRAPYD_URL=http://host:port for any server. DEPLOY_ARGS: more scrapyd-deploy options
# (e.g. --version 1.2). The egg is built in a throwaway copy of the project: scrapyd-deploy writes setup.py,
# build/ and *.egg-info/ next to the scrapy.cfg it uses.
DEPLOY_TARGET ?= default
SCRAPYD_URL ?=
DEPLOY_ARGS ?=
deploy: install
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -R scrapy.cfg pyproject.toml requirements.txt hfscraper "$$tmp"/; \
	target='$(DEPLOY_TARGET)'; \
	if [ -n '$(SCRAPYD_URL)' ]; then \
	  printf '\n[deploy:scrapyd_url]\nurl = %s\n' '$(patsubst %/,%,$(SCRAPYD_URL))' >> "$$tmp/scrapy.cfg"; \
	  target=scrapyd_url; \
	fi; \
	cd "$$tmp" && '$(abspath $(VENV))/bin/scrapyd-deploy' "$$target" $(DEPLOY_ARGS)
