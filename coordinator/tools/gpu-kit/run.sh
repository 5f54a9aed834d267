#!/bin/sh
# tabgrid GPU kit (built by `npm run kit:gpu`). Needs no network, Node or browser: a Linux x64 machine
# with a GPU and its Vulkan driver (NVIDIA's driver ships one), plus xz or python3 to unpack once.
#   ./run.sh [--quick] [--peak TFLOPS] [--no-torch]      the benchmark: one JSON document on stdout
#   ./run.sh train [--quick]                             the WGSL training loop vs the CPU's (JSON)
#   ./run.sh volunteer --coordinator URL [--count N]     native volunteers (--help for the options)
# Progress goes to stderr. No GPU (testing): VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
set -eu
KIT=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
STAMP=@STAMP@

# Unpack once: into the kit's folder, or a temporary one where the kit is read-only.
WORK=${TABGRID_KIT_WORK:-$KIT/.unpacked}
if ! { mkdir -p "$WORK" 2>/dev/null && [ -w "$WORK" ]; }; then WORK=$(mktemp -d "${TMPDIR:-/tmp}/tabgrid-kit.XXXXXX"); fi
unxz_to() {
  if command -v xz >/dev/null 2>&1; then
    xz -dc "$1" >"$2.tmp"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2.tmp"
  else
    echo "run.sh: xz or python3 is needed to unpack $1" >&2
    exit 1
  fi
  mv "$2.tmp" "$2"
}
if [ ! -f "$WORK/.stamp-$STAMP" ]; then
  echo "[kit] unpacking into $WORK…" >&2
  rm -rf "$WORK/app" "$WORK/node" "$WORK"/.stamp-*
  cp -R "$KIT/app" "$WORK/app"
  while read -r xzfile dest; do
    [ -n "$xzfile" ] || continue
    mkdir -p "$(dirname "$WORK/$dest")"
    unxz_to "$KIT/payload/$xzfile" "$WORK/$dest"
  done <"$KIT/payload/MANIFEST"
  chmod +x "$WORK/node"
  touch "$WORK/.stamp-$STAMP"
fi

# The Vulkan loader and libGLdispatch from the kit, only where this machine has none.
has_lib() {
  for ldc in ldconfig /sbin/ldconfig /usr/sbin/ldconfig; do
    if command -v "$ldc" >/dev/null 2>&1; then
      "$ldc" -p 2>/dev/null | grep -q "$1 " && return 0
      return 1
    fi
  done
  return 1
}
mkdir -p "$WORK/lib"
for lib in libvulkan.so.1 libGLdispatch.so.0; do
  rm -f "$WORK/lib/$lib"
  if ! has_lib "$lib" && [ -f "$KIT/lib/$lib" ]; then ln -s "$KIT/lib/$lib" "$WORK/lib/$lib"; fi
done
export LD_LIBRARY_PATH="$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# NVIDIA's Vulkan driver where containers put it, when the loader's usual folders have none.
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  standard=''
  for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    [ -f "$d/nvidia_icd.json" ] && standard=1
  done
  if [ -z "$standard" ]; then
    for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
      if [ -f "$f" ]; then
        export VK_DRIVER_FILES="$f"
        break
      fi
    done
  fi
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK}"

exec "$WORK/node" "$WORK/app/tabgrid-native.mjs" "$@"
