//! linux.resources.rdma.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::LinuxRdma;

use super::fs;
use crate::error::Result;

/// One rdma.max line: `<device> hca_handle=N hca_object=M` (either may be absent).
pub fn rdma_line(device: &str, r: &LinuxRdma) -> String {
    let mut s = device.to_string();
    if let Some(h) = r.hca_handles() {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = r.hca_objects() {
        s.push_str(&format!(" hca_object={o}"));
    }
    s
}

pub(super) fn set(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<()> {
    // Sorted, so a failure names the same device every time.
    let mut devices: Vec<_> = rdma.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, r) in devices {
        fs::write(dir, "rdma.max", &rdma_line(dev, r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxRdmaBuilder;

    #[test]
    fn lines() {
        let r = LinuxRdmaBuilder::default()
            .hca_handles(3u32)
            .hca_objects(100u32)
            .build()
            .unwrap();
        assert_eq!(
            rdma_line("mlx5_1", &r),
            "mlx5_1 hca_handle=3 hca_object=100"
        );
        let r = LinuxRdmaBuilder::default()
            .hca_objects(7u32)
            .build()
            .unwrap();
        assert_eq!(rdma_line("mlx4_0", &r), "mlx4_0 hca_object=7");
    }
}
