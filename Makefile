# Two commands matter: `make demo` and `make test`. Both install everything from the lock file.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --locked --all-extras --no-sync

.PHONY: install demo ui system-packages test test-install lint unit integration clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet 'uv>=0.9,<1'

install: $(UV)
	$(UV) sync --locked --all-extras

lint: install
	$(RUN) ruff check .

demo: install
	$(RUN) python scripts/demo.py

# Airflow (api-server, scheduler, dag-processor, triggerer) + the MLflow UI on the demo's MLOPS_HOME, on 127.0.0.1.
ui: install
	$(RUN) python scripts/ui.py

system-packages:
	bash scripts/install_system_packages.sh

test: lint system-packages
	$(RUN) pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=25 --ignore=tests/install

# The package as a team installs it: build the wheel, plain pip (no lock) into fresh venvs on Python
# 3.11 and 3.12, then providers list, the plugin, an s3:// round trip on moto, the default home, init.
# Separate from `make test` because it is an install (minutes of pip per interpreter), not a test of
# the code; .ci/run runs both.
test-install: install
	$(RUN) pytest -q -p no:cacheprovider -n 2 --dist loadgroup tests/install

unit: install
	$(RUN) pytest -q tests/unit

clean:
	rm -rf .mlops
