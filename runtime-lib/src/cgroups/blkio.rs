//! linux.resources.blockIO: v1 blkio, v2 io.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::fs;
use crate::error::{Error, Result};

/// runc's v1 → v2 conversion: blkio weight [10, 1000] maps linearly onto io.weight [1, 10000].
pub fn weight_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

fn throttles(b: &LinuxBlockIo) -> [(&'static str, &'static str, &[LinuxThrottleDevice]); 4] {
    fn v(o: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
        o.as_deref().unwrap_or_default()
    }
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            v(b.throttle_read_bps_device()),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            v(b.throttle_write_bps_device()),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            v(b.throttle_read_iops_device()),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            v(b.throttle_write_iops_device()),
        ),
    ]
}

pub(super) fn needs(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|d| !d.is_empty())
        || throttles(b).iter().any(|(_, _, d)| !d.is_empty())
}

/// The v2 `io.max` line for one throttle.
pub fn io_max_line(key: &str, t: &LinuxThrottleDevice) -> String {
    format!("{}:{} {key}={}", t.major(), t.minor(), t.rate())
}

pub(super) fn set_v1(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    // CFQ's files, or BFQ's on kernels without CFQ; a kernel with neither scheduler (one
    // built without BFQ: only none, mq-deadline, kyber) has no weight to set, and says so as the
    // field that asked for one, not as a file that is missing.
    let weight_files = if dir.join("blkio.weight").exists() {
        Ok(("blkio.weight", "blkio.weight_device"))
    } else if dir.join("blkio.bfq.weight").exists() {
        Ok(("blkio.bfq.weight", "blkio.bfq.weight_device"))
    } else {
        Err(|field: &str| Error::InvalidConfig {
            field: format!("linux.resources.blockIO.{field}"),
            problem: "cannot set blkio weight: this kernel's blkio cgroups have no weight file \
                      (blkio.weight of CFQ, blkio.bfq.weight of BFQ): no I/O scheduler that \
                      takes cgroup weights"
                .into(),
        })
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let (weight_file, _) = weight_files.map_err(|e| e("weight"))?;
        fs::write(dir, weight_file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        fs::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().as_deref().unwrap_or_default() {
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            let (_, weight_device_file) = weight_files.map_err(|e| e("weightDevice"))?;
            let line = format!("{}:{} {w}", wd.major(), wd.minor());
            fs::write(dir, weight_device_file, &line)?;
        }
        if let Some(w) = wd.leaf_weight().filter(|w| *w != 0) {
            let line = format!("{}:{} {w}", wd.major(), wd.minor());
            fs::write(dir, "blkio.leaf_weight_device", &line)?;
        }
    }
    for (file, _, devs) in throttles(b) {
        for t in devs {
            let line = format!("{}:{} {}", t.major(), t.minor(), t.rate());
            fs::write(dir, file, &line)?;
        }
    }
    Ok(())
}

pub(super) fn set_v2(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let leaf = b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|d| d.leaf_weight().is_some_and(|w| w != 0));
    if leaf {
        return Err(Error::InvalidConfig {
            field: "linux.resources.blockIO.leafWeight".into(),
            problem: "leaf weights do not exist on cgroup v2".into(),
        });
    }
    // BFQ takes the v1 weight range as is; io.weight needs the conversion.
    let bfq = fs::read_opt(dir, "io.bfq.weight")?;
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        match bfq {
            Some(_) => fs::write(dir, "io.bfq.weight", &w.to_string())?,
            None => fs::write(dir, "io.weight", &weight_to_io_weight(w).to_string())?,
        }
    }
    let devices = b.weight_device().as_deref().unwrap_or_default();
    let with_weight: Vec<_> = devices
        .iter()
        .filter_map(|d| Some((d, d.weight().filter(|w| *w != 0)?)))
        .collect();
    if !with_weight.is_empty() {
        // Per-device weights exist only in BFQ's file, whose first line is then "default N".
        let per_device = bfq
            .as_deref()
            .is_some_and(|s| s.trim().parse::<u64>().is_err());
        if !per_device {
            return Err(Error::InvalidConfig {
                field: "linux.resources.blockIO.weightDevice".into(),
                problem: "per-device weights need the BFQ I/O scheduler's io.bfq.weight".into(),
            });
        }
        for (d, w) in with_weight {
            fs::write(
                dir,
                "io.bfq.weight",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    for (_, key, devs) in throttles(b) {
        for t in devs {
            fs::write(dir, "io.max", &io_max_line(key, t))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxThrottleDeviceBuilder;

    #[test]
    fn blkio_weight_converts_as_runc() {
        assert_eq!(weight_to_io_weight(0), 0);
        assert_eq!(weight_to_io_weight(10), 1);
        assert_eq!(weight_to_io_weight(500), 4950);
        assert_eq!(weight_to_io_weight(1000), 10000);
    }

    #[test]
    fn io_max_lines() {
        let t = LinuxThrottleDeviceBuilder::default()
            .major(8i64)
            .minor(0i64)
            .rate(1048576u64)
            .build()
            .unwrap();
        assert_eq!(io_max_line("rbps", &t), "8:0 rbps=1048576");
    }
}
