# sealmail — the two commands a newcomer needs:
#   make run    install what is missing, build, start on the embedded default
#   make test   unit tests, end-to-end tests and short fuzz runs, under ASan+UBSan
#
# Debian packages are installed with apt-get when missing (as root; sudo
# is used when available otherwise).  Nothing else is downloaded.

BUILD_PKGS = gcc meson ninja-build pkg-config libevent-dev libssl-dev libsodium-dev \
             libsqlite3-dev libinih-dev libgmime-3.0-dev zlib1g-dev libisal-dev openssl \
             libunbound-dev libjansson-dev libgumbo-dev libcurl4-openssl-dev publicsuffix \
             dns-root-data
TEST_PKGS  = libcmocka-dev python3 python3-pytest swaks clang libclang-rt-14-dev isync fetchmail \
             python3-yaml python3-dkim python3-cryptography python3-dnspython \
             python3-nacl python3-spf python3-srs opendkim opendkim-tools ldnsutils jq \
             chromium nodejs libnet-ssleay-perl
BENCH_PKGS = postfix bc dovecot-imapd dovecot-pop3d dovecot-lmtpd opendkim opendkim-tools \
             python3-dkim python3-dnspython

PYTHON    = /usr/bin/python3
BUILD     = build
ASAN      = build-asan
FUZZ      = build-fuzz
SAN_ENV   = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FUZZ_SECONDS ?= 20
BROWSER_DIR = tests/e2e/browser
SUDO      = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps deps-test deps-bench build build-asan run test test-unit test-e2e \
        fuzz bench clean browser-deps

all: build

# Install only what dpkg says is missing; quiet when everything is there.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing \
	    >/dev/null || exit 1; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_PKGS))

# npm comes with some builds of nodejs (NodeSource's, which conflicts with Debian's
# npm package): apt is asked for npm only when there is none.
deps-test: deps
	$(call apt_install,$(TEST_PKGS))
	@command -v npm >/dev/null 2>&1 || { echo "installing Debian packages: npm"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends npm >/dev/null || exit 1; }

# playwright-core for the browser tests, exactly as package-lock.json pins it
# (no browser download: the tests drive Debian's chromium); again when the lock changes.
browser-deps: $(BROWSER_DIR)/node_modules/.package-lock.json

$(BROWSER_DIR)/node_modules/.package-lock.json: $(BROWSER_DIR)/package.json \
    $(BROWSER_DIR)/package-lock.json | deps-test
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix $(BROWSER_DIR) --no-audit --no-fund \
	  --loglevel=error
	@touch $@

deps-bench: deps-test
	@echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections
	$(call apt_install,$(BENCH_PKGS))

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dtests=false >/dev/null

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) >/dev/null

$(ASAN)/build.ninja:
	meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

build-asan: deps-test $(ASAN)/build.ninja
	ninja -C $(ASAN) >/dev/null

# The service user the children drop to when started as root.
service-user:
	@if [ "$$(id -u)" = 0 ] && ! id sealmail >/dev/null 2>&1; then \
	  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sealmail; \
	  echo "created system user sealmail"; fi

run: build service-user
	@echo
	@echo "sealmail is starting on the embedded default configuration (data in ./var):"
	@echo "  SMTP        127.0.0.1:2525  (STARTTLS)"
	@echo "  SMTPS       127.0.0.1:2465  (implicit TLS)"
	@echo "  submission  127.0.0.1:2587  (STARTTLS, then AUTH with a mailbox password)"
	@echo "  IMAP        127.0.0.1:2143  (STARTTLS), IMAPS 127.0.0.1:2993"
	@echo "  POP3        127.0.0.1:2110  (STLS),     POP3S 127.0.0.1:2995"
	@echo "  web         https://127.0.0.1:2443/  disposable inboxes on tmp.localhost (self-signed)"
	@echo "Add a domain in another terminal:  $(BUILD)/sealmail domain add example.test"
	@echo "Add a mailbox first:  $(BUILD)/sealmail user add you@example.test"
	@echo "Send a message:  swaks --server 127.0.0.1:2525 --to you@example.test"
	@echo "Read it with any IMAP/POP3 client (self-signed certificate), e.g.:"
	@echo "  curl -k \"imaps://127.0.0.1:2993/INBOX;UID=1\" -u you@example.test"
	@echo "Stop with Ctrl-C."
	@echo
	$(BUILD)/sealmail serve

test: test-unit test-e2e fuzz

test-unit: build-asan
	$(SAN_ENV) meson test -C $(ASAN) --print-errorlogs

test-e2e: build-asan service-user browser-deps
	cd tests/e2e && $(SAN_ENV) SEALMAIL_BIN=$(CURDIR)/$(ASAN)/sealmail \
	  $(PYTHON) -m pytest -q -p no:cacheprovider .

$(FUZZ)/build.ninja:
	CC=clang meson setup $(FUZZ) -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined \
	  -Db_lundef=false >/dev/null

fuzz: deps-test $(FUZZ)/build.ninja
	ninja -C $(FUZZ) >/dev/null
	@for h in $$(find $(FUZZ)/tests/fuzz -maxdepth 1 -type f -perm -u+x -name 'fuzz-*' | sort); do \
	  name=$$(basename $$h); corpus=tests/fuzz/corpus-$$name; mkdir -p $$corpus; \
	  echo "fuzzing $$name for $(FUZZ_SECONDS)s"; \
	  $$h -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/$$name.dict \
	    $$corpus tests/fuzz/seeds/$$name >$(FUZZ)/$$name.log 2>&1 \
	    || { tail -40 $(FUZZ)/$$name.log; exit 1; }; \
	  grep -E '^Done|#[0-9]+.*DONE' $(FUZZ)/$$name.log | tail -1; \
	done

# Every benchmark runs even if an earlier one reports a problem; the status says if any did.
bench: build deps-bench service-user
	@rc=0; bench/smtp-accept || rc=1; bench/store || rc=1; bench/imap || rc=1; \
	  bench/auth || rc=1; bench/http || rc=1; bench/outbound || rc=1; exit $$rc

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
