//! One `gpu` cfg for "built with a GPU backend" (the `vulkan` or `wgpu`
//! feature), so the code says `cfg(gpu)` instead of repeating the pair.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(gpu)");
    if std::env::var_os("CARGO_FEATURE_VULKAN").is_some() || std::env::var_os("CARGO_FEATURE_WGPU").is_some() {
        println!("cargo::rustc-cfg=gpu");
    }
}
