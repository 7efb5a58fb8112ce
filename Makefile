# Everything here needs root: plugins create namespaces, links and rules,
# and the default install directory is /opt/cni/bin.
#
#   make install   build release binaries, install the plugins into $(PREFIX) and
#                  cnitool into $(BINDIR), run the demo
#   make test      formatting, lints, then every test (unit, namespace, conformance, interop)
#   make bench     the benchmarks under bench/, against the reference plugins in /usr/lib/cni

PREFIX ?= /opt/cni/bin
BINDIR ?= /usr/local/bin
PLUGINS := bridge ptp loopback host-local static portmap firewall
CARGO ?= cargo
# Release plugins are linked statically: no dynamic loader at start-up, half
# the resident memory. An explicit --target keeps the flag off build scripts
# and proc macros.
TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
RELEASE := target/$(TRIPLE)/release

.PHONY: all build install demo test bench

all: build

build:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(TRIPLE) --workspace --bins

install: build
	install -d $(PREFIX)
	for p in $(PLUGINS); do install -m 0755 $(RELEASE)/$$p $(PREFIX)/$$p; done
	install -d $(BINDIR)
	install -m 0755 $(RELEASE)/cnitool $(BINDIR)/cnitool
	@echo "installed $(PLUGINS) into $(PREFIX), cnitool into $(BINDIR)"
	scripts/demo.sh $(PREFIX)

demo:
	scripts/demo.sh $(PREFIX)

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) build --workspace --bins
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

bench: build
	python3 bench/host-local.py --binary $(RELEASE)/host-local --no-build
	python3 bench/bridge.py --ours $(RELEASE)
