#!/usr/bin/env bash
# The whole GPU check (issue 20) as one call of the device tool.
#
#   scripts/device-check.sh prepare   # here: builds and gathers .device/
#   # then, with the device tool (one call, timeout_s 540):
#   #   run(command="bash scripts/device-check.sh device", carry=[".device"])
#
# `prepare` builds the stripped `--features vulkan` release binary and
# the GPU tests (tests/gpu/) for it, runs those tests on lavapipe when it
# is installed, builds the `--features wgpu` binary as a fallback
# (below), downloads
# the Debian Vulkan loader packages the device README names, and copies the
# PyTorch peer into .device/ (git-ignored; well under the 64 MiB carried).
# `device`, on the lent machine, unpacks the loaders, checks the loader and
# the NVIDIA ICD, then writes at most 8 files under $OUT:
#   env.txt           nvidia-smi, ldconfig's vulkan lines, the ICD, tests/gpu/
#   ours-debug.json, ours-experiment.json, ours-optimized.json
#                     `energyflow bench step --device vulkan --json` (one line)
#   peer.jsonl        the PyTorch peer on CUDA, one line per preset
#   smi.csv           nvidia-smi sampled every 200 ms during our steps
#                     (utilisation, memory), with a marker line per preset
#   log.txt           every command's stderr, for when something fails
#   sweep.jsonl       the debug step at 32, 128 and 512 dispatches per
#                     queue submit (CUBECL_WGPU_MAX_TASKS), if time is left
# Every step has its own time limit, most valuable first (the tests, ours,
# then the peer): the limits add up to about 10 minutes, a working GPU
# needs a few, and the call's timeout_s (540) bounds the whole; whatever
# is under $OUT by then comes back.
set -uo pipefail
cd "$(dirname "$0")/.."
D=.device

prepare() {
  set -e
  mkdir -p "$D/gl"
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >>.git/info/exclude
  # One cargo command builds the binary and the GPU tests (tests/gpu/) with
  # the same features, so burn is built once; both are stripped and
  # xz-compressed (about 80 MB each stripped) to fit the 64 MiB carried.
  # The test binary is picked by its target, not by its place in cargo's
  # output (where the energyflow binary can come last).
  local t
  t=$(cargo test --release --features vulkan --test gpu --no-run --message-format=json \
    | python3 -c 'import json,sys; print(next(m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["kind"] == ["test"] and m["target"]["name"] == "gpu"))')
  strip -o "$D/energyflow" target/release/energyflow
  # The tests run the binary by the absolute path cargo gave them here.
  realpath target/release/energyflow >"$D/bin-path"
  strip -o "$D/gpu-tests" "$t"
  # The same tests here first, on lavapipe, before the binary above is
  # replaced: the SPIR-V build runs there since cubecl-spirv is patched
  # (third_party/README.md), and a failure here would waste a device call.
  if compgen -G "/usr/share/vulkan/icd.d/lvp_icd*.json" >/dev/null; then
    CUBECL_WGPU_DEFAULT_DEVICE=Cpu XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" "$t" \
      || { echo "scripts/device-check.sh: the SPIR-V build fails tests/gpu/ on lavapipe" >&2; exit 1; }
  fi
  # The wgpu build too (WGSL, which wgpu translates to SPIR-V through
  # naga): our SPIR-V shaders have run on lavapipe only, so if the first
  # debug step fails on the device the figures come from this build
  # instead of from nowhere.
  cargo build --release --features wgpu --bin energyflow
  strip -o "$D/energyflow-wgsl" target/release/energyflow
  xz -T0 -6 -f "$D/energyflow" "$D/gpu-tests" "$D/energyflow-wgsl"
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd "$D/gl" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  mkdir -p "$D/peer" && cp ../shared/peer/*.py "$D/peer/"
  # micro-batched configs: the presets' own batches, in passes that fit
  printf 'preset = "experiment"\n[train]\nsamples_per_pass = 8\n' >"$D/experiment.toml"
  # optimized: our estimate is 47.8 GB at 2 samples a pass (85.6 GB at
  # 4), within an H100's 78 GiB; the peer gets the same passes.
  printf 'preset = "optimized"\n[train]\nsamples_per_pass = 2\n' >"$D/optimized.toml"
  du -sh "$D"
  local kib
  kib=$(du -sk "$D" | cut -f1)
  [ "$kib" -le 65536 ] || { echo "scripts/device-check.sh: .device is ${kib} KiB, over the 64 MiB the device tool carries" >&2; exit 1; }
}

device() {
  : "${OUT:?device mode writes under \$OUT (run it through the device tool)}"
  local log="$OUT/log.txt" env="$OUT/env.txt"
  for f in "$D"/gl/*.deb; do dpkg -x "$f" /; done
  xz -dkf "$D/energyflow.xz" "$D/gpu-tests.xz" "$D/energyflow-wgsl.xz"
  chmod +x "$D/energyflow" "$D/gpu-tests" "$D/energyflow-wgsl"
  local bin
  bin=$(cat "$D/bin-path")
  [ -e "$bin" ] || { mkdir -p "$(dirname "$bin")" && ln -s "$PWD/$D/energyflow" "$bin"; }
  ldconfig
  {
    echo "## ldconfig -p | grep vulkan"; ldconfig -p | grep -i vulkan
    echo "## ICD files"; ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d 2>&1
    echo "## nvidia-smi"; nvidia-smi
  } >"$env" 2>&1
  if ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    echo "## VK_DRIVER_FILES=$VK_DRIVER_FILES" >>"$env"
  fi
  # tests/gpu/ on the real GPU (the Vulkan build, as `prepare` ran them on
  # lavapipe); they find the binary through CARGO_BIN_EXE, fixed at build
  # time.
  echo "## tests/gpu/" >>"$env"
  timeout 90 "$D/gpu-tests" >>"$env" 2>&1 || echo "## gpu tests: exit $?" >>"$env"

  local smi="$OUT/smi.csv"
  # Appended, as the markers are: a plain `>` would write over them.
  : >"$smi"
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 200 >>"$smi" 2>>"$log" &
  local smi_pid=$!
  # The SPIR-V build first; if its debug step fails, every preset with
  # the WGSL build (each JSON's "backend" says which ran).
  local ours="$D/energyflow"
  step() { # preset, limit, runs, config args...
    local p=$1 limit=$2 runs=$3
    shift 3
    echo "# start $p $(date +%s.%N) $ours" >>"$smi"
    timeout "$limit" "$ours" bench step "$@" --device vulkan --runs "$runs" --warmup 1 --json \
      >"$OUT/ours-$p.json" 2>>"$log" || echo "## ours $p ($ours): exit $?" >>"$log"
    echo "# end $p $(date +%s.%N)" >>"$smi"
  }
  for p in debug experiment optimized; do
    local cfg=(--preset "$p") limit=60 runs=5
    [ -f "$D/$p.toml" ] && cfg=(--config "$D/$p.toml")
    [ "$p" = experiment ] && limit=80
    [ "$p" = optimized ] && { limit=150; runs=1; }
    step "$p" "$limit" "$runs" "${cfg[@]}"
    if [ "$p" = debug ] && ! grep -q train_us_per_flow_step "$OUT/ours-debug.json"; then
      echo "## the SPIR-V build failed on debug: the WGSL build runs every preset" | tee -a "$log" >>"$env"
      ours="$D/energyflow-wgsl"
      step "$p" "$limit" "$runs" "${cfg[@]}"
    fi
  done
  kill "$smi_pid" 2>/dev/null

  for p in debug experiment optimized; do
    local extra=() limit=45
    [ "$p" = experiment ] && { extra=(--micro-batch 8 --runs 2 --warmup 1); limit=60; }
    [ "$p" = optimized ] && { extra=(--micro-batch 2 --runs 1 --warmup 1); limit=120; }
    timeout "$limit" python3 "$D/peer/port_step.py" --preset "$p" --device cuda "${extra[@]}" \
      >>"$OUT/peer.jsonl" 2>>"$log" || echo "## peer $p: exit $?" >>"$log"
  done

  # Last, with what time is left: cubecl's wgpu runtime submits its queue
  # every CUBECL_WGPU_MAX_TASKS dispatches (32 unless set), and a debug
  # training step is about 2 200 small dispatches, so the submit count may
  # matter on a GPU (on lavapipe the kernels hide it). The debug step at
  # 32, 128 and 512, one line each, with the setting added.
  for t in 32 128 512; do
    CUBECL_WGPU_MAX_TASKS=$t timeout 45 "$ours" bench step --preset debug --device vulkan --runs 3 --warmup 1 --json 2>>"$log" \
      | python3 -c 'import json, sys; d = json.load(sys.stdin); d["max_tasks"] = int(sys.argv[1]); print(json.dumps(d))' "$t" \
      >>"$OUT/sweep.jsonl" 2>>"$log" || echo "## sweep $t: exit $?" >>"$log"
  done
}

case "${1:-}" in
  prepare) prepare ;;
  device) device ;;
  *) echo "usage: scripts/device-check.sh prepare|device" >&2; exit 2 ;;
esac
