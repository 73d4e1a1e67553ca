"""Python package against the CLI: train steps/s (median step_ms of metrics.jsonl, step 1 left out, 60 steps of the tuned preset on the bundled pairs, runs alternating) and infer over the 4 000 bundled rows (CLI: wall of `infer` on them minus wall on 32 rows of them, i.e. without process start, checkpoint load and file reads). Run with the package installed: python scripts/python_bench.py (writes under /tmp/efbench)."""
import json, subprocess, sys, time, statistics, shutil, os
import numpy as np
import energyflow as ef
EXE = os.environ.get("ENERGYFLOW_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "energyflow"))
D = "/tmp/efbench"
os.makedirs(D, exist_ok=True)
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "wordnet-pairs.safetensors")
def med_step(out):
    recs = [json.loads(l) for l in open(f"{out}/metrics.jsonl")]
    ms = [r["step_ms"] for r in recs if r["kind"] == "step" and r["step"] > 1]
    return statistics.median(ms)
res = {"cli_train": [], "py_train": [], "cli_infer": [], "py_infer": []}
for rep in range(2):
    for who in ("cli", "py"):
        out = f"{D}/{who}{rep}"; shutil.rmtree(out, ignore_errors=True)
        if who == "cli":
            subprocess.run([EXE, "train", "--max-steps", "60", "--quiet", "--out", out], check=True, capture_output=True)
        else:
            ef.train(out, max_steps=60)
        res[f"{who}_train"].append(med_step(out))
ck = f"{D}/py0"
x, _, _ = ef.bundled_data()
small = f"{D}/small.safetensors"
# 32 rows of the same file: what the CLI spends on start, loading and reading.
import struct
hdr = {"input": {"dtype": "F32", "shape": [32, 384], "data_offsets": [0, 32*384*4]}}
h = json.dumps(hdr).encode(); open(small, "wb").write(struct.pack("<Q", len(h)) + h + x[:32].tobytes())
m = ef.load(ck)
def cli_wall(inp):
    t = time.perf_counter(); subprocess.run([EXE, "infer", "--checkpoint", ck, "--input", inp, "--output", f"{D}/o.safetensors"], check=True, capture_output=True); return time.perf_counter() - t
for rep in range(3):
    full, base = cli_wall(DATA), cli_wall(small)
    res["cli_infer"].append(full - base)
    t = time.perf_counter(); m.infer(x); res["py_infer"].append(time.perf_counter() - t)
print(json.dumps(res))
for k in ("train", "infer"):
    c, p = statistics.median(res[f"cli_{k}"]), statistics.median(res[f"py_{k}"])
    print(k, "cli", round(c, 4), "py", round(p, 4), "py/cli", round(p / c, 3))
