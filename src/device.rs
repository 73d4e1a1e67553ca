//! Backend and device selection (Flex on CPU by default, Vulkan with the
//! `vulkan` feature), seeding, and the few host <-> device conversions the
//! engine needs.

use crate::error::{Error, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Which compute device a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DeviceKind {
    /// burn's Flex backend on the CPU.
    #[default]
    Cpu,
    /// burn's Vulkan (wgpu) backend; needs the `vulkan` cargo feature.
    Vulkan,
}

/// The device for `kind`. For Vulkan the adapter is probed first, and a
/// missing adapter (burn panics with "no adapter found") becomes an error.
pub fn select(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Vulkan => vulkan(),
    }
}

#[cfg(feature = "vulkan")]
fn vulkan() -> Result<Device> {
    use burn::tensor::DeviceKind as Dk;
    // burn panics inside the first tensor op when no adapter exists; probe
    // with one tiny op under catch_unwind and turn the panic into an error.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let device = Device::vulkan(Dk::default());
        let t = Tensor::<1>::from_floats([1.0f32, 2.0], &device);
        let v: f32 = t.sum().into_scalar();
        (device, v)
    });
    std::panic::set_hook(hook);
    match probe {
        Ok((device, v)) if v == 3.0 => Ok(device),
        Ok(_) => Err(Error::input(
            "--device vulkan: the Vulkan adapter computed a wrong result in a probe",
        )),
        Err(_) => Err(Error::input(
            "--device vulkan: no usable Vulkan adapter found on this machine",
        )),
    }
}

#[cfg(not(feature = "vulkan"))]
fn vulkan() -> Result<Device> {
    Err(Error::input(
        "--device vulkan: this binary was built without the `vulkan` feature (cargo build --release --features vulkan)",
    ))
}

/// A float tensor [rows, cols] from host data.
pub fn matrix(data: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, [rows, cols]), device)
}

/// A float vector from host data.
pub fn vector(data: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
}

/// An index vector from host data.
pub fn indices(idx: &[u32], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// Reads a float tensor back to the host (one device synchronisation).
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Internal(format!("reading a tensor back: {e:?}")))
}
