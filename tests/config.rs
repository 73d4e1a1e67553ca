//! Every class of bad config value is refused with a message naming the
//! field, the value and the allowed range; never a panic.

use energyflow::config::{EnergyConfig, Part, Preset};
use energyflow::kernels::Kernels;

fn refused(toml: &str) -> String {
    EnergyConfig::from_toml_str(toml, Preset::Debug, "bad.toml")
        .err()
        .unwrap_or_else(|| panic!("accepted: {toml}"))
        .to_string()
}

#[test]
fn bad_values_are_refused_with_field_value_and_range() {
    let cases = [
        ("[model]\nlattice_width = 0", "model.lattice_width", "0"),
        ("[model]\nlattice_height = 1", "model.lattice_height", "1"),
        ("[flow]\nlattice_depth = 1", "flow.lattice_depth", "1"),
        ("[train]\nbatch_size = 0", "train.batch_size", "0"),
        ("[model]\ninput_embedding_dim = 0", "model.input_embedding_dim", "0"),
        ("[model]\noutput_embedding_dim = 0", "model.output_embedding_dim", "0"),
        ("[model]\nmapper_hidden = 0", "model.mapper_hidden", "0"),
        ("[model]\nneuron_hidden_dim = 0", "model.neuron_hidden_dim", "0"),
        ("[model]\nneuron_output_dim = 0", "model.neuron_output_dim", "0"),
        ("[model]\ncarrier_hidden_dim = 1", "model.carrier_hidden_dim", "1"),
        ("[model]\ncarrier_layers = 0", "model.carrier_layers", "0"),
        ("[flow]\nmax_displacement = -0.5", "flow.max_displacement", "-0.5"),
        ("[flow]\nmax_displacement = nan", "flow.max_displacement", "NaN"),
        ("[flow]\ndisplacement_scale = 0.0", "flow.displacement_scale", "0"),
        (
            "[flow]\ndisplacement_scale_min = 2.0",
            "flow.displacement_scale_min",
            "2",
        ),
        (
            "[flow]\ndisplacement_scale_decay = 1.5",
            "flow.displacement_scale_decay",
            "1.5",
        ),
        ("[flow]\nmax_active_flows = 100", "flow.max_active_flows", "100"),
        ("[flow]\npropagation_steps = 0", "flow.propagation_steps", "0"),
        ("[flow]\nprojection_steps = 0", "flow.projection_steps", "0"),
        (
            "[flow]\nspawn_movement_threshold = 0.0",
            "flow.spawn_movement_threshold",
            "0",
        ),
        ("[flow]\nmax_spawn_per_step = 100", "flow.max_spawn_per_step", "100"),
        ("[flow]\nexploration_noise = -0.1", "flow.exploration_noise", "-0.1"),
        ("[flow]\nexploration_noise = inf", "flow.exploration_noise", "inf"),
        (
            "[flow]\nconvergence_threshold = 1.5",
            "flow.convergence_threshold",
            "1.5",
        ),
        ("[flow]\nconvergence_patience = 0", "flow.convergence_patience", "0"),
        ("[train]\nlearning_rate = 0.0", "train.learning_rate", "0"),
        ("[train]\nbeta1 = 1.0", "train.beta1", "1"),
        ("[train]\nbeta2 = -0.1", "train.beta2", "-0.1"),
        ("[train]\nepsilon = 0.0", "train.epsilon", "0"),
        ("[train]\nweight_decay = 2.0", "train.weight_decay", "2"),
        ("[train]\ngrad_clip = -1.0", "train.grad_clip", "-1"),
        ("[train]\naccumulate_batches = 0", "train.accumulate_batches", "0"),
        ("[train]\nmin_lr_ratio = 1.5", "train.min_lr_ratio", "1.5"),
        ("[train]\nepochs = 0", "train.epochs", "0"),
        ("[train]\nval_fraction = 1.0", "train.val_fraction", "1"),
        ("[train]\nlambda_cos = -1.0", "train.lambda_cos", "-1"),
        ("[train]\nmse_weight = -1.0", "train.mse_weight", "-1"),
        ("[train]\ndropout_scale = 10.0", "train.dropout_scale", "10"),
        ("[train]\ndropout_scale = -0.5", "train.dropout_scale", "-0.5"),
        ("[train]\nvalidate_every_steps = 0", "train.validate_every_steps", "0"),
        ("[train]\nsamples_per_pass = 0", "train.samples_per_pass", "0"),
        ("[train]\nplanned_steps = 0", "train.planned_steps", "0"),
        (
            "[train]\ncheckpoint_every_steps = 0",
            "train.checkpoint_every_steps",
            "0",
        ),
        (
            "[train]\ncheckpoint_every_seconds = -1.0",
            "train.checkpoint_every_seconds",
            "-1",
        ),
        (
            "[train]\ncheckpoint_every_seconds = 1e9",
            "train.checkpoint_every_seconds",
            "1000000000",
        ),
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
    let msg = refused("[model]\nlattice_width = \"wide\"");
    assert!(msg.contains("bad.toml") && msg.contains("lattice_width"), "{msg}");
    let msg = refused("[model]\nlatice_width = 3");
    assert!(msg.contains("latice_width"), "{msg}");
    let msg = refused("lattice_width = 3");
    assert!(msg.contains("[model]"), "a flat key names its section: {msg}");
    let msg = refused("preset = \"huge\"");
    assert!(msg.contains("preset") && msg.contains("huge"), "{msg}");
    let msg = refused("[model]\nlattice_width = -3");
    assert!(msg.contains("lattice_width"), "{msg}");
    let msg = refused("this is not toml");
    assert!(msg.contains("bad.toml"), "{msg}");
    for m in [
        refused("[model]\nlattice_width = \"wide\""),
        refused("[model]\nlatice_width = 3"),
    ] {
        assert_eq!(m.lines().count(), 1, "{m}");
    }
}

#[test]
fn checkpoint_intervals_default_to_a_minute_and_can_be_set() {
    let c = EnergyConfig::preset(Preset::Debug);
    assert_eq!(
        (c.train.checkpoint_every_steps, c.train.checkpoint_every_seconds),
        (None, 60.0)
    );
    let (c, _) = EnergyConfig::from_toml_str(
        "[train]\ncheckpoint_every_steps = 25\ncheckpoint_every_seconds = 0.0\n",
        Preset::Debug,
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        (c.train.checkpoint_every_steps, c.train.checkpoint_every_seconds),
        (Some(25), 0.0)
    );
}

#[test]
fn the_memory_estimate_counts_the_parameters_of_a_built_model() {
    use burn::module::Module;
    use energyflow::config::resources::parameter_counts;
    let mut small = EnergyConfig::preset(Preset::Debug);
    small.model.lattice_width = 5;
    small.model.lattice_height = 3;
    small.model.input_embedding_dim = 7;
    small.model.output_embedding_dim = 9;
    small.model.carrier_hidden_dim = 6;
    small.model.carrier_layers = 3;
    small.model.neuron_hidden_dim = 5;
    small.model.neuron_output_dim = 4;
    let mut plain = small.clone();
    plain.model.mapper_collector_layer_norm = false;
    for cfg in [small, plain, EnergyConfig::preset(Preset::Debug)] {
        let model = energyflow::EnergyFlowModel::new(&cfg, Kernels::Fused, &burn::tensor::Device::flex(), 0);
        let counted: f64 = parameter_counts(&cfg).iter().sum();
        assert_eq!(counted as usize, model.num_params());
    }
}

#[test]
fn study_knobs_default_to_the_reference_and_are_checked() {
    // Defaults: MSE + cosine, every dropout at its rate, validation at
    // epoch ends only, nothing frozen; an old config without the keys
    // reads the same.
    let c = EnergyConfig::preset(Preset::Debug);
    assert_eq!(c.train.mse_weight, 1.0);
    assert_eq!(c.train.dropout_scale, 1.0);
    assert_eq!(c.train.validate_every_steps, None);
    assert!(c.train.frozen.is_empty());
    let (c, keys) = EnergyConfig::from_toml_str(
        "[train]\nmse_weight = 0.0\ndropout_scale = 0.0\nvalidate_every_steps = 20\nfrozen = [\"carrier\", \"neuron\"]\n",
        Preset::Debug,
        "t.toml",
    )
    .unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!((c.train.mse_weight, c.train.dropout_scale), (0.0, 0.0));
    assert_eq!(c.train.validate_every_steps, Some(20));
    assert_eq!(c.train.frozen, vec![Part::Carrier, Part::Neuron]);

    let msg = refused("[train]\nfrozen = [\"lattice\"]");
    assert!(msg.contains("lattice") && msg.contains("carrier"), "{msg}");
    let msg = refused("[train]\nfrozen = [\"carrier\", \"carrier\"]");
    assert!(msg.contains("train.frozen") && msg.contains("twice"), "{msg}");
    let msg = refused("[train]\nfrozen = [\"mapper\", \"neuron\", \"carrier\", \"collector\"]");
    assert!(
        msg.contains("train.frozen") && msg.contains("nothing would be trained"),
        "{msg}"
    );
    let msg = refused("[train]\nmse_weight = 0.0\nlambda_cos = 0.0");
    assert!(msg.contains("train.mse_weight") && msg.contains("lambda_cos"), "{msg}");
    for m in [
        refused("[train]\nfrozen = [\"lattice\"]"),
        refused("[train]\nfrozen = 3"),
    ] {
        assert_eq!(m.lines().count(), 1, "{m}");
    }
}
