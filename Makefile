# sphere-fwmodel. `make demo` runs the main job on the software machine; `make test` the suite.
# Every target creates what it needs (.venv, .venv-ms) on its own.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MS_VENV := .venv-ms

.PHONY: all demo test lint typecheck pytest images bench oracle cramfs-tools clean board board-tools fuzz

all: test

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Microsoft's azuresphere-imagemetadata pins cryptography < 49: it lives in a venv of its own.
$(MS_VENV)/.stamp:
	$(PYTHON) -m venv $(MS_VENV)
	$(MS_VENV)/bin/python -m pip install -q 'azuresphere-imagemetadata==0.2.2'
	touch $@

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

# The whole suite on the software machine, then the HAL contract over the serial emulator, as
# announced by default (64 KiB frames) and as a board with 4 KiB frames (docs/serial-protocol.md 3.1).
pytest: $(VENV)/.stamp oracle board
	$(VENV)/bin/pytest -q -p no:cacheprovider
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/hal/test_contract.py --hal emulator
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/hal/test_contract.py --hal emulator \
	  --agent-option=--max-payload --agent-option=4096

test: lint typecheck pytest

demo: $(VENV)/.stamp images
	$(PY) tools/demo.py --images images/build

bench: $(VENV)/.stamp oracle board
	$(PY) -m bench.verify
	$(PY) -m bench.machine_snapshot
	$(PY) -m bench.serial_link
	$(PY) -m bench.update
	$(PY) -m bench.audit
	$(PY) -m bench.board

clean:
	rm -rf $(VENV) $(MS_VENV) images/build .mypy_cache .ruff_cache .pytest_cache .hypothesis
	rm -f device.flash device.flash.*
	$(MAKE) -C board clean
