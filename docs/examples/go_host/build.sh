#!/usr/bin/env bash
# Builds the example Go host into OUT_DIR/wsstep-go-host, offline, from Debian's Go
# packages (golang-go, golang-github-hashicorp-go-plugin-dev, golang-google-grpc-dev,
# golang-goprotobuf-dev; scripts/deps.sh installs them):
#
#   bash docs/examples/go_host/build.sh build/go_host
#
# 1. protoc + protoc-gen-go (goprotobuf 1.3, plugins=grpc) generate the wsstep.v1 stubs
#    from proto/wsstep/v1 into OUT_DIR/gopath/src/wsstep.dev/api/wsstep/v1. Generated
#    code is never committed. The well-known types' .proto files name the newer Go
#    packages (google.golang.org/protobuf/types/known/...); the M options map them to
#    the packages this goprotobuf has. grpc.health.v1 comes with grpc-go.
# 2. go build in GOPATH mode against /usr/share/gocode, with no network (GOPROXY=off)
#    and the build cache in OUT_DIR/cache (GOCACHE overrides), so a rebuild is quick.
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../../proto" && pwd)
gocode=/usr/share/gocode

need="golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev golang-goprotobuf-dev"
for tool in go protoc protoc-gen-go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "go_host/build.sh: '$tool' not found: install $need protobuf-compiler" \
         "(scripts/deps.sh does)" >&2
    exit 1
  fi
done
for pkg in github.com/hashicorp/go-plugin google.golang.org/grpc github.com/golang/protobuf; do
  if [ ! -d "$gocode/src/$pkg" ]; then
    echo "go_host/build.sh: $gocode/src/$pkg missing: install $need (scripts/deps.sh does)" >&2
    exit 1
  fi
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
gen="$out/gopath/src/wsstep.dev/api/wsstep/v1"
mkdir -p "$gen" "$out/tmp"

wkt=github.com/golang/protobuf
maps="Mgoogle/protobuf/descriptor.proto=$wkt/protoc-gen-go/descriptor"
maps+=",Mgoogle/protobuf/duration.proto=$wkt/ptypes/duration"
maps+=",Mgoogle/protobuf/timestamp.proto=$wkt/ptypes/timestamp"
maps+=",Mgoogle/protobuf/wrappers.proto=$wkt/ptypes/wrappers"
maps+=",Mgoogle/protobuf/field_mask.proto=google.golang.org/genproto/protobuf/field_mask"
# Into a fresh directory, then swapped in: a file removed from proto/ does not linger.
rm -rf "$gen.new"
mkdir -p "$gen.new"
protoc -I "$proto" -I /usr/include \
  --go_out="plugins=grpc,$maps:$gen.new" "$proto"/wsstep/v1/*.proto
rm -rf "$gen"
mv "$gen.new/wsstep.dev/api/wsstep/v1" "$gen"
rm -rf "$gen.new"

export GO111MODULE=off GOFLAGS= GOPROXY=off GOENV=off GOTOOLCHAIN=local
export GOPATH="$out/gopath:$gocode"
export GOCACHE=${GOCACHE:-$out/cache}
export GOTMPDIR="$out/tmp"
go build -o "$out/wsstep-go-host" "$here/main.go"
