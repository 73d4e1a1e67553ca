"""A Ray Tune search over a few `tuned` fields, energyflow.train as the
trainable; each validation's held-out cosine is reported to Tune from
train's callback.

    python examples/ray_tune.py                      # a local Ray cluster
    python examples/ray_tune.py --address auto       # the cluster this machine is in
    python examples/ray_tune.py --address ray://head:10001

On a real cluster every node needs the energyflow package installed
(`pip install ./bindings/python`); each trial writes its run folder under
--runs, which must be a path every node can reach for the folders to stay
together (a shared file system), or a local one per node otherwise.
"""

import argparse
import os

import ray
from ray import tune

import energyflow as ef


def trainable(config):
    """One trial: a run of the tuned preset with the trial's fields."""
    out = os.path.join(config["runs"], tune.get_context().get_trial_id())
    overrides = {
        "train": {"learning_rate": config["learning_rate"]},
        "model": {"carrier_hidden_dim": config["carrier_hidden_dim"]},
    }

    def report(event):
        if event["kind"] == "validation":
            tune.report({"val_cosine": event["val_cosine"], "step": event["step"]})

    ef.train(out, preset="tuned", config=overrides, max_steps=config["max_steps"], seed=0, callback=report)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=None, help="steps per trial (default: the preset's plan)")
    p.add_argument("--runs", default=os.path.abspath("runs/tune"), help="folder of the trials' run folders")
    args = p.parse_args(argv)

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    space = {
        "learning_rate": tune.loguniform(1e-4, 3e-3),
        "carrier_hidden_dim": tune.choice([32, 64, 128]),
        "max_steps": args.max_steps,
        "runs": args.runs,
    }
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_cosine", mode="max", num_samples=args.trials),
    )
    best = tuner.fit().get_best_result()
    picked = {k: best.config[k] for k in ("learning_rate", "carrier_hidden_dim")}
    print(f"best trial: {picked}, validation cosine {best.metrics['val_cosine']:.4f}")
    return picked, best.metrics["val_cosine"]


if __name__ == "__main__":
    main()
