# isoforge — build, test, demo.  `make` builds; `make check` runs every test; `make demo` runs
# the main job (a local build) on the embedded default.  Both install what they need first.

CC	?= cc
PKGS	 = libxml-2.0 jansson libcurl libvirt librabbitmq sqlite3 libssh2 libssl libcrypto \
	   libarchive libcrypt libmicrohttpd zlib yaml-0.1
WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
BASE	 = -std=c11 -D_GNU_SOURCE -I. $(WARN) -g
SAN	 = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TSAN	 = -fsanitize=thread -fno-omit-frame-pointer
PKGCFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKGLIBS	 = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# The programs' mains (service/NAME.c → build/NAME).
MAINS	 = service/isoforge.c service/isoforged.c service/isoforge-api.c service/isoforge-novncproxy.c
# Every .c of these folders and of service/'s subfolders is library code, but for the mains.
LIBSRCS	 = $(filter-out $(MAINS),$(wildcard base/*.c drivers/*.c isoboot/*.c service/*.c \
	    service/*/*.c))
# Test programs: tests/<group>/test_*.c, each linked with cmocka and the library.
TESTSRCS = $(wildcard tests/*/test_*.c)

# Three builds of everything: build/ (optimised, what users run), build/san/ (ASan + UBSan,
# what the tests run) and build/tsan/ (ThreadSanitizer: the threaded groups run again on it).
OBJS	 = $(LIBSRCS:%.c=build/obj/%.o)
SANOBJS	 = $(LIBSRCS:%.c=build/san/obj/%.o)
TSANOBJS = $(LIBSRCS:%.c=build/tsan/obj/%.o)
TESTS	 = $(TESTSRCS:%.c=build/san/%)
TSANTESTS = $(TESTSRCS:%.c=build/tsan/%)
# libFuzzer targets: tests/fuzz/fuzz_*.c, on a clang build of the library (ASan + UBSan +
# coverage) in build/fuzz/; `make fuzz` runs each for FUZZ_SECONDS.
FUZZCC	?= clang-14
FUZZSAN	 = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
FUZZLINK = $(subst fuzzer-no-link,fuzzer,$(FUZZSAN))
FUZZSRCS = $(wildcard tests/fuzz/fuzz_*.c)
FUZZOBJS = $(LIBSRCS:%.c=build/fuzz/obj/%.o)
FUZZERS	 = $(FUZZSRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 300
PROGS	 = $(MAINS:service/%.c=%)

# Debian packages: to build, to run builds, to make the test media, to test (a real sshd for the
# SSH driver; real services).
DEPS_BUILD = gcc make pkg-config libc6-dev libxml2-dev libjansson-dev libcurl4-openssl-dev \
	libvirt-dev librabbitmq-dev libsqlite3-dev libssh2-1-dev libssl-dev libcmocka-dev \
	libarchive-dev libcrypt-dev libmicrohttpd-dev zlib1g-dev libyaml-dev clang-14 libclang-rt-14-dev
DEPS_RUN   = jq libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 \
	qemu-utils ovmf swtpm swtpm-tools libxml2-utils dnsmasq-base nftables xorriso mtools novnc
DEPS_MEDIA = xorriso isolinux syslinux-common syslinux-efi extlinux busybox-static cpio mtools \
	dropbear-bin openssh-sftp-server
DEPS_TEST  = openssh-server openssh-client
DEPS_CLOUD = keystone glance-api nova-api python3-openstackclient python3-glanceclient \
	rabbitmq-server amqp-tools uwsgi uwsgi-plugin-python3 sqlite3 curl openssl
# The Horizon plugin and its browser test (tests/dashboard).
DEPS_DASHBOARD = openstack-dashboard python3-selenium chromium chromium-driver
DEPS	   = $(DEPS_BUILD) $(DEPS_RUN) $(DEPS_MEDIA) $(DEPS_TEST) $(DEPS_CLOUD) $(DEPS_DASHBOARD)

.PHONY: all san tsan fuzzers fuzz deps check check-run check-real demo demo-run bench clean \
	install-dashboard uninstall-dashboard dashboard dashboard-run
.SUFFIXES:

all: $(PROGS:%=build/%) build/subreaper

# Helper programs the test scripts run (tests/lib/NAME.c → build/san/tests/lib/NAME).
TESTTOOLS = build/san/tests/lib/console-token

san: $(PROGS:%=build/san/%) $(TESTS) $(TESTTOOLS)

tsan: $(PROGS:%=build/tsan/%) $(TSANTESTS) $(TESTTOOLS:build/san/%=build/tsan/%)

fuzzers: $(FUZZERS)

build/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE) -O2 $(PKGCFLAGS) -MMD -MP -c $< -o $@

build/san/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE) -O1 $(SAN) $(PKGCFLAGS) -MMD -MP -c $< -o $@

build/tsan/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE) -O1 $(TSAN) $(PKGCFLAGS) -MMD -MP -c $< -o $@

build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZCC) $(BASE) -O1 $(FUZZSAN) $(PKGCFLAGS) -MMD -MP -c $< -o $@

build/libisoforge.a: $(OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

build/san/libisoforge.a: $(SANOBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

build/tsan/libisoforge.a: $(TSANOBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(PROGS:%=build/%): build/%: build/obj/service/%.o build/libisoforge.a
	$(CC) -o $@ $^ $(PKGLIBS)

$(PROGS:%=build/san/%): build/san/%: build/san/obj/service/%.o build/san/libisoforge.a
	$(CC) $(SAN) -o $@ $^ $(PKGLIBS)

$(PROGS:%=build/tsan/%): build/tsan/%: build/tsan/obj/service/%.o build/tsan/libisoforge.a
	$(CC) $(TSAN) -o $@ $^ $(PKGLIBS)

build/san/tests/%: tests/%.c build/san/libisoforge.a
	@mkdir -p $(@D)
	$(CC) $(BASE) -O1 $(SAN) $(PKGCFLAGS) -Wno-missing-prototypes -MMD -MP -o $@ $< \
	    build/san/libisoforge.a $(PKGLIBS) -lcmocka

build/tsan/tests/%: tests/%.c build/tsan/libisoforge.a
	@mkdir -p $(@D)
	$(CC) $(BASE) -O1 $(TSAN) $(PKGCFLAGS) -Wno-missing-prototypes -MMD -MP -o $@ $< \
	    build/tsan/libisoforge.a $(PKGLIBS) -lcmocka

build/fuzz/libisoforge.a: $(FUZZOBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libisoforge.a
	@mkdir -p $(@D)
	$(FUZZCC) $(BASE) -O1 $(FUZZLINK) $(PKGCFLAGS) -MMD -MP -o $@ $< \
	    build/fuzz/libisoforge.a $(PKGLIBS)

# Benchmark programs: bench/<name>.c, optimised, linked with the library.
build/bench/%: bench/%.c build/libisoforge.a
	@mkdir -p $(@D)
	$(CC) $(BASE) -O2 $(PKGCFLAGS) -o $@ $< build/libisoforge.a $(PKGLIBS)

# Runs the private libvirtd of tests/lib/libvirtd as a child subreaper (reaps qemu at once).
build/subreaper: tests/lib/subreaper.c
	@mkdir -p $(@D)
	$(CC) $(BASE) -O2 -o $@ $<

# Installs what is missing (as root, idempotent); does nothing when all is there.
deps:
	@missing=$$(for p in $(DEPS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	    done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install packages" >&2; exit 1; fi; \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	        chmod +x /usr/sbin/policy-rc.d; fi; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	        --no-install-recommends $$missing; \
	fi

check: deps
	$(MAKE) check-run

# Every group on the ASan build, then the threaded groups (e2e, worker) on the TSan build.
check-run: all san tsan fuzzers
	ISOFORGE_TSAN_BIN=$(CURDIR)/build/tsan tests/run

# The real-installer group (the official Debian 13 installer, unattended: 30-40 min under TCG);
# not part of check.
check-real: deps all san
	tests/run real

demo: deps
	$(MAKE) demo-run

demo-run: all
	tests/demo

bench: deps all build/bench/transfer build/bench/httpload
	bench/all

# The Horizon plugin, installed the way Debian's dashboard plugins are (as root): the package
# where /usr/bin/python3 finds it, its enabled files in openstack_dashboard/local/enabled, the
# static files collected (and compressed when Horizon compresses offline, as Debian's does).
HORIZON_SHARE	?= /usr/share/openstack-dashboard
HORIZON_PY	?= $(shell /usr/bin/python3 -c 'import os, openstack_dashboard as o; \
	print(os.path.dirname(o.__path__[0]))' 2>/dev/null || echo /usr/lib/python3/dist-packages)
DASHBOARD_ENABLED = $(notdir $(wildcard dashboard/isoforge_dashboard/enabled/_[0-9]*.py))
install-dashboard:
	@[ "$$(id -u)" = 0 ] || { echo "make install-dashboard: run as root" >&2; exit 1; }
	@[ -f $(HORIZON_SHARE)/manage.py ] || { echo "no Horizon in $(HORIZON_SHARE) (apt-get install openstack-dashboard)" >&2; exit 1; }
	PY=$$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	dest=$(DESTDIR)/usr/local/lib/python$$PY/dist-packages; \
	rm -rf $$dest/isoforge_dashboard && install -d $$dest && \
	cp -R dashboard/isoforge_dashboard $$dest/ && find $$dest/isoforge_dashboard -name __pycache__ -prune -exec rm -rf {} + && \
	chmod -R u=rwX,go=rX $$dest/isoforge_dashboard
	install -d $(DESTDIR)$(HORIZON_PY)/openstack_dashboard/local/enabled
	for f in $(DASHBOARD_ENABLED); do install -m 0644 dashboard/isoforge_dashboard/enabled/$$f \
	    $(DESTDIR)$(HORIZON_PY)/openstack_dashboard/local/enabled/$$f; done
	install -d $(DESTDIR)/usr/share/isoforge/metadefs && \
	    install -m 0644 etc/metadefs/isoforge.json $(DESTDIR)/usr/share/isoforge/metadefs/
	cd $(HORIZON_SHARE) && /usr/bin/python3 manage.py collectstatic --noinput --clear -v 0
	cd $(HORIZON_SHARE) && if [ "$$(/usr/bin/python3 manage.py shell -c \
	    'from django.conf import settings; print(bool(getattr(settings, "COMPRESS_OFFLINE", False)))' \
	    2>/dev/null | tail -n 1)" = True ]; then /usr/bin/python3 manage.py compress --force -v 0; fi
	@echo "isoforge_dashboard installed: reload Horizon's web server (apache2: systemctl reload apache2)"

uninstall-dashboard:
	@[ "$$(id -u)" = 0 ] || { echo "make uninstall-dashboard: run as root" >&2; exit 1; }
	rm -rf /usr/local/lib/python3*/dist-packages/isoforge_dashboard /usr/share/isoforge/metadefs
	for f in $(DASHBOARD_ENABLED); do rm -f $(HORIZON_PY)/openstack_dashboard/local/enabled/$$f; done

# Horizon with the plugin, the API, the console proxy, a worker and the test cloud on 127.0.0.1
# for a newcomer to click through (tests/dashboard/run-dashboard); Ctrl-C stops it all.
dashboard: deps
	$(MAKE) dashboard-run

dashboard-run: all
	tests/dashboard/run-dashboard

# Each fuzzer for FUZZ_SECONDS from its seeds (tests/fuzz/corpus/NAME, committed); what it
# finds new goes to build/fuzz/corpus/NAME (kept between runs, not committed); crashes to
# build/fuzz/crashes/.
fuzz: deps fuzzers
	tests/fuzz/run-fuzzers $(FUZZ_SECONDS)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
