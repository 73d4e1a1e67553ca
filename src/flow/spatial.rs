//! The cell grid (seed s.5, "spatial hashing"): items binned by an integer
//! key with a counting sort into CSR form (offsets + item list).
//!
//! A rebuild is O(N + bins), stable (items keep their order inside a bin) and
//! allocation-free once the buffers have grown. Two users:
//! - [`LatticeGrid`] bins flow positions by lattice cell (x, y, z) and answers
//!   "flows in a cell", "flows within a radius of cells" and "flows per
//!   depth layer" (the density pictures of `energyflow inspect` use it);
//! - the collection (`collect.rs`) bins completed flows by
//!   `sample * S + cell` to form its groups.
//!
//! Unlike the seed's dictionary of lists, a bin is a contiguous slice, so a
//! query allocates nothing and walks memory in order.

use crate::geometry::Lattice;

/// Counting-sort binning of `u32` keys into `bins` bins.
#[derive(Debug, Default, Clone)]
pub struct CellGrid {
    offsets: Vec<u32>,
    items: Vec<u32>,
}

impl CellGrid {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds from `keys` (item i has key `keys[i]`, each < `bins`).
    /// Keys out of range are a caller bug and panic in debug builds; in
    /// release they are clamped into the last bin.
    pub fn rebuild(&mut self, keys: &[u32], bins: usize) {
        self.offsets.clear();
        self.offsets.resize(bins + 1, 0);
        for &k in keys {
            debug_assert!((k as usize) < bins, "key {k} >= bins {bins}");
            self.offsets[(k as usize).min(bins - 1) + 1] += 1;
        }
        for b in 0..bins {
            self.offsets[b + 1] += self.offsets[b];
        }
        self.items.clear();
        self.items.resize(keys.len(), 0);
        // Fill using `offsets[b]` as the write cursor of bin b, then shift
        // the cursors back: avoids a second cursor array.
        for (i, &k) in keys.iter().enumerate() {
            let b = (k as usize).min(bins - 1);
            let slot = self.offsets[b] as usize;
            self.items[slot] = i as u32;
            self.offsets[b] += 1;
        }
        for b in (1..=bins).rev() {
            self.offsets[b] = self.offsets[b - 1];
        }
        if bins > 0 {
            self.offsets[0] = 0;
        }
    }

    /// Number of bins of the last rebuild.
    pub fn bins(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Items in bin `b`, in insertion order.
    #[inline]
    pub fn bin(&self, b: usize) -> &[u32] {
        &self.items[self.offsets[b] as usize..self.offsets[b + 1] as usize]
    }

    /// All items sorted by bin (stable).
    pub fn items(&self) -> &[u32] {
        &self.items
    }

    /// CSR offsets (length bins + 1).
    pub fn offsets(&self) -> &[u32] {
        &self.offsets
    }

    /// Bins holding at least one item.
    pub fn occupied(&self) -> usize {
        self.offsets.windows(2).filter(|w| w[1] > w[0]).count()
    }
}

/// Flow positions binned by lattice cell (ix, iy, iz) over W x H x (D+1).
#[derive(Debug, Clone)]
pub struct LatticeGrid {
    lattice: Lattice,
    keys: Vec<u32>,
    grid: CellGrid,
}

impl LatticeGrid {
    pub fn new(lattice: Lattice) -> Self {
        LatticeGrid {
            lattice,
            keys: Vec::new(),
            grid: CellGrid::new(),
        }
    }

    fn layers(&self) -> usize {
        self.lattice.depth + 1
    }

    /// Cell coordinates of a normalised position (O(1) quantisation).
    pub fn cell_coords(&self, p: [f32; 3]) -> (usize, usize, usize) {
        let l = &self.lattice;
        (
            crate::geometry::quantise(p[0], l.width),
            crate::geometry::quantise(p[1], l.height),
            l.layer_of(p[2]),
        )
    }

    fn key(&self, ix: usize, iy: usize, iz: usize) -> usize {
        (iz * self.lattice.height + iy) * self.lattice.width + ix
    }

    /// Re-bins all positions: O(N + cells), reuses its buffers.
    pub fn rebuild(&mut self, positions: &[[f32; 3]]) {
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(positions.iter().map(|&p| {
            let (ix, iy, iz) = self.cell_coords(p);
            self.key(ix, iy, iz) as u32
        }));
        let bins = self.lattice.cells() * self.layers();
        self.grid.rebuild(&keys, bins);
        self.keys = keys;
    }

    /// Indices of the flows in cell (ix, iy, iz); empty outside the lattice.
    pub fn in_cell(&self, ix: usize, iy: usize, iz: usize) -> &[u32] {
        let l = &self.lattice;
        if ix >= l.width || iy >= l.height || iz >= self.layers() || self.grid.bins() == 0 {
            return &[];
        }
        self.grid.bin(self.key(ix, iy, iz))
    }

    /// Appends to `out` the flows whose cell lies within `radius` cells of
    /// (ix, iy, iz) in every axis (a cube of side 2r+1, clipped to the
    /// lattice), cell by cell in key order.
    pub fn within_radius(&self, ix: usize, iy: usize, iz: usize, radius: usize, out: &mut Vec<u32>) {
        let l = &self.lattice;
        let span = |c: usize, n: usize| c.saturating_sub(radius)..=(c + radius).min(n - 1);
        for z in span(iz, self.layers()) {
            for y in span(iy, l.height) {
                for x in span(ix, l.width) {
                    out.extend_from_slice(self.in_cell(x, y, z));
                }
            }
        }
    }

    /// Cells holding at least one flow.
    pub fn occupied_cells(&self) -> usize {
        self.grid.occupied()
    }

    /// Flows per depth layer 0..=D. A layer is a contiguous run of bins
    /// (keys are layer-major), so each count is one difference of offsets.
    pub fn layer_counts(&self) -> Vec<usize> {
        let s = self.lattice.cells();
        let off = self.grid.offsets();
        (0..self.layers())
            .map(|iz| match (off.get(iz * s), off.get((iz + 1) * s)) {
                (Some(&a), Some(&b)) => (b - a) as usize,
                _ => 0,
            })
            .collect()
    }
}
