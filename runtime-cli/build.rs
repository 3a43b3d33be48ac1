//! Lays out the functions `hull` runs on its everyday path (hot-symbols.txt) together at the
//! start of its code.
//!
//! Why: the kernel maps a file's pages into a process 64 KiB around each page that faults
//! ("fault-around"), and a process's resident set counts them all. Laid out as the compiler
//! left them, the 900 KB or so of code a `run` executes is spread over nearly every 64 KiB of
//! the 2.7 MB of code, so each command mapped all of it (peak RSS of `run`: 3.4 MiB, of which
//! 2.1 MiB code). Packed together it is a third of that. hot-symbols.sh regenerates the list
//! from samples of the real commands; a symbol the list names that the binary no longer has
//! is skipped, so an old list only packs less.
//!
//! Only with LLD (`--symbol-ordering-file`), which Rust uses by default on x86_64 Linux since
//! 1.90; `HULL_NO_SYMBOL_ORDER=1` leaves it out, for a build with another linker.

use std::path::Path;

fn main() {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("hot-symbols.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-env-changed=HULL_NO_SYMBOL_ORDER");
    let wanted = std::env::var_os("HULL_NO_SYMBOL_ORDER").is_none_or(|v| v != "1");
    let lld_default = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if wanted && lld_default && list.exists() {
        println!(
            "cargo:rustc-link-arg-bin=hull=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bin=hull=-Wl,--no-warn-symbol-ordering");
    }
}
