# Thin wrapper: installs missing Debian packages, configures, builds, then runs the demo or tests.
# The real build is CMake; see README.md.

# The real-Xen lab's host side (tests/lab/): Xen, the kernel and the Xen tools are never
# installed, only fetched into .lab-cache.
LAB_PACKAGES := qemu-system-x86 busybox-static cpio
PACKAGES := build-essential cmake pkg-config libxen-dev libdpdk-dev dpdk catch2 \
            clang-14 libclang-rt-14-dev clang-format-14 xenstore-utils libtomlplusplus-dev libcli11-dev \
            libfmt-dev libspdlog-dev nlohmann-json3-dev iproute2 procps iputils-ping iperf3 ethtool python3 python3-prometheus-client man-db dpkg-dev file lintian ccache libsystemd-dev systemd libpcap-dev tshark $(LAB_PACKAGES) gnuplot-nox
JOBS       ?= $(shell nproc)
BUILD      ?= build
SAN_BUILD  ?= build-sanitize
TSAN_BUILD ?= build-tsan
FUZZ_SECONDS ?= 60
# ccache keyed on paths relative to the checkout, so a fresh clone reuses what an earlier
# build of the same sources compiled (CI builds three trees from scratch on every run).
LAUNCHER   := -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: deps build check check-format check-fast check-lab check-sanitize check-tsan demo lab clean package

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "netbackd: installing$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "netbackd: missing Debian packages. Run:"; \
	    echo "  sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(LAUNCHER)
	cmake --build $(BUILD) -j $(JOBS)

# The whole suite: the format check, Release build with gcc, the real-Xen lab once (on that
# build), then ASan+UBSan build with clang plus the fuzz runs, then the multi-threaded tests
# under ThreadSanitizer.
check: check-format
	$(MAKE) check-fast check-lab check-sanitize check-tsan

# Every tracked C++ file as .clang-format has it; fails naming the files that are not.
check-format: deps
	git ls-files '*.cpp' '*.hpp' | xargs -r clang-format-14 --dry-run --Werror

check-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE lab

# The lab; its required scenarios are in tests/lab/CMakeLists.txt.
# One netbackd/netback pair in scenario 7 (about 70 s) instead of `make lab`'s three (3.5 min):
# the suite checks that the comparison runs; `make lab` measures it.
check-lab: build
	NETBACKD_LAB_PAIRS=$${NETBACKD_LAB_PAIRS:-1} ctest --test-dir $(BUILD) -L lab -V

check-sanitize: deps
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug $(LAUNCHER) \
	  -DNETBACKD_SANITIZE=address,undefined -DNETBACKD_FUZZ=ON -DNETBACKD_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	ctest --test-dir $(SAN_BUILD) --output-on-failure -j $(JOBS) -LE 'lab|package'

# ThreadSanitizer over the tests labelled `threads` (netbackd_add_test THREADS): builds those
# binaries and what they link, nothing else.
check-tsan: deps
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Release $(LAUNCHER) -DNETBACKD_SANITIZE=thread
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target netbackd_thread_tests
	ctest --test-dir $(TSAN_BUILD) --output-on-failure -j $(JOBS) -L threads

demo: build
	BUILD=$(BUILD) bash configs/demo/demo.sh

# Real Xen 4.17 under QEMU with netbackd in a driver domain; prints a table per scenario
# (README "Real-Xen lab"). Serial log: $(BUILD)/tests/lab/run/serial.log.
lab: build
	ctest --test-dir $(BUILD) -L lab -V

# The Debian package, from the install rules (packaging/): $(BUILD)/netbackd_<version>_amd64.deb.
package: build
	cmake --build $(BUILD) --target package

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(TSAN_BUILD)

# Benchmark, not a test: netbackd against DPDK's vhost-user backend (see bench/README.md).
# BENCH_ARGS= (empty) runs the full mode; --csv FILE writes the runs.
BENCH_ARGS ?= --quick
# dpdk-testpmd (the vhost-user peer, and both peers' virtio-user guest) is in dpdk-dev; the
# ovs-dpdk peer's ovs-vswitchd-dpdk in openvswitch-switch-dpdk (the bench runs a private
# instance, the system's service is not used). The bench refuses to run without its peers.
BENCH_PACKAGES := dpdk-dev openvswitch-switch-dpdk
.PHONY: bench
bench: build
	$(MAKE) --no-print-directory deps PACKAGES="$(BENCH_PACKAGES)"
	$(BUILD)/bench/netbackd-bench $(BENCH_ARGS)
