//! Alerts and the bus that carries them to the sinks.

mod record;

pub use record::{
    Alert, MAX_REGIONS, NAME_LEN, Name, Phase, Region, SNAPSHOT_NAME_LEN, SnapshotName,
};
