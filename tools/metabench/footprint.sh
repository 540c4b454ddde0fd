#!/bin/sh
# Build footprint of each engine: modules linked, binary size, cold build
# time (empty build cache, so the standard library is rebuilt too; compare
# against the baseline row).
set -eu
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-8s %8s %12s %12s %10s\n' program modules binary stripped cold-build
for p in base bbolt pebble; do
	mods=$(go list -deps -f '{{with .Module}}{{.Path}}{{end}}' ./footprint/$p |
		grep -v '^github.com/bulwark/bulwark/tools/metabench$' | sort -u | grep -c . || true)
	start=$(date +%s.%N)
	GOCACHE="$out/cache-$p" go build -o "$out/$p" ./footprint/$p
	end=$(date +%s.%N)
	go build -ldflags='-s -w' -o "$out/$p-stripped" ./footprint/$p
	printf '%-8s %8s %12s %12s %9.0fs\n' "$p" "$mods" \
		"$(stat -c %s "$out/$p")" "$(stat -c %s "$out/$p-stripped")" \
		"$(echo "$end - $start" | bc)"
done
