//! The PTX ISA version matching a CUDA driver.

/// A PTX ISA version times ten (PTX 8.7 is 87).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PtxVersion(u32);

/// (first CUDA driver version, as `cuDriverGetVersion` reports it, that loads the PTX version;
/// that PTX version), newest first. From NVIDIA's PTX ISA release notes.
const FIRST_DRIVER_FOR_PTX: [(i32, u32); 24] = [
    (13030, 93),
    (13020, 92),
    (13010, 91),
    (13000, 90),
    (12090, 88),
    (12080, 87),
    (12050, 85),
    (12040, 84),
    (12030, 83),
    (12020, 82),
    (12010, 81),
    (12000, 80),
    (11080, 78),
    (11070, 77),
    (11060, 76),
    (11050, 75),
    (11040, 74),
    (11030, 73),
    (11020, 72),
    (11010, 71),
    (11000, 70),
    (10020, 65),
    (10010, 64),
    (10000, 63),
];

impl PtxVersion {
    /// The newest PTX version a driver loads; `None` for drivers older than CUDA 10.
    pub fn for_driver(driver_version: i32) -> Option<Self> {
        FIRST_DRIVER_FOR_PTX
            .iter()
            .find(|(first, _)| driver_version >= *first)
            .map(|&(_, ptx)| Self(ptx))
    }
}

impl core::fmt::Display for PtxVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ptx{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::PtxVersion;

    #[test]
    fn each_driver_gets_the_newest_ptx_it_loads() {
        assert_eq!(PtxVersion::for_driver(13000).map(|v| v.to_string()).as_deref(), Some("ptx90"));
        assert_eq!(PtxVersion::for_driver(12060).map(|v| v.to_string()).as_deref(), Some("ptx85"));
        assert_eq!(PtxVersion::for_driver(9000), None);
    }
}
