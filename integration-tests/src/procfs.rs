//! Reading the /proc texts that containers print about themselves.

/// The soft and hard values of the row `name` ("Max open files") of a /proc/<pid>/limits text.
pub fn limit(limits: &str, name: &str) -> Vec<String> {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {limits}"));
    line[name.len()..]
        .split_whitespace()
        .take(2)
        .map(str::to_string)
        .collect()
}

/// The value of `key:` in a /proc/<pid>/status text (whole or `grep`'d), trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key}: in {status:?}"))
        .trim()
}
