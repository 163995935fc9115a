# nook: `make` builds a single static binary (cgo, libseccomp linked in).
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -linkmode external -extldflags -static -X main.version=$(VERSION)

.PHONY: all nook deps demo test test-quick vet clean

all: nook

nook:
	CGO_ENABLED=1 $(GO) build -trimpath -tags osusergo,netgo -ldflags '$(LDFLAGS)' -o nook ./cmd/nook

deps:
	./scripts/install-deps

demo:
	./scripts/demo

test:
	./scripts/test

test-quick:
	./scripts/test --quick

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

clean:
	rm -f nook
