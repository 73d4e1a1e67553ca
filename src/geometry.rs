//! Normalised lattice coordinates (MODEL.md s.2): the mapping between lattice
//! indices and [-1, 1]^3, the input and output planes, O(1) quantisation of
//! (x, y) to a surface cell, and the distance to the output surface.
//!
//! Everything here is plain arithmetic on f32: no search, no allocation.

/// z of the "z0" output plane.
pub const Z0: f32 = -1.0;
/// z of the "zD" output plane.
pub const ZD: f32 = 1.0;

/// The lattice's shape and the constants derived from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lattice {
    pub width: usize,
    pub height: usize,
    pub depth: usize,
}

impl Lattice {
    pub fn new(width: usize, height: usize, depth: usize) -> Self {
        Lattice { width, height, depth }
    }

    /// Surface cells S = W * H.
    pub fn cells(&self) -> usize {
        self.width * self.height
    }

    /// Normalised x of lattice column `ix` (0..W-1 -> [-1, 1]).
    pub fn x_of(&self, ix: usize) -> f32 {
        axis_to_norm(ix, self.width)
    }

    /// Normalised y of lattice row `iy` (0..H-1 -> [-1, 1]).
    pub fn y_of(&self, iy: usize) -> f32 {
        axis_to_norm(iy, self.height)
    }

    /// Normalised z of depth layer `iz` (0..D -> [-1, 1]).
    pub fn z_of(&self, iz: usize) -> f32 {
        2.0 * iz as f32 / self.depth as f32 - 1.0
    }

    /// The input plane: z_in = 2 * (D div 2) / D - 1 (0 for even D).
    pub fn z_in(&self) -> f32 {
        self.z_of(self.depth / 2)
    }

    /// Surface cell of normalised (x, y): ix = round((x+1)/2*(W-1)) clamped,
    /// likewise iy; cell = iy * W + ix (row-major, the mapper's [H, W]).
    #[inline]
    pub fn cell_of(&self, x: f32, y: f32) -> usize {
        let ix = quantise(x, self.width);
        let iy = quantise(y, self.height);
        iy * self.width + ix
    }

    /// Depth layer of normalised z (0..=D), rounded and clamped.
    #[inline]
    pub fn layer_of(&self, z: f32) -> usize {
        let v = ((z + 1.0) * 0.5 * self.depth as f32).round();
        if v.is_nan() || v <= 0.0 {
            0
        } else {
            (v as usize).min(self.depth)
        }
    }

    /// Normalised (x, y) of surface cell `cell`.
    pub fn cell_xy(&self, cell: usize) -> (f32, f32) {
        (self.x_of(cell % self.width), self.y_of(cell / self.width))
    }
}

#[inline]
fn axis_to_norm(i: usize, n: usize) -> f32 {
    if n <= 1 {
        0.0
    } else {
        2.0 * i as f32 / (n - 1) as f32 - 1.0
    }
}

/// round((v+1)/2*(n-1)) clamped to 0..n-1; NaN maps to 0.
#[inline]
pub fn quantise(v: f32, n: usize) -> usize {
    let f = ((v + 1.0) * 0.5 * (n - 1) as f32).round();
    if f.is_nan() || f <= 0.0 {
        0
    } else {
        (f as usize).min(n - 1)
    }
}

/// Distance to the output surface: d = min(|z+1|, |z-1|).
#[inline]
pub fn surface_distance(z: f32) -> f32 {
    (z - Z0).abs().min((z - ZD).abs())
}

/// The plane a projected flow goes to: the nearer one; a flow exactly at
/// z = 0 goes to zD (a fixed, documented tie-break).
#[inline]
pub fn nearer_plane(z: f32) -> f32 {
    if z < 0.0 { Z0 } else { ZD }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corners_and_centre() {
        let l = Lattice::new(20, 10, 10);
        assert_eq!(l.x_of(0), -1.0);
        assert_eq!(l.x_of(19), 1.0);
        assert_eq!(l.z_in(), 0.0);
        assert_eq!(Lattice::new(4, 4, 5).z_in(), 2.0 * 2.0 / 5.0 - 1.0);
        for iy in 0..10 {
            for ix in 0..20 {
                assert_eq!(l.cell_of(l.x_of(ix), l.y_of(iy)), iy * 20 + ix);
            }
        }
        assert_eq!(l.cell_of(-5.0, 7.0), 9 * 20);
        assert_eq!(l.cell_of(f32::NAN, 0.0), 5 * 20);
    }

    #[test]
    fn distance_and_nearer_plane() {
        assert_eq!(surface_distance(0.0), 1.0);
        assert_eq!(surface_distance(-1.0), 0.0);
        assert_eq!(surface_distance(0.75), 0.25);
        assert_eq!(nearer_plane(-0.1), Z0);
        assert_eq!(nearer_plane(0.1), ZD);
    }
}
