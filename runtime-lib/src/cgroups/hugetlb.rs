//! linux.resources.hugepageLimits.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use super::fs;
use crate::error::{Error, Result};

/// The page sizes the kernel offers, in cgroup file notation ("2MB", "1GB"), from
/// /sys/kernel/mm/hugepages/hugepages-<N>kB.
pub fn page_sizes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<(u64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kb, size_name(kb)))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, s)| s).collect()
}

/// 2048 → "2MB", 1048576 → "1GB", 64 → "64KB", as the kernel names the files.
pub fn size_name(kb: u64) -> String {
    if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

fn check_size(l: &LinuxHugepageLimit) -> Result<()> {
    let sizes = page_sizes();
    if sizes.iter().any(|s| s == l.page_size()) {
        return Ok(());
    }
    Err(Error::InvalidConfig {
        field: "linux.resources.hugepageLimits".into(),
        problem: format!(
            "invalid hugepage size {:?}: the kernel offers {}",
            l.page_size(),
            sizes.join(", ")
        ),
    })
}

/// Writes the fault limit and, where the kernel has it, the reservation limit too (the spec
/// asks for reservation limits when supported).
fn write_limits(dir: &Path, limits: &[LinuxHugepageLimit], max: &str, rsvd: &str) -> Result<()> {
    for l in limits {
        check_size(l)?;
        let v = l.limit().to_string();
        fs::write(dir, &format!("hugetlb.{}.{max}", l.page_size()), &v)?;
        let rsvd_file = format!("hugetlb.{}.{rsvd}", l.page_size());
        if dir.join(&rsvd_file).exists() {
            fs::write(dir, &rsvd_file, &v)?;
        }
    }
    Ok(())
}

pub(super) fn set_v1(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    write_limits(dir, limits, "limit_in_bytes", "rsvd.limit_in_bytes")
}

pub(super) fn set_v2(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    write_limits(dir, limits, "max", "rsvd.max")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_names() {
        assert_eq!(size_name(2048), "2MB");
        assert_eq!(size_name(1048576), "1GB");
        assert_eq!(size_name(64), "64KB");
        for s in page_sizes() {
            assert!(s.ends_with("B"), "{s}");
        }
    }
}
