//! The parts of the benchmark about many containers: `exec` into a running one, `create` and
//! `list` as containers pile up, and lifecycles per second with many at once.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{percentile, reap_orphans, Rt};

/// How big each part is: the full run, or `--quick` (before a commit that touches create).
pub struct Sizes {
    /// Timed commands per measurement (exec rounds; creates and lists at each size).
    pub samples: usize,
    /// Live containers when `create` is timed again (the 200).
    pub create_live: usize,
    /// Live containers when `list` is timed again (the 1,000), against 10.
    pub list_live: usize,
    /// Lifecycles (`run` of /bin/true) for the throughput, and how many at a time.
    pub lifecycles: usize,
    pub parallel: usize,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            samples: 20,
            create_live: 200,
            list_live: 1000,
            lifecycles: 1000,
            parallel: 50,
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            samples: 8,
            create_live: 40,
            list_live: 100,
            lifecycles: 100,
            parallel: 10,
        }
    }
}

/// One runtime's results of this module.
#[derive(Default)]
pub struct Scale {
    pub exec: Vec<Duration>,
    /// `create` with none of this runtime's containers alive, with 10, and with `create_live`.
    pub create_none: Duration,
    pub create_few: Duration,
    pub create_many: Duration,
    pub list_few: Duration,
    pub list_many: Duration,
    pub per_second: f64,
}

/// `exec <id> /bin/true` into one running container per runtime, the runtimes taking turns in
/// `order`'s sequence each round.
pub fn exec_rounds(
    rts: &mut [Rt],
    sleeping: &Path,
    rounds: usize,
    mut order: impl FnMut(usize) -> Vec<usize>,
) -> Vec<Vec<Duration>> {
    let ids: Vec<String> = rts
        .iter()
        .map(|rt| format!("bench-{}-exec-{}", std::process::id(), rt.name))
        .collect();
    let mut live = vec![false; rts.len()];
    for (k, rt) in rts.iter_mut().enumerate() {
        live[k] = rt.create_started(sleeping, &ids[k]);
    }
    let mut out = vec![Vec::new(); rts.len()];
    for round in 0..rounds + 2 {
        for k in order(rts.len()) {
            if !live[k] {
                continue;
            }
            let d = rts[k].time(&["exec", ids[k].as_str(), "/bin/true"], false);
            // Two warm-up rounds.
            if d.ok && round >= 2 {
                out[k].push(d.took);
            }
        }
    }
    for (k, rt) in rts.iter_mut().enumerate() {
        let _ = rt.time(&["delete", "--force", ids[k].as_str()], false);
    }
    reap_orphans();
    out
}

/// `create` (each one deleted again, untimed) with none, 10 and `sizes.create_live` running
/// containers, all of this runtime's; `list` with 10 and with `sizes.list_live`. The containers
/// beyond `create_live` are only created, not started (cheaper to make by the thousand; `list`
/// has to look at them all the same).
pub fn pile_up(rt: &mut Rt, bundle: &Path, sleeping: &Path, sizes: &Sizes, scale: &mut Scale) {
    let prefix = format!("bench-{}-{}-live", std::process::id(), rt.name);
    let mut live = 0usize;
    let mut grow_to = |rt: &mut Rt, n: usize| {
        while live < n {
            let id = format!("{prefix}-{live}");
            let ok = if live < sizes.create_live {
                rt.create_started(sleeping, &id)
            } else {
                let ok = rt
                    .time(
                        &["create", "--bundle", path_str(sleeping), id.as_str()],
                        false,
                    )
                    .ok;
                if !ok {
                    let _ = rt.time(&["delete", "--force", id.as_str()], false);
                }
                ok
            };
            if !ok {
                return false;
            }
            live += 1;
        }
        true
    };
    let time_creates = |rt: &mut Rt, tag: &str| {
        let mut v = Vec::new();
        for i in 0..sizes.samples {
            let id = format!("{prefix}-{tag}-{i}");
            let d = rt.time(
                &["create", "--bundle", path_str(bundle), id.as_str()],
                false,
            );
            if d.ok {
                v.push(d.took);
            }
            let _ = rt.time(&["delete", "--force", id.as_str()], false);
        }
        reap_orphans();
        percentile(&v, 0.5)
    };
    let time_lists = |rt: &mut Rt| {
        let v: Vec<Duration> = (0..sizes.samples)
            .map(|_| rt.time(&["list"], false))
            .filter(|d| d.ok)
            .map(|d| d.took)
            .collect();
        percentile(&v, 0.5)
    };
    scale.create_none = time_creates(rt, "none");
    if grow_to(rt, 10) {
        scale.create_few = time_creates(rt, "few");
        scale.list_few = time_lists(rt);
        if grow_to(rt, sizes.create_live) {
            scale.create_many = time_creates(rt, "many");
            if grow_to(rt, sizes.list_live) {
                scale.list_many = time_lists(rt);
            }
        }
    }
    for i in 0..live {
        let _ = rt.time(&["delete", "--force", &format!("{prefix}-{i}")], false);
    }
    reap_orphans();
}

/// `sizes.lifecycles` runs of /bin/true, `sizes.parallel` at a time; lifecycles per second.
pub fn throughput(rt: &Rt, bundle: &Path, sizes: &Sizes) -> f64 {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None::<String>);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..sizes.parallel {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= sizes.lifecycles {
                    return;
                }
                let id = format!("bench-{}-{}-tp-{n}", std::process::id(), rt.name);
                let out = rt
                    .command(&["run", "--bundle", path_str(bundle), id.as_str()])
                    .output();
                match out {
                    Ok(o) if o.status.success() => {}
                    other => {
                        let mut f = failed.lock().unwrap_or_else(|e| e.into_inner());
                        f.get_or_insert_with(|| format!("{} run: {other:?}", rt.name));
                    }
                }
            });
        }
    });
    let took = t0.elapsed();
    reap_orphans();
    if let Some(f) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        println!("note: throughput: {f}");
        return 0.0;
    }
    sizes.lifecycles as f64 / took.as_secs_f64()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("bundle paths are UTF-8")
}
