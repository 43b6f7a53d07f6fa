# Everything a fresh Debian 12 machine (as root) needs, and the checks CI runs.
# Each step leaves a stamp, so a second `make test` reinstalls nothing.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
DEB_PACKAGES := python3 python3-venv python3-dev gcc pkg-config git \
	libvirt-dev libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils \
	dnsmasq-base systemd iproute2 tini openssh-client gnupg age

.PHONY: test check lint unit e2e e2e-deps run-sample deps venv bench bench-fleet bench-tools bench-oneshot clean

# The tiny guest the end-to-end tests boot (tests/guest/build-guest.sh).
GUEST_DIR := .cache/guest
GUEST_SOURCES := tests/guest/build-guest.sh $(shell find tests/guest/rootfs -type f)

test: lint unit e2e

deps: $(STAMPS)/deb
venv: $(STAMPS)/venv

# Checked again when the Makefile changes: a package added to DEB_PACKAGES (age, for the
# encrypted Secrets) is installed on a machine set up before it; the check installs only
# what is missing.
$(STAMPS)/deb: Makefile
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

$(STAMPS)/venv: pyproject.toml | $(STAMPS)/deb
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@# An editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set no
	@# start writes bytecode either: each would compile the package from source again.
	$(PY) -m compileall -q reconciler
	@touch $@

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check reconciler tests $(wildcard bench)
	$(VENV)/bin/ruff format --check reconciler tests $(wildcard bench)
	$(VENV)/bin/mypy reconciler
	$(VENV)/bin/lint-imports --no-logo

unit: $(STAMPS)/venv
	$(VENV)/bin/pytest -q --ignore=tests/e2e

# libvirtd is started on every run: the daemons of an earlier session do not survive
# it, and the script returns at once when qemu:///system already answers. The guest
# is rebuilt only when its sources change.
e2e-deps: $(STAMPS)/venv $(GUEST_DIR)/initrd.img
	scripts/start-libvirtd.sh

$(GUEST_DIR)/initrd.img: $(GUEST_SOURCES) | $(STAMPS)/deb
	tests/guest/build-guest.sh $(CURDIR)/$(GUEST_DIR)

e2e: e2e-deps
	$(VENV)/bin/pytest -q tests/e2e

# The main job on the embedded default: the sample repository validated, then one
# reconcile pass against libvirt's built-in test driver (no daemon, nothing touched
# on this host), its status reports written under .sample-status/.
run-sample: $(STAMPS)/venv
	$(VENV)/bin/reconciler validate sample-repo --cidr 10.66.10.0/24
	$(VENV)/bin/reconciler apply sample-repo --libvirt-uri test:///default \
		--storage-pool default-pool --network default --domain-type qemu \
		--node-name virtlab-pt-1 --cidr 10.66.10.0/24 --status-dir .sample-status
	@cat .sample-status/README.md

bench: $(STAMPS)/venv
	$(PY) bench/validate.py
	$(PY) bench/reconcile.py
	$(PY) bench/latency.py
	$(PY) bench/startup.py

# Issue 16: 2, 10 and 30 `reconciler run` daemons (test driver) on one bare remote, one push
# changing every VM: first a repository that grows with the fleet (10 VMs per host), then
# one repository of 300 VMs at every size (only the number of hosts changes); about ten
# minutes on two CPUs, so not part of `bench`.
bench-fleet: $(STAMPS)/venv
	$(PY) bench/fleet.py
	$(PY) bench/fleet.py --total-vms 300 --changes 3

# Issue 16: one-shot `reconciler apply` beside kcli, Ansible and bare libvirt calls, on a
# libvirtd the bench starts for itself (as root; never the shared qemu:///system). kcli
# and ansible go into .cache/bench-tools/venv, never into $(VENV).
bench-tools: $(STAMPS)/venv
	$(PY) bench/oneshot.py --tools-only

bench-oneshot: bench-tools
	$(PY) bench/oneshot.py

clean:
	rm -rf $(STAMPS) $(VENV)
