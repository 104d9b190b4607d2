#!/usr/bin/env bash
# Makes TorchSharp-cpu 0.107's libLibTorchSharp.so load on a libstdc++ older than GCC 13 (Debian 12).
# Run by the bench's build (see TransPeft.Bench.csproj) on the output's runtimes/linux-x64/native folder.
# Does nothing when the system libstdc++ already exports GLIBCXX_3.4.32 or the library is already patched.
#   1. the one symbol needing GLIBCXX_3.4.32 loses its version (patchelf --clear-symbol-version),
#   2. the GLIBCXX_3.4.32 requirement is marked WEAK (ld.so then tolerates its absence),
#   3. a no-op definition of that symbol comes from libtpeft_glibcxx_shim.so, added as a DT_NEEDED.
set -euo pipefail
dir="$1"
lib="$dir/libLibTorchSharp.so"
here="$(cd "$(dirname "$0")" && pwd)"
[[ -f "$lib" ]] || { echo "libtorch-compat: $lib not found (TorchSharp-cpu restore incomplete?)" >&2; exit 1; }
libstdcxx="$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')"
if [[ -n "$libstdcxx" ]] && grep -q GLIBCXX_3.4.32 "$libstdcxx"; then exit 0; fi
if readelf -V "$lib" | grep -q "GLIBCXX_3.4.32  Flags: WEAK"; then exit 0; fi
for tool in patchelf gcc python3 readelf; do
  command -v "$tool" >/dev/null || { echo "libtorch-compat: '$tool' is needed to adapt $lib to this libstdc++ (apt-get install patchelf gcc python3 binutils)" >&2; exit 1; }
done
gcc -shared -fPIC -O2 -o "$dir/libtpeft_glibcxx_shim.so" "$here/glibcxx_shim.c"
patchelf --clear-symbol-version _ZSt21ios_base_library_initv "$lib"
python3 - "$lib" <<'PY'
import re, struct, subprocess, sys
path = sys.argv[1]
sections = subprocess.check_output(["readelf", "-S", "-W", path]).decode()
m = re.search(r"\.gnu\.version_r\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)", sections)
if not m: sys.exit(f"{path}: no .gnu.version_r section")
off, b = int(m.group(1), 16), bytearray(open(path, "rb").read())
dynstr = re.search(r"\.dynstr\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)", sections)
strtab = int(dynstr.group(1), 16)
def cstr(o): return bytes(b[strtab + o:b.index(0, strtab + o)]).decode()
p, patched = off, 0
while True:  # Elf64_Verneed chain, each with its Elf64_Vernaux entries
    _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", b, p)
    a = p + aux
    for _ in range(cnt):
        _, flags, _, name, anext = struct.unpack_from("<IHHII", b, a)
        if cstr(name) == "GLIBCXX_3.4.32":
            struct.pack_into("<H", b, a + 4, flags | 0x2)  # VER_FLG_WEAK
            patched += 1
        a += anext
    if nxt == 0: break
    p += nxt
if patched == 0: sys.exit(f"{path}: no GLIBCXX_3.4.32 requirement found")
open(path, "wb").write(b)
PY
patchelf --add-needed libtpeft_glibcxx_shim.so "$lib"
echo "libtorch-compat: adapted $lib to $(basename "${libstdcxx:-libstdc++}")"
