#!/usr/bin/env bash
# pack_deps.sh: the libraries MLXR builds against, packed for a GPU machine that has a compiler,
# CMake and CUDA but not these (the lent device machines: no network, no Debian -dev packages).
# Run here, on a Debian machine set up by scripts/setup.sh; writes DIR (default .devcarry/deps):
#   include/   the headers of PCRE2, cJSON, utf8proc, libedit, libcurl, libmicrohttpd, libyaml
#   lib/       their shared libraries and every library those need (the ldd closure of the built
#              mlxr and mlxrd, less the C runtime the machine has: libc, libm, libgcc_s, libstdc++),
#              with the unversioned names the linker looks for
#   lib/pkgconfig/  one .pc file per library, pointing into DIR (written here: Debian's name
#              private dependencies that the other machine lacks)
# tests/gpu/run.sh uses DIR when pkg-config cannot find the libraries itself. About 20 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.devcarry/deps}
bin=${MLXR_BIN:-build/bin}
[ -x "$bin/mlxr" ] && [ -x "$bin/mlxrd" ] || { echo "pack_deps: build first ($bin/mlxr, $bin/mlxrd)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/include" "$out/lib/pkgconfig"

for pkg in libpcre2-dev libcjson-dev libutf8proc-dev libedit-dev libcurl4-openssl-dev libmicrohttpd-dev libyaml-dev; do
  dpkg -L "$pkg" | grep -E '^/usr/include/.*\.h$' | while read -r h; do
    rel=${h#/usr/include/}
    rel=${rel#x86_64-linux-gnu/}
    mkdir -p "$out/include/$(dirname "$rel")"
    cp "$h" "$out/include/$rel"
  done
done

# the runtime closure, minus the C runtime every Linux machine has
ldd "$bin/mlxr" "$bin/mlxrd" | awk '/=>/ {print $3}' | sort -u | while read -r l; do
  case $(basename "$l") in
    libc.so.*|libm.so.*|libgcc_s.so.*|libstdc++.so.*|libresolv.so.*|libpthread.so.*|libdl.so.*|librt.so.*) continue ;;
  esac
  cp -L "$l" "$out/lib/"
done

pc() { # name libname [cflags-subdir]
  local name=$1 lib=$2 sub=${3:-}
  ln -sf "$(cd "$out/lib" && ls "lib$lib.so."* | head -1)" "$out/lib/lib$lib.so"
  cat >"$out/lib/pkgconfig/$name.pc" <<EOF
prefix=\${pcfiledir}/../..
Name: $name
Description: $name (packed by tests/gpu/pack_deps.sh)
Version: 0
Cflags: -I\${prefix}/include$sub
Libs: -L\${prefix}/lib -l$lib
EOF
}
pc libpcre2-8 pcre2-8
pc libcjson cjson
pc libutf8proc utf8proc
pc libedit edit " -I\${prefix}/include/editline"
pc libcurl curl
pc libmicrohttpd microhttpd
pc yaml-0.1 yaml-0
du -sh "$out"
