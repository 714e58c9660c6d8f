# Every target is one line a newcomer can read; the README names them.
GO       ?= go
BIN      ?= bin
# The release, x.y.z (Kong refuses any other plugin VERSION): the VERSION
# file, or `make build VERSION=1.2.3`; the plugin's defaultVersion matches it.
VERSION  ?= $(shell cat VERSION)
SEMVER   := ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$$
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: all build test e2e bench bench-kong bench-fastpath lint schema run fuzz pongo pongo-local clean

all: build

build:
	@echo '$(VERSION)' | grep -Eqx '$(SEMVER)' || { echo "make: VERSION='$(VERSION)' is not x.y.z (Kong refuses the plugin)" >&2; exit 1; }
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./plugins/service-registry ./adminsvc/... ./deploy/echo-backend

test:
	$(GO) vet ./... && $(GO) test -race -count=1 -timeout 12m ./...

e2e:
	$(GO) test -race -count=1 ./tests/harness/ ./tests/e2e/

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 20m ./...

# Throughput in a real Kong (../shared/realkong build; KONGBENCH_REALKONG=/opt/realkong39 for 3.9),
# wrk, interleaved rounds; tables to BENCHMARKS.md by hand (KONGBENCH_OUT=file writes them).
bench-kong:
	KONGBENCH=1 $(GO) test -count=1 -v -run '^TestKongBench$$' -timeout 40m ./tests/kongbench/

# Issue 16 acceptance 1: POST /register → first 200 through a real Kong holding 10 000 routes, fast
# path on and off, DB-less and DB mode (tests/realkong TestFastPathBench; FASTBENCH_DIRS: the builds;
# SR_FASTBENCH_ROUTES / SR_FASTBENCH_N scale it; the table goes to SR_FASTBENCH_OUT too).
FASTBENCH_DIRS ?= /opt/realkong
bench-fastpath:
	SR_FASTBENCH=1 SR_REALKONG_DIRS="$(FASTBENCH_DIRS)" $(GO) test -count=1 -v -run '^TestFastPathBench$$' -timeout 120m ./tests/realkong/

# gofmt, go vet and staticcheck (pinned; `go run` fetches it by exact version
# when it is not installed: STATICCHECK=staticcheck uses the one on PATH).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

schema:
	$(GO) run ./plugins/service-registry -dump | python3 -m json.tool --indent 2 > kong/schemas/service-registry.json

# adminsvc on SR_REDIS_URL's Redis; starts one (AOF in bin/) only when none answers, stops it after.
run: build
	BIN=$(BIN) ./adminsvc/run-local.sh

# Every fuzz target for a fixed number of executions (CI runs it after the
# tests). A count, not a duration: with -fuzztime=<duration>, Go 1.26's fuzz
# coordinator can report a bare "context deadline exceeded" failure when the
# time runs out while a worker is mid-call (go.dev/issue/75804, fixed in Go
# 1.27; seen in CI on FuzzTranslate, no input written). The list comes from
# `go test -list` in each package with a Fuzz function, so a new target is
# never skipped.
FUZZ_TIME ?= 40000x
fuzz:
	@set -e; for d in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  list=$$($(GO) test -list '^Fuzz' $$d) || { echo "$$list"; exit 1; }; \
	  for t in $$(echo "$$list" | grep '^Fuzz'); do \
	    echo "fuzz $$d $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime=$(FUZZ_TIME) $$d; \
	  done; \
	done

pongo: build
	KONG_VERSION=3.9.x pongo run tests/pongo

# The same specs without Docker, on each Kong built from source with
# ../shared/realkong/build.sh (3.4.2 and 3.9.3; the Go suite tests/realkong
# reads the same SR_REALKONG_DIRS). Redis on its own port: busted.sh would
# otherwise use, and the specs flush, whatever answers on 6379.
SR_REALKONG_DIRS ?= /opt/realkong /opt/realkong39
PONGO_REDIS_PORT ?= 20379
pongo-local: build
	for k in $(SR_REALKONG_DIRS); do echo "== pongo specs on $$k"; REALKONG=$$k SR_PLUGIN_BIN=$(abspath $(BIN))/service-registry KONG_SPEC_TEST_REDIS_PORT=$(PONGO_REDIS_PORT) $$k/bin/busted.sh tests/pongo || exit 1; done

clean:
	rm -rf $(BIN)
