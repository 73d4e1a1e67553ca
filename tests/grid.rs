//! The cell grid's queries equal a brute-force search on random positions.

use energyflow::flow::spatial::{CellGrid, LatticeGrid};
use energyflow::geometry::Lattice;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn queries_equal_brute_force(
        pts in prop::collection::vec((-1.2f32..1.2, -1.2f32..1.2, -1.0f32..1.0), 0..300),
        q in (0usize..7, 0usize..5, 0usize..9),
        radius in 0usize..3,
    ) {
        let lattice = Lattice::new(7, 5, 8);
        let positions: Vec<[f32; 3]> = pts.iter().map(|&(x, y, z)| [x, y, z]).collect();
        let mut grid = LatticeGrid::new(lattice);
        grid.rebuild(&positions);
        let coords: Vec<(usize, usize, usize)> = positions.iter().map(|&p| grid.cell_coords(p)).collect();
        // In one cell.
        let mut expected: Vec<u32> = (0..positions.len() as u32)
            .filter(|&i| coords[i as usize] == q)
            .collect();
        prop_assert_eq!(grid.in_cell(q.0, q.1, q.2).to_vec(), expected.clone());
        // Within a radius (sorted: the grid returns cell by cell).
        let mut got = Vec::new();
        grid.within_radius(q.0, q.1, q.2, radius, &mut got);
        got.sort();
        expected = (0..positions.len() as u32)
            .filter(|&i| {
                let (x, y, z) = coords[i as usize];
                x.abs_diff(q.0) <= radius && y.abs_diff(q.1) <= radius && z.abs_diff(q.2) <= radius
            })
            .collect();
        prop_assert_eq!(got, expected);
        let occupied: std::collections::HashSet<_> = coords.iter().collect();
        prop_assert_eq!(grid.occupied_cells(), occupied.len());
        // Flows per depth layer.
        let mut layers = vec![0usize; 9];
        coords.iter().for_each(|c| layers[c.2] += 1);
        prop_assert_eq!(grid.layer_counts(), layers);
    }

    #[test]
    fn counting_sort_is_stable_and_complete(keys in prop::collection::vec(0u32..20, 0..200)) {
        let mut g = CellGrid::new();
        g.rebuild(&keys, 20);
        for b in 0..20 {
            let expected: Vec<u32> = (0..keys.len() as u32).filter(|&i| keys[i as usize] == b as u32).collect();
            prop_assert_eq!(g.bin(b).to_vec(), expected);
        }
        prop_assert_eq!(g.items().len(), keys.len());
    }
}

#[test]
fn a_rebuild_reuses_the_grid() {
    let mut grid = LatticeGrid::new(Lattice::new(4, 4, 4));
    assert_eq!(grid.layer_counts(), vec![0; 5], "empty before the first rebuild");
    grid.rebuild(&[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]);
    grid.rebuild(&[[-1.0, -1.0, -1.0]]);
    assert_eq!(grid.in_cell(0, 0, 0), &[0]);
    assert!(grid.in_cell(3, 3, 4).is_empty());
    assert!(grid.in_cell(9, 0, 0).is_empty());
}
