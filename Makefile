# Everything here needs root: plugins create namespaces, links and rules,
# and the default install directory is /opt/cni/bin.
#
#   make install   build release binaries, install the plugins into $(PREFIX) and
#                  cnitool into $(BINDIR), run the demo
#   make test      formatting, lints, then every test (unit, namespace, conformance, interop),
#                  then the release build runs the demo
#   make bench     the benchmarks under bench/, against the reference plugins in /usr/lib/cni
#   make symbol-order  rewrite the link order of the release build (needs valgrind)

PREFIX ?= /opt/cni/bin
BINDIR ?= /usr/local/bin
CARGO ?= cargo
# The suite is one executable, cni-plugins; every plugin name (and cnitool)
# is a hard link to it, and the name it is started under picks the role.
SUITE := cni-plugins
# Release builds are linked statically (no dynamic loader at start-up,
# half the resident memory), against musl where rustc has that target
# (scripts/release-triple.sh says why, and installs it with rustup when it
# can; without it, against glibc). An explicit --target keeps the flags
# off build scripts and proc macros.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
TRIPLE := $(shell scripts/release-triple.sh)
RELEASE := target/$(TRIPLE)/release
# The release build's roles as links, laid out as an install directory
# (what the benchmarks run).
LINKS := $(RELEASE)/cni-bin
# Link order: plugins/suite/symbol-order.txt lists the functions the usual
# calls execute (written by scripts/symbol-order.py, `make symbol-order`);
# lld places them together at the start of .text, so a call faults in
# a compact run of code instead of pages all over the binary (resident
# memory, and start-up time). Names lld does not find are skipped: a stale
# list costs locality, never correctness. lld is the default linker of
# x86_64-unknown-linux-gnu; for musl, the C compiler that drives the link
# is pointed at the lld that ships with rustc (as rustc itself does for
# the gnu target). Where neither applies, the order is not applied.
ORDER := $(CURDIR)/plugins/suite/symbol-order.txt
GCC_LD := $(shell rustc --print sysroot)/lib/rustlib/$(HOST)/bin/gcc-ld
RELEASE_FLAGS := -C target-feature=+crt-static
ORDER_FLAGS := -C link-arg=-Wl,--symbol-ordering-file=$(ORDER) -C link-arg=-Wl,--no-warn-symbol-ordering
ifeq ($(TRIPLE),x86_64-unknown-linux-gnu)
RELEASE_FLAGS += $(ORDER_FLAGS)
else ifneq ($(and $(filter %-musl,$(TRIPLE)),$(wildcard $(GCC_LD)/ld.lld)),)
RELEASE_FLAGS += -C link-arg=-fuse-ld=lld -C link-arg=-B$(GCC_LD) $(ORDER_FLAGS)
endif
# binutils' strip (there with the C toolchain cargo links with).
STRIP ?= strip

.PHONY: all build links install demo test bench release-triple release-flags symbol-order

all: build

build:
	RUSTFLAGS="$(RELEASE_FLAGS)" $(CARGO) build --release --target $(TRIPLE) --workspace --bins
	$(STRIP) --strip-all -o $(RELEASE)/.$(SUITE).stripped $(RELEASE)/$(SUITE)
	mv -f $(RELEASE)/.$(SUITE).stripped $(RELEASE)/$(SUITE)

# The target and flags of the release build, for scripts/symbol-order.py.
release-triple:
	@echo '$(TRIPLE)'

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

# The tests run the debug build (it has the fault-injection points); then
# the release build, as `make install` makes it (musl, lld, link order),
# runs the demo, so the shipped executable is built and run too.
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) build --workspace --bins
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
	$(MAKE) links
	scripts/demo.sh $(LINKS)

bench: links
	python3 bench/host-local.py --binary $(LINKS)/host-local --no-build
	python3 bench/bridge.py --ours $(LINKS)
	python3 bench/portmap.py --ours $(LINKS)
