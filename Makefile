# Everything here needs root: plugins create namespaces, links and rules,
# and the default install directory is /opt/cni/bin.
#
#   make install   build release binaries, install the plugins into $(PREFIX) and
#                  cnitool into $(BINDIR), run the demo
#   make test      formatting, lints, then every test (unit, namespace, conformance, interop)
#   make bench     the benchmarks under bench/, against the reference plugins in /usr/lib/cni
#   make symbol-order  rewrite the link order of the release build (needs valgrind)

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
# Link order: plugins/suite/symbol-order.txt lists the functions the usual
# calls execute (written by scripts/symbol-order.py, `make symbol-order`);
# lld places them together at the start of .text, so a call faults in a
# few hundred KB of code instead of pages all over the binary (resident
# memory, and start-up time). Names lld does not find are skipped: a stale
# list costs locality, never correctness. lld is the linker of this target
# only; elsewhere the order is not applied.
ORDER := $(CURDIR)/plugins/suite/symbol-order.txt
RELEASE_FLAGS := -C target-feature=+crt-static
ifeq ($(TRIPLE),x86_64-unknown-linux-gnu)
RELEASE_FLAGS += -C link-arg=-Wl,--symbol-ordering-file=$(ORDER) -C link-arg=-Wl,--no-warn-symbol-ordering
endif
# binutils' strip (there with the C toolchain cargo links with).
STRIP ?= strip

.PHONY: all build links install demo test bench release-flags symbol-order

all: build

build:
	RUSTFLAGS="$(RELEASE_FLAGS)" $(CARGO) build --release --target $(TRIPLE) --workspace --bins
	$(STRIP) --strip-all -o $(RELEASE)/.$(SUITE).stripped $(RELEASE)/$(SUITE)
	mv -f $(RELEASE)/.$(SUITE).stripped $(RELEASE)/$(SUITE)

# The flags of the release build, for scripts/symbol-order.py.
release-flags:
	@echo '$(RELEASE_FLAGS)'

symbol-order:
	python3 scripts/symbol-order.py

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
