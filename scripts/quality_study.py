#!/usr/bin/env python3
"""Runs the model-quality study of docs/QUALITY.md: one `energyflow train`
per (config, seed), one at a time, and records for each run the config, the
seed, the steps, the wall time, the held-out cosine and loss of best/, the
identity and ridge baselines, and the learning curve (held-out cosine at
every validation).

Usage (from the project root, after `cargo build --release`):

    python3 scripts/quality_study.py --study configs/study/*.toml --seeds 0 1 --out runs/study

Each config file is a normal `--config` TOML; extra `train` flags go in
`# args: ...` on the file's first line (e.g. `# args: --epochs 12`).
Results are appended to OUT/results.jsonl (one line per run); a run whose
line is already there is skipped, so the study can be resumed. Then

    python3 scripts/quality_study.py --report OUT/results.jsonl

prints the markdown table docs/QUALITY.md holds.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def extra_args(path):
    with open(path) as f:
        first = f.readline().strip()
    return shlex.split(first[len("# args:"):]) if first.startswith("# args:") else []


def curve(run_dir):
    """(step, held-out cosine, held-out loss) at every validation."""
    out = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            if d.get("kind") == "validation":
                out.append([d["step"], round(d["val_cosine"], 4), round(d["val_loss"], 4)])
    return out


def run_one(binary, config, seed, out_dir):
    name = os.path.splitext(os.path.basename(config))[0]
    run_dir = os.path.join(out_dir, f"{name}-s{seed}")
    cmd = [binary, "train", "--quiet", "--overwrite", "--config", config, "--seed", str(seed), "--out", run_dir]
    cmd += extra_args(config)
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t
    if p.returncode != 0:
        return {"config": name, "seed": seed, "error": p.stderr.strip().splitlines()[-1:]}
    report = json.loads(p.stdout.strip().splitlines()[-1])
    steps = sum(1 for line in open(os.path.join(run_dir, "metrics.jsonl")) if '"kind":"step"' in line)
    return {
        "config": name,
        "seed": seed,
        "args": extra_args(config),
        "toml": open(config).read(),
        "steps": steps,
        "wall_s": round(wall, 1),
        "cosine": round(report["cosine"], 4),
        "loss": round(report["loss"], 4),
        "identity_cosine": round(report["identity_cosine"], 4) if report["identity_cosine"] is not None else None,
        "linear_cosine": round(report["linear_cosine"], 4),
        "curve": curve(run_dir),
    }


def report(path):
    rows = [json.loads(line) for line in open(path)]
    print("| config | seed | steps | wall s | held-out cosine | identity | ridge | curve (step: cosine) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        if "error" in r:
            print(f"| {r['config']} | {r['seed']} | | | error: {r['error']} | | | |")
            continue
        c = ", ".join(f"{s}: {v:.3f}" for s, v, _ in r["curve"])
        print(f"| {r['config']} | {r['seed']} | {r['steps']} | {r['wall_s']} | {r['cosine']:.4f} | "
              f"{r['identity_cosine']} | {r['linear_cosine']} | {c} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", nargs="*", default=[])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "study"))
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "energyflow"))
    p.add_argument("--report", help="print the table of a results.jsonl and exit")
    a = p.parse_args()
    if a.report:
        report(a.report)
        return 0
    os.makedirs(a.out, exist_ok=True)
    results = os.path.join(a.out, "results.jsonl")
    done = set()
    if os.path.exists(results):
        for line in open(results):
            r = json.loads(line)
            done.add((r["config"], r["seed"]))
    for config in a.study:
        for seed in a.seeds:
            name = os.path.splitext(os.path.basename(config))[0]
            if (name, seed) in done:
                continue
            r = run_one(a.binary, config, seed, a.out)
            with open(results, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(json.dumps({k: r.get(k) for k in ("config", "seed", "steps", "wall_s", "cosine", "error")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
