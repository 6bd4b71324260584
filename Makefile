# sphere-fwmodel. `make demo` runs the main job on the software machine; `make test` the suite.
# Every target creates what it needs (.venv, .venv-ms, .venv-api) on its own.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MS_VENV := .venv-ms
API_VENV := .venv-api

.PHONY: all demo demo-july-2024 test lint typecheck pytest images bench oracle api-client cramfs-tools clean board board-tools fuzz

all: test

$(VENV)/.stamp: pyproject.toml
	@echo "creating the virtual environment $(VENV) and installing the project into it (first run: about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e '.[dev]'
	touch $@

# Microsoft's azuresphere-imagemetadata pins cryptography < 49: it lives in a venv of its own.
$(MS_VENV)/.stamp:
	@echo "creating $(MS_VENV) for Microsoft's azuresphere-imagemetadata (the oracle the tests compare with)"
	$(PYTHON) -m venv $(MS_VENV)
	$(MS_VENV)/bin/python -m pip install -q 'azuresphere-imagemetadata==0.2.2'
	touch $@

# Microsoft's device REST API client, azuresphere-device-api 1.1.1, pins requests==2.26.0 and
# imports `packaging` without declaring it: a venv of its own too. The tests drive
# `fwmodel serve-api` with it (tests/oracle/device_api_helper.py); they never install it.
$(API_VENV)/.stamp:
	@echo "creating $(API_VENV) for Microsoft's azuresphere-device-api (the client the API tests drive)"
	$(PYTHON) -m venv $(API_VENV)
	$(API_VENV)/bin/python -m pip install -q 'azuresphere-device-api==1.1.1' 'packaging==24.2'
	touch $@

api-client: $(API_VENV)/.stamp

# util-linux's cramfs tools are the other oracle (Debian: util-linux-extra).
cramfs-tools:
	@test -x /usr/sbin/mkfs.cramfs -a -x /usr/sbin/fsck.cramfs || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq util-linux-extra; } || \
	  { echo "mkfs.cramfs/fsck.cramfs missing: install util-linux-extra" >&2; exit 1; }

oracle: $(MS_VENV)/.stamp cramfs-tools

# The C board agent (board/, docs/board.md): native (sanitizers), qemu and mt3620 firmware.
# Debian's toolchains are installed when root and missing; otherwise board/Makefile skips a
# platform with its reason.
board-tools:
	@need=""; \
	command -v cc >/dev/null 2>&1 || need="$$need gcc"; \
	command -v clang >/dev/null 2>&1 || need="$$need clang"; \
	[ -e "$$(clang -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-x86_64.a" ] || \
	  need="$$need libclang-rt-14-dev"; \
	arm-none-eabi-gcc -print-file-name=picolibc.specs 2>/dev/null | grep -q / || \
	  need="$$need gcc-arm-none-eabi picolibc-arm-none-eabi"; \
	command -v qemu-system-arm >/dev/null 2>&1 || need="$$need qemu-system-arm"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq $$need >/dev/null || \
	      echo "board: could not install$$need" >&2; \
	  else echo "board: not root, cannot install$$need" >&2; fi; \
	fi

board: board-tools
	$(MAKE) -C board

fuzz: board-tools
	$(MAKE) -C board fuzz

images: $(VENV)/.stamp
	$(PY) tools/build_images.py --out images/build

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(VENV)/.stamp
	$(VENV)/bin/mypy

# The device tests that run on whatever --hal names (provision, update, refusals, boot, TLS,
# the app certificate store).
DEVICE_TESTS := tests/firmware_model/agent/test_device_update.py \
  tests/firmware_model/agent/test_device_feed.py tests/firmware_model/agent/test_device_rejections.py \
  tests/firmware_model/device/test_device_boot.py tests/firmware_model/device/test_device_tls.py \
  tests/firmware_model/device/test_device_app_certstore.py
PYTEST := $(VENV)/bin/pytest -q -p no:cacheprovider
SMALL_FLASH := --agent-option=--size --agent-option=1048576

# The whole suite on the software machine; the HAL contract over the Python emulator as it
# announces itself (64 KiB frames) and as a board with 4 KiB frames (docs/serial-protocol.md
# 3.1); then the C board agent: the native tier in full (contract and device tests), and the
# QEMU tier on a 1 MiB flash (about a minute). A board that is not built here is skipped with
# its reason (see `make board`).
pytest: $(VENV)/.stamp oracle api-client board
	$(PYTEST)
	$(PYTEST) tests/hal/test_contract.py --hal emulator
	$(PYTEST) tests/hal/test_contract.py --hal emulator \
	  --agent-option=--max-payload --agent-option=4096
	$(PYTEST) tests/hal/test_contract.py $(DEVICE_TESTS) --hal native
	$(PYTEST) tests/hal/test_contract.py $(DEVICE_TESTS) --hal qemu $(SMALL_FLASH)

test: lint typecheck pytest

demo: $(VENV)/.stamp images
	$(PY) -m tools.demo --images images/build

# The July 2024 trusted-keystore update (the image-signing key change), end to end.
demo-july-2024: $(VENV)/.stamp images
	$(PY) -m tools.demo --rehearsal july-2024 --images images/build

bench: $(VENV)/.stamp oracle api-client board
	$(PY) -m bench.verify
	$(PY) -m bench.machine_snapshot
	$(PY) -m bench.serial_link
	$(PY) -m bench.update
	$(PY) -m bench.audit
	$(PY) -m bench.board
	$(PY) -m bench.api

clean:
	rm -rf $(VENV) $(MS_VENV) $(API_VENV) images/build .mypy_cache .ruff_cache .pytest_cache .hypothesis \
	  sphere_fwmodel.egg-info
	rm -f device.flash device.flash.* board.flash board.flash.* lab.flash lab.flash.* apps.flash apps.flash.*
	$(MAKE) -C board clean
