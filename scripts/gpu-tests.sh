#!/usr/bin/env bash
# The GPU code path without a GPU: builds with the `vulkan` feature (burn's
# Vulkan backend, shaders compiled to SPIR-V by cubecl, patched:
# third_party/README.md), the build a GPU runs, and runs tests/gpu/ on
# Mesa's software Vulkan driver, lavapipe.
#
#   scripts/gpu-tests.sh [--wgsl] [cargo test arguments]
#
# `--wgsl` builds the `wgpu` feature instead (WGSL shaders that wgpu
# translates through naga: the device check's fallback build). Both builds
# share every line of our code (device.rs, the CubeCL kernels, the
# forward, training); they differ in the shader compiler.
#
# Needs a Vulkan loader and lavapipe (Debian/Ubuntu: libvulkan1 and
# mesa-vulkan-drivers; .ci/run installs them when missing). About 14 min of
# build on 2 cores the first time, then well under a minute of tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! compgen -G "/usr/share/vulkan/icd.d/lvp_icd*.json" >/dev/null \
  && ! compgen -G "/etc/vulkan/icd.d/lvp_icd*.json" >/dev/null; then
  echo "scripts/gpu-tests.sh: Mesa's software Vulkan driver is not installed (apt-get install libvulkan1 mesa-vulkan-drivers)" >&2
  exit 2
fi

# Asks for the software adapter by name: without it energyflow refuses a
# CPU adapter (slower than --device cpu). Mesa complains on stderr when
# XDG_RUNTIME_DIR is unset; a private one keeps the log readable.
export CUBECL_WGPU_DEFAULT_DEVICE=Cpu
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
feature=vulkan
if [ "${1:-}" = --wgsl ]; then
  feature=wgpu
  shift
fi
cargo test --release --features "$feature" --test gpu "$@"
