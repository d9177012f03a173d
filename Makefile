# The two commands: `make run` and `make test`. Both install what is missing first.

# Debian packages hawker needs to build, run and test.
DEB_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav ffmpeg
# Only the benchmark needs nginx with its RTMP module, to compare against.
BENCH_PACKAGES := nginx-light libnginx-mod-rtmp

CARGO ?= cargo

.PHONY: run test deps s3s-fs bench-deps build release bench clean fuzz

run: deps release
	./target/release/hawker serve

test: deps s3s-fs
	$(CARGO) test --workspace --locked

# The S3 server the storage tests run against (checks SigV4 signatures). 0.14.1 is the last
# release that builds on rustc 1.95.
S3S_FS_VERSION := 0.14.1

s3s-fs:
	@command -v s3s-fs >/dev/null || test -x "$${CARGO_HOME:-$$HOME/.cargo}/bin/s3s-fs" || \
		$(CARGO) install s3s-fs@$(S3S_FS_VERSION) --features binary --locked

deps:
	@./scripts/install-debs $(DEB_PACKAGES)

bench-deps: deps
	@./scripts/install-debs $(BENCH_PACKAGES)

build:
	$(CARGO) build --workspace --locked

release:
	$(CARGO) build --release --locked

bench: bench-deps release
	./bench/slice.sh

# Fuzzes the RTMP ingest's byte input for FUZZ_TIME seconds on one core (ingest/fuzz/README.md).
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
# Not part of `test`: its separate sanitizer build alone takes minutes.
FUZZ_TIME ?= 900
CARGO_FUZZ_VERSION := 0.13.2

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz@$(CARGO_FUZZ_VERSION) --locked
	cd ingest/fuzz && mkdir -p corpus-run && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run ingest_input \
		corpus-run corpus/ingest_input -- -max_total_time=$(FUZZ_TIME) -dict=rtmp.dict -print_final_stats=1

clean:
	$(CARGO) clean
