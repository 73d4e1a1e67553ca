//! Branch-free f32 `exp`, `sigmoid`, `tanh` and GELU for the fused kernels.
//!
//! Why our own: libm's `expf`/`tanhf` are scalar calls that no loop around
//! them can vectorise, and they were about 30% of a training step. These
//! are plain arithmetic (Cephes' polynomials, the exponent built from bits),
//! `#[inline(always)]`, with selects instead of branches, so a loop over a
//! slice compiled for AVX2 or AVX-512 (`multiversion`) runs 8 or 16 lanes at
//! once. No fused multiply-add is asked for, so every instruction set gives
//! the same bits.
//!
//! Accuracy, tested against f64 below: at most 1e-6 relative error where
//! the result is a normal f32 (`exp` on [-87, 88], `sigmoid` above -80,
//! `tanh` everywhere, GELU and its derivative on [-12, 12]).

/// e^x for x in [-87.3, 88] (clamped outside: the result saturates at
/// e^-87.3 ~ 1.2e-38 and e^88 ~ 1.7e38 instead of reaching 0 or inf).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n * LN2_HI is exact (Cephes' C1, C2).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r on |r| <= ln(2)/2 (Cephes expf).
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2^n from its bits, n in [-126, 127] after the clamp. The low mantissa
    // bits of t hold 2^22 + n; shifting them into the exponent field is
    // integer arithmetic, which vectorises (a float-to-int cast does not:
    // Rust's saturating `as` is scalarised).
    let biased = t.to_bits().wrapping_add(127).wrapping_sub(1 << 22);
    er * f32::from_bits(biased << 23)
}

/// 1 / (1 + e^-x).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh(x): an odd polynomial near 0 (where 1 - 2/(e^2x + 1) would lose
/// its relative accuracy to cancellation), that formula elsewhere.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    // Cephes tanhf for |x| < 0.625.
    let p = -5.704_988_7e-3;
    let p = p * z + 2.063_909e-2;
    let p = p * z - 5.373_971_6e-2;
    let p = p * z + 0.133_314_42;
    let p = p * z - 0.333_332_8;
    let small = p * z * x + x;
    let large = (1.0 - 2.0 / (exp(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 { small } else { large }
}

/// exp(-x^2 / 2) to nearly full f32 precision. Rounding x^2 alone would
/// cost x^2 * 6e-8 of relative error (1e-6 at |x| = 4), so x is split into
/// a 12-bit head, whose square is exact, and a tail (Dekker's split).
#[inline(always)]
fn exp_neg_half_square(x: f32) -> f32 {
    let head = f32::from_bits(x.to_bits() & 0xffff_f000);
    let tail = x - head;
    exp(-0.5 * head * head) * exp(-0.5 * tail * (head + x))
}

/// (GELU(x), GELU'(x)) with GELU(x) = x Phi(x) and GELU'(x) = Phi(x) + x
/// phi(x): the exact (erf) GELU of PyTorch and burn. Phi comes from erfc,
/// which keeps its relative accuracy where Phi is tiny: erfc(z) = t e^{-z^2}
/// e^{P(t)}, t = 1 / (1 + z/2), fractional error below 1.2e-7 for every
/// z >= 0 (Numerical Recipes' Chebyshev fit, `erfcc`).
#[inline(always)]
pub fn gelu_with_derivative(x: f32) -> (f32, f32) {
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = 0.170_872_77;
    let p = p * t - 0.822_152_23;
    let p = p * t + 1.488_515_9;
    let p = p * t - 1.135_204;
    let p = p * t + 0.278_868_07;
    let p = p * t - 0.186_288_06;
    let p = p * t + 0.096_784_18;
    let p = p * t + 0.374_091_96;
    let p = p * t + 1.000_023_7;
    let p = p * t - 1.265_512_2;
    let gauss = exp_neg_half_square(x);
    // Phi(-|x|) = erfc(|x|/sqrt 2) / 2; Phi(|x|) = 1 - that.
    let tail = 0.5 * t * gauss * exp(p);
    let phi_cdf = if x < 0.0 { tail } else { 1.0 - tail };
    (x * phi_cdf, phi_cdf + x * gauss * FRAC_1_SQRT_2PI)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest relative error of `f` against `reference` over `n` points of
    /// [lo, hi] (both ends included).
    fn worst(f: fn(f32) -> f32, reference: fn(f64) -> f64, lo: f32, hi: f32, n: usize) -> (f64, f32) {
        let mut worst = (0.0, lo);
        for i in 0..=n {
            let x = lo + (hi - lo) * i as f32 / n as f32;
            let want = reference(x as f64);
            let got = f(x) as f64;
            let rel = (got - want).abs() / want.abs().max(f64::MIN_POSITIVE);
            if rel > worst.0 {
                worst = (rel, x);
            }
        }
        worst
    }

    #[test]
    fn exp_is_within_1e6_relative() {
        let (e, at) = worst(exp, f64::exp, -87.0, 88.0, 400_000);
        assert!(e <= 1e-6, "exp: {e:e} at {at}");
        let (e, at) = worst(exp, f64::exp, -1.0, 1.0, 100_000);
        assert!(e <= 1e-6, "exp near 0: {e:e} at {at}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1.3e-38);
        assert!(exp(1000.0).is_finite());
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_is_within_1e6_relative() {
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (e, at) = worst(sigmoid, s, -80.0, 40.0, 400_000);
        assert!(e <= 1e-6, "sigmoid: {e:e} at {at}");
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(100.0), 1.0);
        assert!(sigmoid(-100.0) >= 0.0);
    }

    fn gelu64(x: f64) -> f64 {
        0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
    }

    /// The two terms of GELU'(x) = Phi(x) + x phi(x).
    fn gelu_derivative_terms64(x: f64) -> (f64, f64) {
        let cdf = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
        (cdf, x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt())
    }

    #[test]
    fn gelu_and_its_derivative_are_within_1e6_relative() {
        let (e, at) = worst(|x| gelu_with_derivative(x).0, gelu64, -12.0, 12.0, 400_000);
        assert!(e <= 1e-6, "gelu: {e:e} at {at}");
        let (e, at) = worst(|x| gelu_with_derivative(x).0, gelu64, -1e-3, 1e-3, 100_000);
        assert!(e <= 1e-6, "gelu near 0: {e:e} at {at}");
        // GELU' = Phi + x phi is a difference of two terms near its zero
        // (x = -0.75), where no f32 evaluation keeps its relative accuracy:
        // its error is measured against the size of its terms instead.
        for i in 0..=400_000 {
            let x = -12.0 + 24.0 * i as f32 / 400_000.0;
            let (cdf, density) = gelu_derivative_terms64(x as f64);
            let (want, got) = (cdf + density, gelu_with_derivative(x).1 as f64);
            let scale = cdf.abs() + density.abs();
            assert!((got - want).abs() <= 1e-6 * scale, "gelu' at {x}: {got} vs {want}");
        }
        assert_eq!(gelu_with_derivative(0.0), (0.0, 0.5));
        assert_eq!(gelu_with_derivative(20.0).0, 20.0);
        assert!(gelu_with_derivative(-20.0).0.abs() < 1e-30);
    }

    #[test]
    fn tanh_is_within_1e6_relative() {
        let (e, at) = worst(tanh, f64::tanh, -20.0, 20.0, 400_000);
        assert!(e <= 1e-6, "tanh: {e:e} at {at}");
        // Near zero, where the relative error is hardest to keep.
        let (e, at) = worst(tanh, f64::tanh, -1e-3, 1e-3, 100_000);
        assert!(e <= 1e-6, "tanh near 0: {e:e} at {at}");
        // Around the switch between the two formulas.
        let (e, at) = worst(tanh, f64::tanh, 0.6, 0.65, 100_000);
        assert!(e <= 1e-6, "tanh at the switch: {e:e} at {at}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert!(tanh(f32::NAN).is_nan());
    }
}
