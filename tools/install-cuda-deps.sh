#!/usr/bin/env bash
# Installs what the CUDA layer's tests need on a machine WITHOUT a GPU (Debian 12 bookworm):
#   - Debian's non-free `libnvrtc11.2` (NVRTC 11.8: libnvrtc.so.11.2 + libnvrtc-builtins.so.11.8),
#     so every kernel can be compiled to sm_80/sm_90 cubin and inspected;
#   - Debian's `libcuda1` (the driver's user-space library) downloaded and UNPACKED, not installed,
#     into .cache/libcuda1/, so tests can resolve every bound driver export and see cuInit return
#     CUDA_ERROR_NO_DEVICE (100). Installing it would pull in the whole driver stack; unpacking does not.
#   - Debian's `libcublas11` unpacked into .cache/libcublas11/ (its ELF symbol table is checked against our
#     cuBLAS bindings; it is never loaded: that would need the 200 MB libcublasLt too), and `libnvtoolsext1`
#     unpacked into .cache/libnvtoolsext1/ (the NVTX probe loads it).
# Idempotent: quiet when everything is already there. Needs root (apt). Usage: tools/install-cuda-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root="$(pwd)"
libcuda_dir="$repo_root/.cache/libcuda1"

log() { echo "install-cuda-deps: $*"; }

nvrtc_installed() { dpkg-query -W -f='${Status}' libnvrtc11.2 2>/dev/null | grep -q 'install ok installed'; }
libcuda_unpacked() { compgen -G "$libcuda_dir/usr/lib/*/libcuda.so.1" >/dev/null || compgen -G "$libcuda_dir/usr/lib/*/nvidia/current/libcuda.so.1" >/dev/null; }
unpacked() { compgen -G "$repo_root/.cache/$1/usr/lib/*/$2" >/dev/null; }
all_done() { nvrtc_installed && libcuda_unpacked && unpacked libcublas11 'libcublas.so.11*' && unpacked libnvtoolsext1 'libnvToolsExt.so.1*'; }

if all_done; then exit 0; fi

if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi

# --- 1. Debian's non-free component (NVIDIA's packages live there) ---------------------------------
# Two formats: deb822 (*.sources: a "Components:" field per stanza) and one-line (sources.list, *.list).
# Only stanzas/lines that point at a Debian archive (…debian.org/debian…) are touched.
added_nonfree=0
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  if awk 'BEGIN{RS="";FS="\n"} /URIs:[^\n]*debian\.org\/debian/ && !/Components:[^\n]*[[:space:]]non-free([[:space:]]|$)/ {found=1} END{exit !found}' "$f"; then
    $SUDO cp "$f" "$f.bak-tpeft"
    # Append " non-free" to the Components line of each Debian stanza that lacks it.
    $SUDO awk 'BEGIN{RS="";ORS="\n\n";FS="\n"}
      {
        if ($0 ~ /URIs:[^\n]*debian\.org\/debian/ && $0 !~ /Components:[^\n]*[[:space:]]non-free([[:space:]]|$)/) {
          n = split($0, lines, "\n"); out = ""
          for (i = 1; i <= n; i++) { l = lines[i]; if (l ~ /^Components:/) l = l " non-free"; out = out (i>1?"\n":"") l }
          print out
        } else print $0
      }' "$f.bak-tpeft" | $SUDO tee "$f" >/dev/null
    added_nonfree=1
  fi
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  if grep -Eq '^[[:space:]]*deb[[:space:]].*debian\.org/debian' "$f" && \
     grep -E '^[[:space:]]*deb[[:space:]].*debian\.org/debian' "$f" | grep -Evq '[[:space:]]non-free([[:space:]]|$)'; then
    $SUDO sed -i.bak-tpeft -E '/^[[:space:]]*deb[[:space:]].*debian\.org\/debian/{/[[:space:]]non-free([[:space:]]|$)/!s/[[:space:]]*$/ non-free/}' "$f"
    added_nonfree=1
  fi
done
[ "$added_nonfree" = 1 ] && log "added Debian's non-free component to the apt sources"

# --- 2. package lists -----------------------------------------------------------------------------
if [ "$added_nonfree" = 1 ] || ! apt-cache show libnvrtc11.2 >/dev/null 2>&1 || ! apt-cache show libcuda1 >/dev/null 2>&1; then
  log "apt-get update"
  $SUDO apt-get update -qq >/dev/null
fi

# --- 3. NVRTC 11.8 ----------------------------------------------------------------------------------
if ! nvrtc_installed; then
  log "installing libnvrtc11.2 (NVRTC 11.8)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnvrtc11.2 >/dev/null
fi

# --- 4. libcuda1, libcublas11, libnvtoolsext1: unpacked only ------------------------------------------
unpack() { # package -> .cache/<package>/ (replaced as a whole, so a broken earlier try cannot linger)
  local pkg="$1" dest="$repo_root/.cache/$1" tmp
  log "downloading and unpacking $pkg into .cache/$pkg (not installed)"
  tmp="$(mktemp -d)"
  chmod 0777 "$tmp" # apt-get download writes as the _apt user into the current directory
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  dpkg-deb -x "$tmp"/"${pkg}"_*.deb "$dest.tmp"
  rm -rf "$dest" "$tmp"
  mv "$dest.tmp" "$dest"
}
libcuda_unpacked || unpack libcuda1
unpacked libcublas11 'libcublas.so.11*' || unpack libcublas11
unpacked libnvtoolsext1 'libnvToolsExt.so.1*' || unpack libnvtoolsext1

if ! all_done; then
  echo "install-cuda-deps: after installing, still missing one of: libnvrtc11.2 (dpkg), .cache/libcuda1/**/libcuda.so.1, .cache/libcublas11/**/libcublas.so.11, .cache/libnvtoolsext1/**/libnvToolsExt.so.1" >&2
  exit 1
fi
