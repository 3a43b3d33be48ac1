//! Many containers at once from a multi-threaded tokio program: each created, started, its piped
//! stdout read and its exit awaited concurrently (`create` goes through hull's helper process,
//! since this program has many threads; `wait_async` sleeps on the init's pidfd).
//!
//! ```sh
//! cargo run -p hull --features tokio --example many_tokio -- /path/to/rootfs [COUNT [ROUNDS]]
//! ```
//!
//! Every container prints its own id; the program checks each output and exit code, and exits
//! non-zero if any differs. Meanwhile other tasks keep allocating, so the worker threads hold the
//! allocator's locks often: a create that forked from this process itself could inherit one of
//! those held. The state root is `/run/hull` unless `HULL_EXAMPLE_STATE_ROOT` names another; ids
//! are `<prefix>-<round>-<n>`, the prefix `many-<pid>` unless `HULL_EXAMPLE_ID` names it.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hull::oci_spec::runtime::Spec;
use hull::{Container, Stdio};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before the runtime starts any thread: this program's helper starts here too.
    hull::exe::ensure_sealed()?;
    let mut args = std::env::args().skip(1);
    let rootfs = args
        .next()
        .or_else(|| std::env::var("HULL_EXAMPLE_ROOTFS").ok())
        .ok_or("usage: many_tokio ROOTFS [COUNT [ROUNDS]]")?;
    let count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let state_root = std::env::var("HULL_EXAMPLE_STATE_ROOT").unwrap_or("/run/hull".into());
    let prefix = std::env::var("HULL_EXAMPLE_ID").unwrap_or(format!("many-{}", std::process::id()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_io()
        .build()?;
    let failures = runtime.block_on(async {
        let busy = Arc::new(AtomicBool::new(true));
        let churn: Vec<_> = (0..4)
            .map(|_| {
                let busy = busy.clone();
                tokio::task::spawn_blocking(move || {
                    let mut keep = Vec::new();
                    while busy.load(Ordering::Relaxed) {
                        keep.push(vec![0u8; 4096]);
                        if keep.len() > 256 {
                            keep.clear();
                        }
                    }
                })
            })
            .collect();
        let mut failures = Vec::new();
        for round in 0..rounds {
            let tasks: Vec<_> = (0..count)
                .map(|n| {
                    let id = format!("{prefix}-{round}-{n}");
                    let spec = spec(&rootfs, &id);
                    let state_root = state_root.clone();
                    tokio::spawn(async move { run_one(id, spec, state_root).await })
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(e),
                    Err(e) => failures.push(format!("task: {e}")),
                }
            }
            println!("round {round}: {count} containers done");
        }
        busy.store(false, Ordering::Relaxed);
        for c in churn {
            let _ = c.await;
        }
        failures
    });
    for f in &failures {
        eprintln!("FAILED: {f}");
    }
    if !failures.is_empty() {
        return Err(format!("{} of {} containers failed", failures.len(), count * rounds).into());
    }
    println!("all {} containers ok", count * rounds);
    Ok(())
}

fn spec(rootfs: &str, id: &str) -> Spec {
    let mut spec = Spec::default();
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.into());
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(vec!["echo".into(), format!("I am {id}")]));
    spec.set_process(Some(process));
    spec
}

/// One container's whole life; the blocking verbs on tokio's blocking pool.
async fn run_one(id: String, spec: Spec, state_root: String) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{id}: {what}: {e}");
    let (mut container, stdout) = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || -> hull::Result<_> {
            let mut c = Container::builder(&id)
                .spec(spec)
                .root(state_root)
                .stdin(Stdio::Null)
                .stdout(Stdio::Piped)
                .create()?;
            let stdout = c.take_io().stdout;
            c.start()?;
            Ok((c, stdout))
        })
        .await
        .map_err(|e| fail("task", &e))?
        .map_err(|e| fail("create and start", &e))?
    };
    let output = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        if let Some(fd) = stdout {
            let _ = std::fs::File::from(fd).read_to_string(&mut text);
        }
        text
    });
    let code = container.wait_async().await.map_err(|e| fail("wait", &e))?;
    let output = output.await.map_err(|e| fail("read", &e))?;
    tokio::task::spawn_blocking(move || container.delete(false))
        .await
        .map_err(|e| fail("task", &e))?
        .map_err(|e| fail("delete", &e))?;
    if code != 0 || output != format!("I am {id}\n") {
        return Err(format!("{id}: exit code {code}, output {output:?}"));
    }
    Ok(())
}
