#!/bin/sh
# Issue 22's real-GPU run, as one call of the `device` tool (that machine has no Node, no browser
# and no network: the kit brings its own). Here: `npm run kit:gpu`; then
#   run(command: "sh coordinator/tools/gpu-kit/device-check.sh", carry: ["dist-kit/tabgrid-gpu-kit"], timeout_s: 600)
# It writes to $OUT: gpu.txt (the card, driver, Vulkan drivers, PyTorch), kit.json + kit.log (./run.sh:
# every matmul and attention candidate, the autotuner's pick, % of peak, PyTorch in the same run) and
# train.json + train.log (./run.sh train: the WGSL training loop's divergence from the CPU's and its
# speed), and prints a summary. Arguments after the kit's folder go to both runs (--quick: small sizes,
# e.g. to try the script here with VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json).
set -u
KIT=${1:-dist-kit/tabgrid-gpu-kit}
[ $# -gt 0 ] && shift
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
[ -x "$KIT/run.sh" ] || { echo "device-check: no kit at $KIT (npm run kit:gpu, and carry it)" >&2; exit 1; }

{
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
  for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d; do ls "$d"; done
  ldconfig -p | grep -E 'libvulkan|libGLX_nvidia|libnvidia-glcore'
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} >"$OUT/gpu.txt" 2>&1
head -3 "$OUT/gpu.txt"

# The kit first (the issue's ≤ 8 minutes), then the training bench in what is left.
timeout 420 "$KIT/run.sh" "$@" >"$OUT/kit.json" 2>"$OUT/kit.log"
echo "kit: exit $?"
timeout 120 "$KIT/run.sh" train "$@" >"$OUT/train.json" 2>"$OUT/train.log"
echo "train: exit $?"
tail -n 5 "$OUT/kit.log" "$OUT/train.log"

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(f"{out}/{name}"))
    except Exception as e:
        print(f"{name}: {e}")
kit, train = load("kit.json"), load("train.json")
if kit:
    print(json.dumps({"adapter": kit["adapter"]["name"], "peak": kit["peak"], "autotuner": kit["autotuner"], "goals": kit["goals"], "torch": kit["torch"].get("version"), "seconds": kit["seconds"]}, indent=1))
    for row in kit["matmul"] + kit["attention"]:
        pick = row.get("pick") or {}
        print(row.get("size") or row.get("seq"), "pick", pick.get("name"), pick.get("gflops"), "torch", (row.get("torch") or {}).get("gflops"))
if train:
    print(json.dumps({"trainAdapter": train["adapter"], "worstToleranceOverGpuVsCpu": train["worstToleranceOverGpuVsCpu"], "speed": train["speed"]}, indent=1))
PY
