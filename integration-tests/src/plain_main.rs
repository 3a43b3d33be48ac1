//! The small harness of the test files that need their own `main` (`harness = false`: a program
//! that embeds hull must call `hull::exe::ensure_sealed` first in main, and the library's
//! single-threaded path needs a caller without libtest's threads): libtest's flags accepted and
//! ignored, the first free word a name filter, libtest's output lines, so the guest lanes and
//! CI read them the same way.

/// The name filter: the first argument that is neither a flag nor the value of one.
pub fn name_filter() -> Option<String> {
    const TAKES_VALUE: [&str; 6] = [
        "--test-threads",
        "--skip",
        "--logfile",
        "--format",
        "--color",
        "-Z",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with('-') && (*i == 0 || !TAKES_VALUE.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a.clone())
}

/// The cases whose name contains `filter` (all without one).
pub fn select<'a>(
    cases: &'a [(&'static str, fn())],
    filter: Option<&str>,
) -> Vec<&'a (&'static str, fn())> {
    cases
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f)))
        .collect()
}

/// Runs `selected` in order, each caught on its own, after `done` (cases already run, with
/// whether they passed), prints the result line and exits 1 if any failed.
pub fn run(selected: &[&(&'static str, fn())], done: &[(&'static str, bool)]) {
    let mut failed: Vec<&str> = done.iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect();
    for (name, case) in selected.iter().copied() {
        let ok = std::panic::catch_unwind(case).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        println!("\ntest result: ok. {} passed", selected.len() + done.len());
    } else {
        println!("\ntest result: FAILED. {} failed: {failed:?}", failed.len());
        std::process::exit(1);
    }
}
