# ledgerlet — build, run, test.
GO        ?= go
BIN       := bin/ledgerlet
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# grpcnotrace: grpc leaves out golang.org/x/net/trace, whose html/template pages would make the
# linker keep every exported method of every type (see the ReflectMethod guard in lint).
TAGS      := grpcnotrace
DATA_DIR  ?= $(CURDIR)/.run
DEV_DIR   ?= /var/lib/ledgerlet-dev
# containerd 2.x for the second runtime of the e2e matrix (its CRI container events path),
# beside the 1.6 one: its own dir, bridge and subnet.
DEV2_DIR    ?= /var/lib/ledgerlet-dev2
DEV2_BRIDGE ?= llbr2
DEV2_SUBNET ?= 10.88.78.0/24
E2E_CONTAINERD2 ?= Event|ContainerExit|HTTPD|Removal|RestartPolicies|InitContainers|CrashLoop|LostTrackOf
ENDPOINT  ?= unix:///run/containerd/containerd.sock
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME  ?= 10s

.PHONY: all build run test test-unit test-e2e test-e2e-containerd2 fuzz fuzz-long bench bench-kubelet lint clean

all: build

# Static (no cgo): nothing needs libc, and a node agent's binary should run on any node's
# userland; it also saves libc's pages of RSS.
build:
	CGO_ENABLED=0 $(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ledgerlet

# The agent on examples/manifests. Uses the containerd at $(ENDPOINT) when it
# answers, otherwise starts the project's private one (hack/dev-containerd).
run: build
	@endpoint='$(ENDPOINT)'; \
	sock=$${endpoint#unix://}; \
	if ! { [ -S "$$sock" ] && ctr --address "$$sock" version >/dev/null 2>&1; }; then \
	  echo "no containerd at $$endpoint; starting the private one (hack/dev-containerd up)"; \
	  endpoint=$$(LEDGERLET_DEV_DIR=$(DEV_DIR) hack/dev-containerd up | tail -n 1) || exit 1; \
	fi; \
	mkdir -p $(DATA_DIR); touch $(DATA_DIR)/.started; \
	( for i in $$(seq 1 300); do \
	    if [ -S $(DATA_DIR)/ledgerlet.sock ] && [ $(DATA_DIR)/ledgerlet.sock -nt $(DATA_DIR)/.started ]; then \
	      printf '\nledgerlet is running. In another shell, see what it does:\n  %s pods --data-dir %s\n  %s events -f --data-dir %s\n  %s timeline --text --since 1h --data-dir %s   (or -o timeline.html for the page)\n  %s explain NAMESPACE/NAME --data-dir %s\n\n' \
	        $(BIN) $(DATA_DIR) $(BIN) $(DATA_DIR) $(BIN) $(DATA_DIR) $(BIN) $(DATA_DIR) >&2; exit 0; \
	    fi; sleep 0.1; \
	  done ) & \
	exec $(BIN) run --pod-manifest-path $(CURDIR)/examples/manifests \
	  --container-runtime-endpoint "$$endpoint" --data-dir $(DATA_DIR) \
	  --pod-logs-dir $(DATA_DIR)/pods-logs --hostname-override $${NODE_NAME:-$$(hostname)}

# Everything: lint, unit and property tests (race detector), short fuzz runs,
# and end-to-end tests against a private containerd, registry and kube-apiserver.
test: lint test-unit fuzz test-e2e test-e2e-containerd2

test-unit:
	$(GO) test -race -count=1 ./...

test-e2e:
	@endpoint=$$(LEDGERLET_DEV_DIR=$(DEV_DIR) hack/dev-containerd up | tail -n 1) || exit 1; \
	image=$$(LEDGERLET_DEV_DIR=$(DEV_DIR) hack/dev-registry up | tail -n 1) || exit 1; \
	kubeconfig=$$(hack/dev-apiserver up | tail -n 1); \
	case "$$kubeconfig" in KUBECONFIG_ADMIN=/*) ;; *) echo "hack/dev-apiserver up failed" >&2; exit 1 ;; esac; \
	LEDGERLET_CRI_ENDPOINT=$$endpoint LEDGERLET_TEST_REGISTRY_IMAGE=$$image LEDGERLET_E2E_RESTART_CONTAINERD=1 \
	LEDGERLET_APISERVER_KUBECONFIG_ADMIN=$${kubeconfig#KUBECONFIG_ADMIN=} LEDGERLET_DEV_APISERVER=$(CURDIR)/hack/dev-apiserver \
	LEDGERLET_DEV_CONTROLPLANE=$(CURDIR)/hack/dev-controlplane \
	  $(GO) test -count=1 -p 1 -timeout 40m ./runtime/... ./test/e2e/...

# The pod life and runtime events tests, and the runtime's own for events and lost tasks,
# again on containerd 2.x (built from its module on first use; see hack/dev-containerd),
# where changes come from CRI's container events.
test-e2e-containerd2:
	@endpoint=$$(LEDGERLET_DEV_DIR=$(DEV2_DIR) LEDGERLET_DEV_CONTAINERD=2 LEDGERLET_DEV_BRIDGE=$(DEV2_BRIDGE) \
	  LEDGERLET_DEV_SUBNET=$(DEV2_SUBNET) hack/dev-containerd up | tail -n 1) || exit 1; \
	LEDGERLET_CRI_ENDPOINT=$$endpoint LEDGERLET_DEV_CONTAINERD=2 LEDGERLET_E2E_RESTART_CONTAINERD=1 \
	  $(GO) test -count=1 -p 1 -timeout 20m -run '$(E2E_CONTAINERD2)' ./runtime/ ./test/e2e/...

fuzz:
	@# A target is found by name across packages: two of one name would run only one of them.
	@dup=$$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sort | uniq -d); \
	if [ -n "$$dup" ]; then echo "fuzz target names used twice (only one would run): $$dup"; exit 1; fi
	@set -e; for target in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/func //' | sort -u); do \
	  pkg=$$(grep -rlE "^func $$target\(" --include='*_test.go' . | head -n 1 | xargs dirname); \
	  echo "fuzz $$target in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Long fuzzing: every fuzz target for FUZZTIME_LONG each; the execution
# counts reached are in fuzz-long.log (go test -fuzz prints them).
FUZZTIME_LONG ?= 10m
fuzz-long:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_LONG) 2>&1 | tee fuzz-long.log; \
	echo "--- executions reached:"; grep -E '^(fuzz |.*elapsed:.*execs:)' fuzz-long.log | grep -E '^fuzz |execs: [0-9]+ \(' | awk '/^fuzz /{t=$$2} /execs:/{last[t]=$$0} END{for (k in last) print k": "last[k]}'

# Benchmarks: the log, projections and sources in-process; the agent's
# end-to-end figures against the private containerd (one run each).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 60m ./eventlog/... ./projector/... ./replay/... ./sources/...
	@endpoint=$$(LEDGERLET_DEV_DIR=$(DEV_DIR) hack/dev-containerd up | tail -n 1) || exit 1; \
	LEDGERLET_CRI_ENDPOINT=$$endpoint $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/e2e/

# ledgerlet against the kubelet (standalone, static pods) and the bare CRI floor, on a private
# containerd of its own (LEDGERLET_DEV_DIR, default /var/lib/ledgerlet-bench); writes the table
# into BENCHMARKS.md. Flags for hack/benchkubelet go in BENCH_KUBELET_ARGS (e.g. -exits 3).
bench-kubelet:
	hack/bench-kubelet $(BENCH_KUBELET_ARGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@# The agent keeps to a narrow apiserver client: client-go's clientset links every API group
	@# (~35 MB of binary and ~15 MB of idle RSS; runtime/mirror/kubeapi.go).
	@if $(GO) list -deps ./cmd/ledgerlet | grep -qx 'k8s.io/client-go/kubernetes/scheme'; then \
	  echo "cmd/ledgerlet links k8s.io/client-go/kubernetes/scheme: use runtime/mirror's kubeAPI"; exit 1; fi
	@# No method looked up by name at run time (text/template's field evaluation, reached through
	@# html/template or x/net/trace): the linker then keeps every exported method of every type,
	@# ~5 MB of binary and ~3.5 MB of idle RSS (replay/timeline_html.go writes its page by code).
	@if CGO_ENABLED=0 $(GO) build -tags '$(TAGS)' -ldflags=-dumpdep -o /dev/null ./cmd/ledgerlet 2>&1 | grep -m 3 '<ReflectMethod>'; then \
	  echo "cmd/ledgerlet reaches a reflective method lookup (above): every exported method would be linked"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin .run
