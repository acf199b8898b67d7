# syntax=docker/dockerfile:1
#
# weir's image: one binary (`weir serve`, `weir controller`, the CLI) and the
# ONNX Runtime library, on a distroless base, running as non-root (65532).
# Build it with `make image` (docker build -t ghcr.io/weirhq/weir:$(VERSION) .).
#
# The ONNX Runtime library comes from the same npm package and path as
# `make ort` (onnxruntime-node, bin/napi-v6/linux/<arch>/libonnxruntime.so.1);
# deploy/controller/image_test.go checks this file against the Makefile,
# go.mod and deploy/kubernetes/gateway.yaml, since no Docker daemon runs in CI.

ARG GO_VERSION=1.26.8
ARG ORT_VERSION=1.30.0

# 1. ONNX Runtime, from the npm registry.
FROM node:22.12.0-bookworm-slim AS ort
ARG ORT_VERSION
ARG TARGETARCH
WORKDIR /ort
RUN set -eux; \
    case "${TARGETARCH:-amd64}" in amd64) arch=x64 ;; arm64) arch=arm64 ;; *) echo "unsupported arch ${TARGETARCH}"; exit 1 ;; esac; \
    npm pack --silent onnxruntime-node@${ORT_VERSION}; \
    tar -xzf onnxruntime-node-${ORT_VERSION}.tgz package/bin/napi-v6/linux/${arch}/libonnxruntime.so.1; \
    mv package/bin/napi-v6/linux/${arch}/libonnxruntime.so.1 /ort/libonnxruntime.so.1; \
    rm -rf package onnxruntime-node-${ORT_VERSION}.tgz

# 2. The weir binary (cgo: onnxruntime_go loads the library at run time).
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/weir ./cmd/weir

# 3. Runtime: glibc and libstdc++ (for ONNX Runtime), nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=ort /ort/libonnxruntime.so.1 /usr/lib/weir/libonnxruntime.so.1
COPY --from=build /out/weir /usr/bin/weir
ENV ONNXRUNTIME_LIB=/usr/lib/weir/libonnxruntime.so.1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/weir"]
CMD ["serve"]
