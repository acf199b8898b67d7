# weir: `make run` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
GO ?= go
ORT_VERSION := 1.30.0
CACHE := $(CURDIR)/.cache
ORT_DIR := $(CACHE)/onnxruntime-$(ORT_VERSION)
ORT_LIB := $(ORT_DIR)/libonnxruntime.so.1
BIN := build/weir
export ONNXRUNTIME_LIB ?= $(ORT_LIB)
# Debian packages the build and tests need: test models, and the C and WAT
# plugin toolchains.
DEB_PKGS := libonnx-testdata clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt chromium

.PHONY: all build install run demo test bench bench-readme chaos check deps ort debs plugins clean image

include deploy/envtest.mk

all: build

## ort: fetch the official ONNX Runtime shared library once (from the npm package).
ort: $(ORT_LIB)
$(ORT_LIB):
	@echo "fetching ONNX Runtime $(ORT_VERSION) (npm package onnxruntime-node) into $(ORT_DIR)"
	@mkdir -p $(ORT_DIR)/pack
	cd $(ORT_DIR)/pack && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null
	tar -xzf $(ORT_DIR)/pack/onnxruntime-node-$(ORT_VERSION).tgz -C $(ORT_DIR)/pack \
		package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	mv $(ORT_DIR)/pack/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 $@
	rm -rf $(ORT_DIR)/pack

## debs: install the Debian packages that are missing (needs root or sudo).
debs:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || { \
			echo "apt-get install failed: repairing half-configured packages and retrying"; \
			$$SUDO dpkg --configure -a; DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -f install -y -qq; \
			DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; }; \
	fi

deps: ort
	$(GO) mod download

build: deps
	@mkdir -p build
	$(GO) build -o $(BIN) ./cmd/weir

## install: copy build/weir into BINDIR (default: Go's bin directory).
BINDIR ?= $(shell $(GO) env GOPATH)/bin
install: build
	@mkdir -p $(BINDIR)
	install -m 0755 $(BIN) $(BINDIR)/weir
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; *) echo "note: $(BINDIR) is not on PATH: export PATH=\"$(BINDIR):\$$PATH\" (or call ./build/weir)";; esac

## image: the container image (Dockerfile; ONNX Runtime from the same npm
## package as `make ort`). The tag is pinned in deploy/kubernetes too.
VERSION ?= 0.1.0
IMAGE ?= ghcr.io/weirhq/weir:$(VERSION)
image:
	docker build --build-arg ORT_VERSION=$(ORT_VERSION) -t $(IMAGE) .

## plugins: build the example Wasm plugins into build/plugins/.
plugins: debs
	$(MAKE) -C examples/plugins OUT=$(CURDIR)/build/plugins

## run: the gateway with the fraud demo installed and a generator streaming into it.
run: build plugins
	$(BIN) serve --demo

## demo: the whole fraud story on a fresh in-process gateway, with a report
## (DEMO_ARGS=--keep leaves it serving after the report).
demo: build plugins
	$(BIN) demo $(DEMO_ARGS)

# Packages whose state is shared between goroutines run again under the
# race detector (-short: the ONNX conformance run is sampled there).
RACE_PKGS := ./models/... ./router/... ./canary/... ./plugins/... ./features/... ./monitor/... ./gateway/...

# Fuzz targets on what reads the network (issues 11 and 25: the gRPC wire
# check) and the hand-written JSON codecs (issue 18): `make test` runs each
# for FUZZTIME, `make fuzz` for FUZZ_LONG (go test -fuzz takes one target in
# one package per run).
# Every func Fuzz of the module is listed here (internal/lint checks it).
FUZZ_TARGETS := FuzzInferRequest:./models FuzzDecodeRaw:./models FuzzPredictBody:./internal/reqbody \
	FuzzPluginOutput:./plugins FuzzDecodeObject:./sdk/plugin FuzzDecodeEvent:./monitor \
	FuzzValidate:./plugins FuzzInferWire:./oipgrpc FuzzDecodeInferRequest:./models \
	FuzzDecodeObject:./internal/jsonx FuzzDecodeTensor:./internal/onnx FuzzReadModel:./internal/onnx \
	FuzzValidName:./router FuzzSpoolRead:./monitor
FUZZTIME ?= 3s
FUZZ_LONG ?= 5m

test: debs deps plugins envtest-assets
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -race -short -timeout 30m $(RACE_PKGS)
	$(MAKE) --no-print-directory fuzz FUZZ_LONG=$(FUZZTIME)

## fuzz: run every fuzz target for FUZZ_LONG (default 5m each).
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($${t#*:}) for $(FUZZ_LONG)"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZ_LONG) $${t#*:} || exit 1; \
	done

## chaos: the fault-injection suite at full length (kill -9, frozen NATS, full
## disks on tmpfs; needs root for the mounts). `make test` runs a short form.
chaos: deps
	WEIR_CHAOS=full $(GO) test -count=1 -v -timeout 30m ./chaos/

# bench: the report (ratios against baselines measured in the same run,
# gateway/report_test.go), then every micro-benchmark briefly. A few minutes.
# bench-readme also rewrites README.md's performance table from the report.
bench: debs deps plugins envtest-assets
	$(GO) test -run '^$$' -bench '^BenchmarkReport$$' -benchtime 1x -timeout 20m ./gateway/
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkReport' -benchmem -benchtime 100ms -timeout 30m ./...

bench-readme: debs deps plugins envtest-assets
	WEIR_BENCH_README=1 $(GO) test -run '^$$' -bench '^BenchmarkReport$$' -benchtime 1x -timeout 20m ./gateway/

check: deps
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed on:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(GO) mod tidy && git diff --exit-code go.mod go.sum
	$(MAKE) test

## proto: regenerate the committed gRPC code from oipgrpc/inferencepb/inference.proto
## (needs Debian's protobuf-compiler; the Go plugins come from the module proxy).
.PHONY: proto
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
proto:
	@command -v protoc >/dev/null || sudo apt-get install -y protobuf-compiler
	GOBIN=$(CURDIR)/build/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/build/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/build/bin:$$PATH protoc -I oipgrpc/inferencepb \
		--go_out=oipgrpc/inferencepb --go_opt=paths=source_relative \
		--go-grpc_out=oipgrpc/inferencepb --go-grpc_opt=paths=source_relative \
		oipgrpc/inferencepb/inference.proto

clean:
	rm -rf build
