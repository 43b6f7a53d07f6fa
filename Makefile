# Everything a fresh Debian 12 machine (as root) needs, and the checks CI runs.
# Each step leaves a stamp, so a second `make test` reinstalls nothing.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
DEB_PACKAGES := python3 python3-venv python3-dev gcc pkg-config git \
	libvirt-dev libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils \
	dnsmasq-base systemd iproute2

.PHONY: test check lint unit e2e run-sample deps venv bench clean

test: lint unit

deps: $(STAMPS)/deb
venv: $(STAMPS)/venv

$(STAMPS)/deb:
	@mkdir -p $(STAMPS)
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEB_PACKAGES) 2>/dev/null \
		| awk '$$NF != "installed" {print $$1}'; \
		for p in $(DEB_PACKAGES); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$(echo $$missing | tr '\n' ' ')"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends -o Dpkg::Options::=--force-confold $$missing; \
	fi
	@touch $@

$(STAMPS)/venv: $(STAMPS)/deb pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check reconciler tests $(wildcard bench)
	$(VENV)/bin/ruff format --check reconciler tests $(wildcard bench)

unit: $(STAMPS)/venv
	$(VENV)/bin/pytest -q

run-sample: $(STAMPS)/venv
	$(VENV)/bin/reconciler validate sample-repo

bench: $(STAMPS)/venv
	$(PY) bench/validate.py

clean:
	rm -rf $(STAMPS) $(VENV)
