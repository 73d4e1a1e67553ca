//! How every picture looks and becomes a file: the embedded font, the
//! palette, the sizes, the colour scale, and the canvas that plotters draws
//! into and that is encoded as a PNG.
//!
//! Text is drawn by plotters' `ab_glyph` renderer from the Go font embedded
//! in the binary (`assets/fonts/`, BSD-3-Clause), so no system font is
//! looked up and a picture is the same on every machine. Drawing goes into
//! an RGB buffer that the `png` crate encodes: the bytes are a pure
//! function of the data, and the file is written like every other output
//! (`io::write_atomic`).

use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::path::Path;
use std::sync::Once;

/// The font family every text uses (registered once, see [`canvas_png`]).
pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/Go-Regular.ttf");

/// Text sizes in pixels.
pub const TITLE: u32 = 26;
pub const CAPTION: u32 = 20;
pub const AXIS: u32 = 17;
pub const TICKS: u32 = 14;

/// A one-panel picture.
pub const WIDE: (u32, u32) = (1000, 600);
/// A picture of two panels stacked.
pub const TALL: (u32, u32) = (1000, 820);
/// A picture of two panels side by side.
pub const PAIR: (u32, u32) = (1300, 620);
/// A square-ish map of the lattice surface.
pub const MAP: (u32, u32) = (900, 720);

/// Series colours (the "tab10" palette, easy to tell apart).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A light version of `c`, for noisy raw series drawn under their average.
pub fn light(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (v as u16 + (255 - v as u16) * 3 / 5) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// The colour of `v` on the viridis scale over [lo, hi] (NaN and values
/// outside the range are clamped; an empty range maps to its middle).
pub fn scale_color(v: f64, lo: f64, hi: f64) -> RGBColor {
    let t = if hi > lo && v.is_finite() {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    ViridisRGB::get_color(t as f32)
}

/// A plotters error as ours: drawing fails only on our own mistakes.
pub fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Internal(format!("drawing: {e:?}"))
}

/// The drawing area of a canvas.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws a `size` picture with `draw` on a white canvas and returns its
/// PNG bytes.
pub fn canvas_png(size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<Vec<u8>> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The bytes are ours and checked by the tests; a failure would
        // show as a drawing error below ("font unavailable").
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
    let (w, h) = size;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&buf, w, h)
}

/// RGB8 pixels -> PNG bytes.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(draw_err)?;
        writer.write_image_data(rgb).map_err(draw_err)?;
        writer.finish().map_err(draw_err)?;
    }
    Ok(out)
}

/// Draws a picture and writes it to `path` (atomically).
pub fn write_png(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    crate::io::write_atomic(path, &canvas_png(size, draw)?)
}

/// The width and height of a PNG file's image (from its IHDR chunk), or
/// None when the bytes are not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().ok()?;
    let info = reader.info();
    Some((info.width, info.height))
}
