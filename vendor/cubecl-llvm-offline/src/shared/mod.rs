pub mod lowered_features {
    //! Device-feature trimming for LLVM-compiled kernels; with NVRTC there is nothing to trim.

    use cubecl_core::ir::DeviceProperties;

    /// The GPU targets the LLVM backend knows.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum GpuTarget {
        Nvptx,
    }

    /// Leaves the device's properties as the driver reports them: the features it would remove
    /// are ones the LLVM backend cannot lower, and NVRTC can.
    pub fn restrict_features(_properties: &mut DeviceProperties, _target: GpuTarget) {}
}
