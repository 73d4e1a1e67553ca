#!/usr/bin/env python3
"""Side-by-side training cost of energyflow and the PyTorch peer
(../shared/peer/port_step.py), per flow-step, alternating the two programs
so that both see the same machine load. Prints one line per run and a
summary with the medians and their ratio.

Usage (from the project root, after `cargo build --release`):

    python3 scripts/compare_peer.py --python /tmp/peer-venv/bin/python --preset debug --rounds 3
    python3 scripts/compare_peer.py --python /tmp/peer-venv/bin/python --preset experiment --rounds 2

Flow counts depend on the random weights of each program, so the fair
comparison is the time per flow-step (rows the GRU processed).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER = os.path.join(ROOT, "..", "shared", "peer", "port_step.py")

# The peer's settings that match each preset of ours (samples per pass).
PASSES = {"debug": 4, "experiment": 8}


def run_ours(binary, preset, runs, warmup, extra):
    cmd = [binary, "bench", "step", "--preset", preset, "--runs", str(runs), "--warmup", str(warmup), "--json"] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    return {
        "us_per_flow_step": d["train_us_per_flow_step"],
        "step_ms": d["train_step_ms"],
        "flow_steps": d["flow_steps"],
        "peak_rss_mb": d["peak_rss_mb"],
        "cpu": d["cpu_utilisation"],
        "cpu_spin": d.get("cpu_spin", 0.0),
        "infer_us_per_flow_step": d["infer_us_per_flow_step"],
    }


def run_peer(python, preset, runs, warmup):
    cmd = [python, PEER, "--preset", preset, "--threads", "2", "--micro-batch", str(PASSES[preset]),
           "--runs", str(runs), "--warmup", str(warmup)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    d = json.loads(out)
    per = d.get("train_step_us_per_flow_step")
    if isinstance(per, list):
        per = statistics.median(per)
    flow_steps = d.get("flow_steps")
    if isinstance(flow_steps, list):
        flow_steps = statistics.median(flow_steps)
    return {"us_per_flow_step": per, "step_ms": d["train_step_ms"], "flow_steps": flow_steps,
            "peak_rss_mb": d["peak_rss_mb"]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", required=True, help="python with torch (the peer's venv)")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "energyflow"))
    p.add_argument("--preset", choices=sorted(PASSES), default="debug")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=3, help="timed steps per program run")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--ours-extra", default="", help="extra arguments for `energyflow bench step`")
    a = p.parse_args()
    ours, peer = [], []
    for r in range(a.rounds):
        o = run_ours(a.binary, a.preset, a.runs, a.warmup, a.ours_extra.split())
        ours.append(o)
        print(json.dumps({"round": r, "program": "energyflow", **o}), flush=True)
        q = run_peer(a.python, a.preset, a.runs, a.warmup)
        peer.append(q)
        print(json.dumps({"round": r, "program": "pytorch", **q}), flush=True)
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    summary = {
        "preset": a.preset,
        "rounds": a.rounds,
        "energyflow_us_per_flow_step": med(ours, "us_per_flow_step"),
        "pytorch_us_per_flow_step": med(peer, "us_per_flow_step"),
        "energyflow_peak_rss_mb": max(x["peak_rss_mb"] for x in ours),
        "pytorch_peak_rss_mb": max(x["peak_rss_mb"] for x in peer),
        "energyflow_cpu": med(ours, "cpu"),
        "energyflow_infer_us_per_flow_step": med(ours, "infer_us_per_flow_step"),
    }
    summary["pytorch_over_energyflow"] = summary["pytorch_us_per_flow_step"] / summary["energyflow_us_per_flow_step"]
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
