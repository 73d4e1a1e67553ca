//! Lesions: deliberate damage to one forward, to measure what carries the
//! signal (docs/QUALITY.md). A trained model is evaluated with a lesion
//! (`eval --lesion`) and the held-out cosine it loses is what the damaged
//! part carried.
//!
//! - `shuffle-cells`: each sample's mapped energies are permuted across the
//!   surface cells before the flows start (the lattice and the readout see
//!   the right values at the wrong places);
//! - `shuffle-samples`: each sample's surface is replaced by another
//!   sample's of the same batch (the output no longer depends on its own
//!   input: what is left is the targets' common direction);
//! - `passthrough`: the propagation replaced by a pass-through (the mapped
//!   energies are the surface; `flow.pass_through` trains a model so),
//!   same weights otherwise: what the lattice adds.
//!
//! Not for training: the trainer never sets a lesion. The permutations are
//! drawn from a seeded generator, so a lesioned evaluation is deterministic.

use crate::device;
use crate::seeds::{mix, stream};
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

/// What a lesion damages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Lesion {
    /// Permute each sample's mapped energies across the cells.
    ShuffleCells,
    /// Give each sample the surface of another sample of its batch.
    ShuffleSamples,
    /// The mapped energies straight to the readout, no flow started.
    Passthrough,
}

/// The mapped energies [B, S] after the lesion (unchanged unless it is
/// `ShuffleCells`): row b permuted by its own permutation drawn from `seed`.
pub fn on_energies(energies: Tensor<2>, lesion: Option<Lesion>, seed: u64) -> Tensor<2> {
    if lesion != Some(Lesion::ShuffleCells) {
        return energies;
    }
    let [b, s] = energies.dims();
    let mut rng = StdRng::seed_from_u64(mix(seed, stream::LESION, 0));
    let mut idx = Vec::with_capacity(b * s);
    let mut perm: Vec<u32> = (0..s as u32).collect();
    for row in 0..b as u32 {
        perm.shuffle(&mut rng);
        idx.extend(perm.iter().map(|&c| row * s as u32 + c));
    }
    let dev = energies.device();
    energies
        .reshape([b * s])
        .select(0, device::indices(&idx, &dev))
        .reshape([b, s])
}

/// The surface [B, S] after the lesion (unchanged unless it is
/// `ShuffleSamples`): row b becomes row (b + 1) mod B, so with two or more
/// samples no row keeps its own surface.
pub fn on_surface(surface: Tensor<2>, lesion: Option<Lesion>) -> Tensor<2> {
    if lesion != Some(Lesion::ShuffleSamples) {
        return surface;
    }
    let [b, _] = surface.dims();
    let idx: Vec<u32> = (0..b as u32).map(|r| (r + 1) % b as u32).collect();
    let dev = surface.device();
    surface.select(0, device::indices(&idx, &dev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
        let [_, s] = t.dims();
        device::to_vec(t).unwrap().chunks(s).map(|r| r.to_vec()).collect()
    }

    #[test]
    fn shuffle_cells_permutes_within_each_sample_only() {
        let dev = Device::flex();
        let (b, s) = (3, 12);
        let x = device::matrix((0..b * s).map(|i| i as f32).collect(), b, s, &dev);
        let before = rows(x.clone());
        assert_eq!(rows(on_energies(x.clone(), None, 1)), before);
        assert_eq!(rows(on_energies(x.clone(), Some(Lesion::ShuffleSamples), 1)), before);
        let after = rows(on_energies(x.clone(), Some(Lesion::ShuffleCells), 1));
        for (a, o) in after.iter().zip(&before) {
            assert_ne!(a, o, "a row kept its order");
            let mut sorted = a.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(&sorted, o, "a row lost or gained values");
        }
        // Rows get different permutations, and a seed fixes them.
        let offsets: Vec<Vec<f32>> = after
            .iter()
            .enumerate()
            .map(|(r, v)| v.iter().map(|x| x - (r * s) as f32).collect())
            .collect();
        assert_ne!(offsets[0], offsets[1]);
        assert_eq!(rows(on_energies(x, Some(Lesion::ShuffleCells), 1)), after);
    }

    #[test]
    fn shuffle_samples_gives_every_row_another_rows_surface() {
        let dev = Device::flex();
        let x = device::matrix((0..8).map(|i| i as f32).collect(), 4, 2, &dev);
        let before = rows(x.clone());
        assert_eq!(rows(on_surface(x.clone(), Some(Lesion::ShuffleCells))), before);
        let after = rows(on_surface(x, Some(Lesion::ShuffleSamples)));
        for (r, row) in after.iter().enumerate() {
            assert_eq!(row, &before[(r + 1) % 4]);
        }
    }
}
