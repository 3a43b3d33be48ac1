//! Benchmark (not a test): hull vs runc as CRI runtime handlers of one private containerd (the
//! test bed of `integration_tests::cri`), measured as kubelet sees them:
//!
//! - ExecSync latency: 100 probes (`true`) into a running container of each handler, the handlers
//!   taking turns probe by probe, so drift in machine load hits both alike;
//! - pod start latency: RunPodSandbox + CreateContainer + StartContainer of one busybox container,
//!   20 pods per handler (taking turns too; each pod is removed untimed before the next).
//!
//! Run it with:
//!
//!     cargo bench -p integration-tests --bench cri                 # 100 probes, 20 pods
//!     cargo bench -p integration-tests --bench cri -- 500 50       # probes, pods
//!
//! Prints the median and p90 of each, and the ratio hull / runc. Not run by CI.

use std::time::{Duration, Instant};

use integration_tests::cri::{available, Cri, HANDLERS};

const WARMUP: usize = 5;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let probes = args.first().copied().unwrap_or(100);
    let pods = args.get(1).copied().unwrap_or(20);
    if !available() {
        eprintln!("cri bench: containerd or the CNI plugins are missing");
        return;
    }
    let bed = Cri::start();
    println!(
        "CRI handlers of containerd {}: {probes} ExecSync probes, {pods} pod starts each",
        containerd_version()
    );

    // ExecSync: one long-running container per handler, probed in turns.
    let running: Vec<(String, _, String)> = HANDLERS
        .iter()
        .map(|h| {
            let pod = bed.run_pod(h, &format!("bench-exec-{h}"));
            let c = bed.run_container(&pod, "main", "exec sleep 100000");
            (h.to_string(), pod, c)
        })
        .collect();
    let mut exec: Vec<Vec<Duration>> = vec![Vec::new(); HANDLERS.len()];
    for i in 0..WARMUP + probes {
        for (n, (_, _, c)) in order(i, &running) {
            let t = Instant::now();
            let r = bed.exec_sync(c, &["true"], 10).expect("ExecSync");
            let took = t.elapsed();
            assert_eq!(r.exit_code, 0);
            if i >= WARMUP {
                exec[n].push(took);
            }
        }
    }
    for (_, pod, _) in &running {
        bed.remove_pod(pod);
    }

    // Pod start: sandbox, container, start, as kubelet's first sync of a pod does.
    let mut start: Vec<Vec<Duration>> = vec![Vec::new(); HANDLERS.len()];
    let handlers: Vec<&str> = HANDLERS.to_vec();
    for i in 0..2 + pods {
        for (n, h) in order(i, &handlers) {
            let t = Instant::now();
            let pod = bed.run_pod(h, &format!("bench-start-{h}-{i}"));
            bed.run_container(&pod, "main", "exec sleep 100000");
            let took = t.elapsed();
            bed.remove_pod(&pod);
            if i >= 2 {
                start[n].push(took);
            }
        }
    }

    println!();
    println!("|      | ExecSync median | ExecSync p90 | pod start median | pod start p90 |");
    println!("|------|-----------------|--------------|------------------|---------------|");
    for (n, h) in HANDLERS.iter().enumerate() {
        println!(
            "| {h:<4} | {:>15} | {:>12} | {:>16} | {:>13} |",
            ms(percentile(&exec[n], 0.5)),
            ms(percentile(&exec[n], 0.9)),
            ms(percentile(&start[n], 0.5)),
            ms(percentile(&start[n], 0.9)),
        );
    }
    let ratio = |v: &[Vec<Duration>]| {
        percentile(&v[0], 0.5).as_secs_f64() / percentile(&v[1], 0.5).as_secs_f64()
    };
    println!(
        "\nhull / runc (medians): ExecSync {:.2}, pod start {:.2}",
        ratio(&exec),
        ratio(&start)
    );
}

/// The items in a turn-taking order that alternates which goes first.
fn order<T>(i: usize, items: &[T]) -> Vec<(usize, &T)> {
    let mut v: Vec<(usize, &T)> = items.iter().enumerate().collect();
    if i % 2 == 1 {
        v.reverse();
    }
    v
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    s[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn containerd_version() -> String {
    std::process::Command::new("containerd")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("?")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}
