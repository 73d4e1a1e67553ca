//! Every class of bad config value is refused with a message naming the
//! field, the value and the allowed range; never a panic.

use energyflow::config::{EnergyConfig, Preset};

fn refused(toml: &str) -> String {
    EnergyConfig::from_toml_str(toml, Preset::Debug, "bad.toml")
        .err()
        .unwrap_or_else(|| panic!("accepted: {toml}"))
        .to_string()
}

#[test]
fn bad_values_are_refused_with_field_value_and_range() {
    let cases = [
        ("lattice_width = 0", "lattice_width", "0"),
        ("lattice_height = 1", "lattice_height", "1"),
        ("lattice_depth = 1", "lattice_depth", "1"),
        ("batch_size = 0", "batch_size", "0"),
        ("input_embedding_dim = 0", "input_embedding_dim", "0"),
        ("output_embedding_dim = 0", "output_embedding_dim", "0"),
        ("mapper_hidden = 0", "mapper_hidden", "0"),
        ("neuron_hidden_dim = 0", "neuron_hidden_dim", "0"),
        ("neuron_output_dim = 0", "neuron_output_dim", "0"),
        ("carrier_hidden_dim = 1", "carrier_hidden_dim", "1"),
        ("carrier_layers = 0", "carrier_layers", "0"),
        ("max_displacement = -0.5", "max_displacement", "-0.5"),
        ("max_displacement = nan", "max_displacement", "NaN"),
        ("displacement_scale = 0.0", "displacement_scale", "0"),
        ("displacement_scale_min = 2.0", "displacement_scale_min", "2"),
        ("displacement_scale_decay = 1.5", "displacement_scale_decay", "1.5"),
        ("max_active_flows = 100", "max_active_flows", "100"),
        ("max_steps = 0", "max_steps", "0"),
        ("projection_steps = 0", "projection_steps", "0"),
        ("spawn_movement_threshold = 0.0", "spawn_movement_threshold", "0"),
        ("max_spawn_per_step = 100", "max_spawn_per_step", "100"),
        ("exploration_noise = -0.1", "exploration_noise", "-0.1"),
        ("exploration_noise = inf", "exploration_noise", "inf"),
        ("convergence_threshold = 1.5", "convergence_threshold", "1.5"),
        ("convergence_patience = 0", "convergence_patience", "0"),
        ("[train]\nlearning_rate = 0.0", "train.learning_rate", "0"),
        ("[train]\nbeta1 = 1.0", "train.beta1", "1"),
        ("[train]\nbeta2 = -0.1", "train.beta2", "-0.1"),
        ("[train]\nepsilon = 0.0", "train.epsilon", "0"),
        ("[train]\nweight_decay = 2.0", "train.weight_decay", "2"),
        ("[train]\ngrad_clip = -1.0", "train.grad_clip", "-1"),
        ("[train]\ngrad_accumulation = 0", "train.grad_accumulation", "0"),
        ("[train]\nmin_lr_ratio = 1.5", "train.min_lr_ratio", "1.5"),
        ("[train]\nepochs = 0", "train.epochs", "0"),
        ("[train]\nval_fraction = 1.0", "train.val_fraction", "1"),
        ("[train]\nlambda_cos = -1.0", "train.lambda_cos", "-1"),
        ("[train]\nmicro_batch = 0", "train.micro_batch", "0"),
        ("[train]\nsteps = 0", "train.steps", "0"),
    ];
    for (toml, field, value) in cases {
        let msg = refused(toml);
        assert!(msg.contains(field), "{toml}: {msg}");
        assert!(msg.contains(value), "{toml}: {msg}");
        assert!(msg.contains("range") || msg.contains("must be"), "{toml}: {msg}");
        assert_eq!(msg.lines().count(), 1, "{toml}: {msg}");
    }
}

#[test]
fn wrong_types_unknown_keys_and_bad_presets_are_refused() {
    let msg = refused("lattice_width = \"wide\"");
    assert!(msg.contains("bad.toml") && msg.contains("lattice_width"), "{msg}");
    let msg = refused("latice_width = 3");
    assert!(msg.contains("latice_width"), "{msg}");
    let msg = refused("preset = \"huge\"");
    assert!(msg.contains("preset") && msg.contains("huge"), "{msg}");
    let msg = refused("lattice_width = -3");
    assert!(msg.contains("lattice_width"), "{msg}");
    let msg = refused("this is not toml");
    assert!(msg.contains("bad.toml"), "{msg}");
    for m in [refused("lattice_width = \"wide\""), refused("latice_width = 3")] {
        assert_eq!(m.lines().count(), 1, "{m}");
    }
}
