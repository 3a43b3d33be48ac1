//! linux.sysctl on the host: a key's file under /proc/sys, known before anything is written.
//!
//! Keys follow sysctl(8): `net.ipv4.ip_forward`, or the `/` form `net/ipv4/ip_forward`. In the dotted
//! form a `/` stands for a `.` inside one name (`net.ipv4.conf.eth0/100.rp_filter` is the file
//! `net/ipv4/conf/eth0.100/rp_filter`), which is what runc's validator assumes too.

use std::path::PathBuf;

/// The key in its dotted form (runc's `convertSysctlVariableToDotsSeparator`): a key whose first
/// separator is `/` has its `.` and `/` swapped.
pub fn dotted(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// The file under /proc/sys a key names, or `None` when the key could leave /proc/sys or names
/// nothing (an empty, `.` or `..` component).
pub fn proc_path(key: &str) -> Option<PathBuf> {
    let mut path = PathBuf::from("/proc/sys");
    for name in dotted(key).split('.') {
        let name = name.replace('/', ".");
        if name.is_empty() || name == "." || name == ".." {
            return None;
        }
        path.push(name);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_swaps_only_slash_first_keys() {
        assert_eq!(dotted("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(dotted("net/ipv4/ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(
            dotted("net/ipv4/conf/eno2.100/rp_filter"),
            "net.ipv4.conf.eno2/100.rp_filter"
        );
        assert_eq!(dotted("kernel"), "kernel");
    }

    #[test]
    fn proc_path_maps_both_forms_and_refuses_escapes() {
        let p = |k| proc_path(k).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(
            p("net.ipv4.ip_forward").as_deref(),
            Some("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            p("net/ipv4/conf/eno2.100/rp_filter").as_deref(),
            Some("/proc/sys/net/ipv4/conf/eno2.100/rp_filter")
        );
        assert_eq!(
            p("net.ipv4.conf.eno2/100.rp_filter").as_deref(),
            Some("/proc/sys/net/ipv4/conf/eno2.100/rp_filter")
        );
        for bad in [
            "",
            "net..x",
            ".net",
            "net.",
            "net/../kernel/x",
            "net.//.kernel",
            "net/./x",
            "../../etc/passwd",
        ] {
            assert_eq!(p(bad), None, "{bad:?} must be refused");
        }
    }
}
