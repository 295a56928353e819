# Payroll consolidation service. `make help` lists the targets.

MODULES      := proto pkg coordinator worker deploy/k8stest
TOOLS        := $(CURDIR)/bin/tools
BUF_VERSION  := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
GRPC_GATEWAY_VERSION       := v2.34.0
GOVULNCHECK_VERSION        := v1.10.0
GO_TEST_FLAGS ?= -count=1 -timeout 25m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# REVISION is stamped into the binaries (their -version, the metrics row) when the
# build information has none: go build records no VCS data in a git worktree or
# under -buildvcs=false.
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)

.PHONY: build
build: ## build bin/coordinator, bin/worker, bin/cierrectl (shipped) and bin/devcluster, bin/benchmark (development only)
	go build -ldflags "-X github.com/nominacl/consolidation/pkg/config.Revision=$(REVISION)" -o bin/ ./coordinator/cmd/... ./worker/cmd/...

.PHONY: test
test: ## run every test of every module (starts its own PostgreSQL and Redis unless TEST_DATABASE_URL/TEST_REDIS_URL are set)
	go test $(GO_TEST_FLAGS) $(addprefix ./,$(addsuffix /...,$(MODULES)))
	go test $(GO_TEST_FLAGS) -tags faultinject ./worker/internal/chunk/

# The fault tests: each injects a real fault (signals, pg_terminate_backend, server
# restarts, stalled commits) and compares the rows with a clean run's.
FAULT_TESTS := Stale|Killed|Dies|Redis|Postgres|Cancel|TimeLimit|Duplicate|Coordinator|SIGTERM|Replica|Permanent|WorkerRestarted|Pooler

.PHONY: test-race
test-race: ## the unit packages (no end-to-end processes) with the race detector
	go test -race -count=1 -timeout 15m $$(go list $(addprefix ./,$(addsuffix /...,$(MODULES))) | grep -v /e2e)

.PHONY: test-faults
test-faults: ## the end-to-end fault tests three times in a row (a flake fails CI)
	go test -count=3 -timeout 30m -run '$(FAULT_TESTS)' ./coordinator/e2e/

# CI runs the whole end-to-end suite three times: once in make test, then
# E2E_REPEAT more times here. A test that fails once in those runs is a bug to
# find, not a retry to add.
E2E_REPEAT ?= 2
.PHONY: test-e2e-repeat
test-e2e-repeat: ## the whole end-to-end suite E2E_REPEAT (2) more times in a row (with make test's run, three)
	go test -count=$(E2E_REPEAT) -timeout 50m ./coordinator/e2e/

# The chaos soak (coordinator/e2e/chaos_test.go, docs/reliability.md): the same
# CHAOS_SEED draws the same sequence of faults.
CHAOS_DURATION ?= 2m
CHAOS_SEED     ?= 1
CHAOS_TIMEOUT  ?= 3h

.PHONY: chaos
chaos: ## chaos soak for CHAOS_DURATION (2m): 2 coordinators, 3 workers, closings started continuously under faults drawn from CHAOS_SEED (1); prints the table, fails on any invariant violation
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) go test -count=1 -timeout $(CHAOS_TIMEOUT) -v -run '^TestChaosSoak$$' ./coordinator/e2e/

# Each fuzz target as package:name. The PostgreSQL ones (pkg/store) share one
# database with the fuzzing engine's workers (pgtest.NewFuzzDatabase).
FUZZ_TARGETS := pkg/rut:FuzzParse pkg/money:FuzzParse pkg/money:FuzzFromNumeric \
	pkg/store:FuzzSQLCanonicalRUTMatchesGo pkg/store:FuzzCopyBinary
FUZZTIME ?= 10s

# Go 1.26's fuzzing engine can end a run at -fuzztime with a bare "context
# deadline exceeded" when a loaded machine keeps a worker from answering in time
# (golang/go#75804, fixed in Go 1.27): that failure, with no failing input
# written, is reported and not counted as a finding.
.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (10s); a failing input is saved under the package's testdata/fuzz and fails the target
	@out=$$(mktemp); trap 'rm -f $$out' EXIT; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz ./$$pkg $$name for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg/ >$$out 2>&1; rc=$$?; cat $$out; \
		[ $$rc -eq 0 ] && continue; \
		if grep -q 'context deadline exceeded' $$out && ! grep -q 'Failing input written' $$out; then \
			echo "fuzz $$name: the engine's deadline race (golang/go#75804), no failing input: not a finding"; continue; \
		fi; \
		exit $$rc; \
	done

.PHONY: tools
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/protoc-gen-grpc-gateway $(TOOLS)/protoc-gen-openapiv2 ## install buf and the protoc plugins into bin/tools

$(TOOLS)/buf:
	GOBIN=$(TOOLS) GOWORK=off go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) GOWORK=off go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) GOWORK=off go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/protoc-gen-grpc-gateway:
	GOBIN=$(TOOLS) GOWORK=off go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(TOOLS)/protoc-gen-openapiv2:
	GOBIN=$(TOOLS) GOWORK=off go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
$(TOOLS)/govulncheck:
	GOBIN=$(TOOLS) GOWORK=off go install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

# govulncheck reports the known vulnerabilities the shipped code can reach, from
# the Go vulnerability database (GOVULNDB, https://vuln.go.dev). Without network
# access to it the check is skipped, saying so, rather than failing the build; a
# mirror of the database (GOVULNDB=https://… or file:///…) makes it run offline.
GOVULNDB ?= https://vuln.go.dev
.PHONY: vulncheck
vulncheck: ## govulncheck on every service module, when the vulnerability database (GOVULNDB) answers within 5 s; skipped with a message when not
	@case "$(GOVULNDB)" in \
	file://*) ;; \
	*) if ! command -v curl >/dev/null; then \
		echo "vulncheck SKIPPED: no curl to reach the Go vulnerability database $(GOVULNDB) with"; exit 0; \
	fi; \
	if ! curl -fsS --max-time 5 -o /dev/null "$(GOVULNDB)/index/db.json" 2>/dev/null; then \
		echo "vulncheck SKIPPED: the Go vulnerability database $(GOVULNDB) could not be reached within 5 s; set GOVULNDB to a reachable mirror (or file:///…) to check"; exit 0; \
	fi ;; \
	esac; \
	$(MAKE) --no-print-directory $(TOOLS)/govulncheck && \
	for m in proto pkg coordinator worker; do \
		echo "govulncheck ./$$m/..."; (cd $$m && $(TOOLS)/govulncheck -db "$(GOVULNDB)" ./...) || exit 1; \
	done

.PHONY: generate
generate: tools ## regenerate the protobuf code in proto/ and docs/openapi/ (buf with local plugins)
	$(TOOLS)/buf generate

.PHONY: lint
lint: tools ## buf lint, go vet, gofmt, and go mod tidy on every module
	$(TOOLS)/buf lint
	go vet $(addprefix ./,$(addsuffix /...,$(MODULES)))
	go vet -tags faultinject ./worker/...
	@test -z "$$(gofmt -l $(MODULES))" || { echo "gofmt needed:"; gofmt -l $(MODULES); exit 1; }
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy -diff >/dev/null) || { echo "$$m/go.mod is not tidy: run (cd $$m && GOWORK=off go mod tidy)"; exit 1; }; done

# What make generate writes: the Go code under proto/ and the OpenAPI document of
# the HTTP API.
GENERATED := proto docs/openapi

.PHONY: verify
verify: generate lint vulncheck ## check generated code and the OpenAPI document are up to date, lint, and govulncheck (when its database is reachable)
	@test -z "$$(git status --porcelain --untracked-files=all -- $(GENERATED))" || { git status --short --untracked-files=all -- $(GENERATED); echo "generated code or docs/openapi is out of date or untracked: run make generate and commit"; exit 1; }

.PHONY: pin-images
pin-images: ## pin deploy/docker/Dockerfile's base images to their tags' current digests (needs registry access and crane or docker buildx); review, rebuild, commit
	deploy/docker/pin-images deploy/docker/Dockerfile

.PHONY: demo
demo: build ## start PostgreSQL, Redis, a coordinator and three workers; consolidate a synthetic closing with a progress bar
	bin/devcluster demo $(DEMO_FLAGS)

.PHONY: bench
bench: build ## measure 133 to 100,000-employee closings against the single-stream COPY floor (BENCH_FLAGS=-million for 1,000,000)
	bin/benchmark $(BENCH_FLAGS)
