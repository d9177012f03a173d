# The two commands: `make run` and `make test`. Both install what is missing first.

# Debian packages hawker needs to build, run and test.
DEB_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav ffmpeg \
	dpkg-dev binutils
# The browser tests drive Debian's Chromium (never a browser a test tool downloads); the
# repository tests start their own PostgreSQL server from Debian's package, and nginx in front of
# hawker with the README's reverse-proxy example.
TEST_PACKAGES := chromium postgresql haproxy python3-icalendar nginx-light
# Only the benchmark needs nginx with its RTMP module, to compare against.
BENCH_PACKAGES := nginx-light libnginx-mod-rtmp

CARGO ?= cargo

.PHONY: run test deps test-deps web s3s-fs bench-deps build release deb bench clean fuzz

run: deps web release
	./target/release/hawker serve

# The tests include the Debian package: built from this (debug) build, installed with apt
# (its dependencies with it), then smoke-tested as installed (tests/e2e/package.rs).
# The RTMP core's no-panic lints, denied in rml_rtmp's and rml_amf0's lib.rs, fail its clippy run.
test: deps test-deps web s3s-fs
	$(CARGO) build --locked
	$(CARGO) clippy --locked -p rml_rtmp -p rml_amf0
	deb=$$(./scripts/build-deb target/debug/hawker) && ./scripts/install-deb "$$deb"
	$(CARGO) test --workspace --locked

# The S3 server the storage tests run against (checks SigV4 signatures). 0.14.1 is the last
# release that builds on rustc 1.95.
S3S_FS_VERSION := 0.14.1

s3s-fs:
	@command -v s3s-fs >/dev/null || test -x "$${CARGO_HOME:-$$HOME/.cargo}/bin/s3s-fs" || \
		$(CARGO) install s3s-fs@$(S3S_FS_VERSION) --features binary --locked

deps:
	@./scripts/install-debs $(DEB_PACKAGES)

test-deps:
	@./scripts/install-debs $(TEST_PACKAGES)

# The pages' npm packages (hls.js, built into the binary; playwright-core for the browser
# tests), from the registry at the versions package-lock.json pins.
WEB := api/web
web:
	@command -v npm >/dev/null || ./scripts/install-debs nodejs npm
	@test $(WEB)/node_modules/.package-lock.json -nt $(WEB)/package-lock.json || \
		(cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error)

bench-deps: deps
	@./scripts/install-debs $(BENCH_PACKAGES)

build: web
	$(CARGO) build --workspace --locked

release: web
	$(CARGO) build --release --locked

# The Debian package of the release build: target/debian/hawker_VERSION_ARCH.deb (README,
# "Deploy as a service").
deb: deps release
	./scripts/build-deb target/release/hawker

bench: bench-deps release
	./bench/slice.sh

# Fuzzes every target in turn on one core: the RTMP core directly (chunk decoder, server
# session, messages, AMF0, handshake) and the whole connection (ingest_input). Each runs until
# FUZZ_RUNS executions, or FUZZ_TIME seconds if set (0 = no time limit); a crash stops the run
# and leaves its input in ingest/fuzz/artifacts/TARGET/ (ingest/fuzz/README.md).
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
# Not part of `test`: its separate fuzzing build alone takes minutes.
FUZZ_TARGETS ?= chunk_decoder session message amf0 handshake ingest_input
FUZZ_RUNS ?= 1000000
FUZZ_TIME ?= 0
CARGO_FUZZ_VERSION := 0.13.2

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz@$(CARGO_FUZZ_VERSION) --locked
	cd ingest/fuzz && for target in $(FUZZ_TARGETS); do \
		case $$target in chunk_decoder|session) seeds=corpus/ingest_input;; *) seeds=corpus/$$target;; esac; \
		mkdir -p corpus-run/$$target && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none $$target corpus-run/$$target $$seeds -- \
			-runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_TIME) -dict=rtmp.dict -print_final_stats=1 \
			> fuzz-$$target.log 2>&1; status=$$?; \
		echo "== $$target (ingest/fuzz/fuzz-$$target.log)"; grep -E "^(stat::|#[0-9]+[[:space:]]+DONE)" fuzz-$$target.log; \
		[ $$status -eq 0 ] || { tail -40 fuzz-$$target.log; exit 1; }; \
	done

clean:
	$(CARGO) clean
