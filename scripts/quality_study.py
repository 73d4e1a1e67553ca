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

    python3 scripts/quality_study.py --lesions --out OUT      # adds eval --lesion figures
    python3 scripts/quality_study.py --report OUT/results.jsonl
    python3 scripts/quality_study.py --summary OUT/results.jsonl

print the markdown tables docs/QUALITY.md holds (every run; the mean per
config over its seeds).
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
    # The study chooses on the validation split (which also chose best/),
    # never on the test split that the run's closing line reports.
    e = subprocess.run([binary, "eval", "--checkpoint", run_dir, "--split", "validation", "--json"],
                       capture_output=True, text=True)
    if e.returncode != 0:
        return {"config": name, "seed": seed, "error": e.stderr.strip().splitlines()[-1:]}
    report = json.loads(e.stdout.strip().splitlines()[-1])
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
        "split": report.get("split", "held-out"),
        **{k: round(report[k], 4) for k in ("mlp_cosine", "residual_mlp_cosine") if report.get(k) is not None},
        "curve": curve(run_dir),
    }


def thin(curve, k=8):
    """At most k points of a learning curve, evenly spread, with the last."""
    if len(curve) <= k:
        return curve
    idx = sorted({round(i * (len(curve) - 1) / (k - 1)) for i in range(k)})
    return [curve[i] for i in idx]


def report(path):
    rows = [json.loads(line) for line in open(path)]
    print("| config | seed | steps | wall s | held-out cosine | shuffled samples | identity | ridge | curve (step: cosine) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        if "error" in r:
            print(f"| {r['config']} | {r['seed']} | | | error: {r['error']} | | | | |")
            continue
        c = ", ".join(f"{s}: {v:.3f}" for s, v, _ in thin(r["curve"]))
        lesion = r.get("lesions", {}).get("shuffle-samples")
        lesion = f"{lesion:.4f}" if lesion is not None else ""
        print(f"| {r['config']} | {r['seed']} | {r['steps']} | {r['wall_s']} | {r['cosine']:.4f} | {lesion} | "
              f"{r['identity_cosine']} | {r['linear_cosine']} | {c} |")


def summary(path):
    """One line per config: the mean over its seeds, and the mean margin
    over each seed's own ridge baseline (the split depends on the seed)."""
    groups = {}
    for line in open(path):
        r = json.loads(line)
        if "error" not in r:
            groups.setdefault(r["config"], []).append(r)
    print("| config | seeds | mean validation cosine | min..max | mean - ridge | mean - identity "
          "| mean - residual MLP | mean wall s |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, rs in groups.items():
        cos = [r["cosine"] for r in rs]
        mean = sum(cos) / len(cos)
        ridge = sum(r["cosine"] - r["linear_cosine"] for r in rs) / len(rs)
        ident = sum(r["cosine"] - (r["identity_cosine"] or 0) for r in rs) / len(rs)
        wall = sum(r["wall_s"] for r in rs) / len(rs)
        res = [r["cosine"] - r["residual_mlp_cosine"] for r in rs if r.get("residual_mlp_cosine") is not None]
        res = f"{sum(res) / len(res):+.4f}" if len(res) == len(rs) else ""
        print(f"| {name} | {len(rs)} | {mean:.4f} | {min(cos):.4f}..{max(cos):.4f} | {ridge:+.4f} | {ident:+.4f} "
              f"| {res} | {wall:.0f} |")


def add_lesions(binary, out_dir, results):
    """Evaluates each recorded run's best/ with the lesions and stores the
    validation cosines in its line (runs that have them are skipped)."""
    rows = [json.loads(line) for line in open(results)]
    for r in rows:
        if "error" in r or "lesions" in r:
            continue
        run_dir = os.path.join(out_dir, f"{r['config']}-s{r['seed']}")
        r["lesions"] = {}
        for lesion in ("shuffle-cells", "shuffle-samples", "passthrough"):
            p = subprocess.run([binary, "eval", "--checkpoint", run_dir, "--split", "validation", "--json",
                                "--lesion", lesion],
                               capture_output=True, text=True)
            if p.returncode == 0:
                r["lesions"][lesion] = round(json.loads(p.stdout.strip().splitlines()[-1])["cosine"], 4)
        print(json.dumps({"config": r["config"], "seed": r["seed"], "lesions": r["lesions"]}), flush=True)
    tmp = results + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, results)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", nargs="*", default=[])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "study"))
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "energyflow"))
    p.add_argument("--report", help="print the table of a results.jsonl and exit")
    p.add_argument("--summary", help="print the per-config means of a results.jsonl and exit")
    p.add_argument("--lesions", action="store_true",
                   help="evaluate every run of OUT/results.jsonl with the lesions (eval --lesion) and record them")
    a = p.parse_args()
    if a.report:
        report(a.report)
        return 0
    if a.summary:
        summary(a.summary)
        return 0
    if a.lesions:
        add_lesions(a.binary, a.out, os.path.join(a.out, "results.jsonl"))
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
