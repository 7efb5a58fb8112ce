# Everything here needs root: plugins create namespaces, links and rules,
# and the default install directory is /opt/cni/bin.
#
#   make install   build release binaries, install the plugins into $(PREFIX) and
#                  cnitool into $(BINDIR), run the demo
#   make test      formatting, lints, then every test (unit, namespace, conformance, interop)
#   make bench     the benchmarks under bench/, against the reference plugins in /usr/lib/cni

PREFIX ?= /opt/cni/bin
BINDIR ?= /usr/local/bin
CARGO ?= cargo
# The suite is one executable, cni-plugins; every plugin name (and cnitool)
# is a hard link to it, and the name it is started under picks the role.
SUITE := cni-plugins
# Release builds are linked statically: no dynamic loader at start-up, half
# the resident memory. An explicit --target keeps the flag off build scripts
# and proc macros.
TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
RELEASE := target/$(TRIPLE)/release
# The release build's roles as links, laid out as an install directory
# (what the benchmarks run).
LINKS := $(RELEASE)/cni-bin

.PHONY: all build links install demo test bench

all: build

build:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(TRIPLE) --workspace --bins

links: build
	scripts/link-roles.sh $(RELEASE)/$(SUITE) $(LINKS)

install: build
	install -d $(PREFIX)
	install -m 0755 $(RELEASE)/$(SUITE) $(PREFIX)/$(SUITE)
	scripts/link-roles.sh $(PREFIX)/$(SUITE) $(PREFIX)
	install -d $(BINDIR)
	ln -f $(PREFIX)/$(SUITE) $(BINDIR)/cnitool 2>/dev/null || ln -sf $(PREFIX)/$(SUITE) $(BINDIR)/cnitool
	@echo "installed $(SUITE) into $(PREFIX) with its plugins as links ($$($(PREFIX)/$(SUITE) --list | grep -vx cnitool | tr '\n' ' ')), cnitool into $(BINDIR)"
	scripts/demo.sh $(PREFIX)

demo:
	scripts/demo.sh $(PREFIX)

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) build --workspace --bins
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

bench: links
	python3 bench/host-local.py --binary $(LINKS)/host-local --no-build
	python3 bench/bridge.py --ours $(LINKS)
	python3 bench/portmap.py --ours $(LINKS)
