//! TAP output: one line per assertion, each naming its spec file and clause, then per-file counts
//! and the closing `N passed, N failed, N skipped` line.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;

/// Writes one line; a reader that went away must not stop the run before it cleans up.
fn out(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[derive(Default, Clone, Copy)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Failures the caller declared as deliberate (`--deviation`): reported, not counted as failed.
    pub deviating: usize,
}

#[derive(Default)]
pub struct Tap {
    n: usize,
    total: Counts,
    per_file: BTreeMap<String, Counts>,
    verbose: bool,
    /// (case, text in the clause, reason) declared by `--deviation`.
    deviations: Vec<(String, String, String)>,
}

fn one_line(text: impl Display) -> String {
    let text = text.to_string();
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 600 {
        let cut = (0..=600)
            .rev()
            .find(|i| out.is_char_boundary(*i))
            .unwrap_or(0);
        out.truncate(cut);
        out.push('…');
    }
    out
}

impl Tap {
    pub fn new(verbose: bool) -> Tap {
        out("TAP version 13");
        Tap {
            verbose,
            ..Tap::default()
        }
    }

    fn counts(&mut self, file: &str) -> &mut Counts {
        self.per_file.entry(file.to_owned()).or_default()
    }

    /// One assertion. `detail` is what was observed; it is printed on failure (and with --verbose).
    pub fn check(&mut self, file: &str, clause: &str, case: &str, ok: bool, detail: impl Display) {
        self.n += 1;
        let deviation = (!ok)
            .then(|| {
                self.deviations
                    .iter()
                    .find(|(c, text, _)| c == case && clause.contains(text.as_str()))
                    .map(|(_, _, reason)| reason.clone())
            })
            .flatten();
        if let Some(reason) = deviation {
            self.counts(file).deviating += 1;
            self.total.deviating += 1;
            out(&format!(
                "not ok {} - {file}: {clause} — got {} [{case}] # TODO deliberate deviation: {reason}",
                self.n,
                one_line(detail)
            ));
            return;
        }
        let c = self.counts(file);
        if ok {
            c.passed += 1;
            self.total.passed += 1;
        } else {
            c.failed += 1;
            self.total.failed += 1;
        }
        let verdict = if ok { "ok" } else { "not ok" };
        let detail = one_line(detail);
        if ok && (!self.verbose || detail.is_empty()) {
            out(&format!("{verdict} {} - {file}: {clause} [{case}]", self.n));
        } else {
            out(&format!(
                "{verdict} {} - {file}: {clause} — got {detail} [{case}]",
                self.n
            ));
        }
    }

    pub fn skip(&mut self, file: &str, clause: &str, case: &str, reason: &str) {
        self.n += 1;
        self.counts(file).skipped += 1;
        self.total.skipped += 1;
        out(&format!(
            "ok {} - {file}: {clause} [{case}] # SKIP {reason}",
            self.n
        ));
    }

    pub fn comment(&self, text: impl Display) {
        for line in text.to_string().lines() {
            out(&format!("# {line}"));
        }
    }

    /// Prints the plan, the per-file table and the closing line; returns the totals.
    pub fn finish(&self) -> Counts {
        out(&format!("1..{}", self.n));
        for (file, c) in &self.per_file {
            out(&format!(
                "# {file}: {} passed, {} failed, {} skipped{}",
                c.passed,
                c.failed,
                c.skipped,
                deviating(c.deviating)
            ));
        }
        let t = self.total;
        out(&format!(
            "{} passed, {} failed, {} skipped{}",
            t.passed,
            t.failed,
            t.skipped,
            deviating(t.deviating)
        ));
        t
    }

    /// Declares a deliberate deviation: failures of `case` whose clause contains `text`.
    pub fn deviate(&mut self, case: &str, text: &str, reason: &str) {
        self.deviations
            .push((case.to_owned(), text.to_owned(), reason.to_owned()));
    }
}

fn deviating(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} deliberate deviations")
    }
}
