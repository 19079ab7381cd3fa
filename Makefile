# Each target creates .venv when missing. torch is pinned by constraints.txt
# and installed first so nothing pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench browser screenshot clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	# torchattacks, the attacks' test-time reference, declares torchvision (broken with this torch) but never imports it
	$(PY) -m pip install -q --no-deps torchattacks==3.5.1
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/assay demo

# Headless Chromium renders the HTML report in the browser test.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  { echo "install Debian's chromium and chromium-driver (as root: apt-get install chromium chromium-driver)"; exit 1; }

test: setup browser
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/overhead.py

# A screenshot of the newest run's report, as a person would see it.
screenshot: setup browser
	$(PY) -m assay.report.screenshot "$$(ls -td runs/*/ | head -1)report.html" runs/report.png

clean:
	rm -rf $(VENV) runs .pytest_cache
