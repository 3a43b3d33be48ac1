//! What applies across controllers: `update`'s merge and the fields runc only warns about.

use oci_spec::runtime::{LinuxPids, LinuxResources};

/// runc's `update`: the fields it changes (block I/O weight, cpu shares/quota/period/realtime/
/// cpus/mems, memory limit/reservation/swap, pids limit, unified; and burst/idle/checkBeforeUpdate
/// of newer specs) are taken from `changes` where set and non-zero ("0" means "unchanged" in
/// runc's flags); everything else stays as in `current`. A quota or a period alone keeps the other.
pub fn merge_update(current: &LinuxResources, changes: &LinuxResources) -> LinuxResources {
    let mut out = current.clone();

    if let Some(w) = changes
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        let mut b = out.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        out.set_block_io(Some(b));
    }

    if let Some(c) = changes.cpu() {
        let mut cpu = out.cpu().clone().unwrap_or_default();
        let nz_u = |v: Option<u64>| v.filter(|v| *v != 0);
        let nz_i = |v: Option<i64>| v.filter(|v| *v != 0);
        if let Some(v) = nz_u(c.shares()) {
            cpu.set_shares(Some(v));
        }
        if let Some(v) = nz_i(c.quota()) {
            cpu.set_quota(Some(v));
        }
        if let Some(v) = nz_u(c.period()) {
            cpu.set_period(Some(v));
        }
        if let Some(v) = nz_i(c.realtime_runtime()) {
            cpu.set_realtime_runtime(Some(v));
        }
        if let Some(v) = nz_u(c.realtime_period()) {
            cpu.set_realtime_period(Some(v));
        }
        if let Some(v) = c.burst() {
            cpu.set_burst(Some(v));
        }
        if let Some(v) = c.idle() {
            cpu.set_idle(Some(v));
        }
        if let Some(v) = c.cpus().clone().filter(|s| !s.is_empty()) {
            cpu.set_cpus(Some(v));
        }
        if let Some(v) = c.mems().clone().filter(|s| !s.is_empty()) {
            cpu.set_mems(Some(v));
        }
        out.set_cpu(Some(cpu));
    }

    if let Some(m) = changes.memory() {
        let mut mem = out.memory().unwrap_or_default();
        let nz = |v: Option<i64>| v.filter(|v| *v != 0);
        if let Some(v) = nz(m.limit()) {
            mem.set_limit(Some(v));
        }
        if let Some(v) = nz(m.reservation()) {
            mem.set_reservation(Some(v));
        }
        if let Some(v) = nz(m.swap()) {
            mem.set_swap(Some(v));
        }
        if let Some(v) = m.check_before_update() {
            mem.set_check_before_update(Some(v));
        }
        out.set_memory(Some(mem));
    }

    if let Some(p) = changes.pids().filter(|p| p.limit() != 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(p.limit());
        out.set_pids(Some(pids));
    }

    if let Some(u) = changes.unified() {
        let mut map = out.unified().clone().unwrap_or_default();
        map.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.set_unified(Some(map));
    }
    out
}

/// What runc accepts but only warns about; the caller logs these.
pub fn warnings(r: &LinuxResources) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            out.push("Kernel memory settings are ignored and will be removed".to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn update_merges_as_runc() {
        let current = res(
            r#"{"memory":{"limit":1000,"swap":2000},"cpu":{"shares":512,"quota":5000,"period":10000,"cpus":"0"},
                "pids":{"limit":10},"devices":[{"allow":false,"access":"rwm"}]}"#,
        );
        // What `hull update --cpu-period 20000 --memory 3000` builds: zeros elsewhere.
        let changes = res(
            r#"{"memory":{"limit":3000,"reservation":0,"swap":0},"cpu":{"shares":0,"quota":0,"period":20000,"cpus":""},
                "blockIO":{"weight":0},"pids":{"limit":0}}"#,
        );
        let m = merge_update(&current, &changes);
        let cpu = m.cpu().as_ref().unwrap();
        assert_eq!(cpu.period(), Some(20000));
        assert_eq!(cpu.quota(), Some(5000), "a period alone keeps the quota");
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        let mem = m.memory().unwrap();
        assert_eq!(mem.limit(), Some(3000));
        assert_eq!(mem.swap(), Some(2000));
        assert_eq!(m.pids().unwrap().limit(), 10);
        assert!(m.block_io().is_none());
        assert_eq!(m.devices().as_ref().unwrap().len(), 1, "devices untouched");
    }

    #[test]
    fn kernel_memory_is_a_warning() {
        assert!(warnings(&res(r#"{"memory":{"limit":1}}"#)).is_empty());
        assert_eq!(
            warnings(&res(r#"{"memory":{"kernel":1}}"#)),
            vec!["Kernel memory settings are ignored and will be removed".to_string()]
        );
    }
}
