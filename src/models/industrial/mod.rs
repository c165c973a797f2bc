//! Industrial defects (ISSTAD-edge) on factory-line cameras: the anomaly map computed from the
//! model's per-pixel outputs, defect boxes, and heatmap snapshots written next to alerts.

pub mod anomaly_map;
pub mod boxes;
pub mod overlay;
