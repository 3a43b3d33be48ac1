//! [`Error`](crate::Error) as it crosses from the helper process back to the caller (see
//! [`super::helper`]): the error itself, serialised, so the caller matches the same typed error it
//! would get in-process. What serde cannot take as it is goes through these: a step name (a
//! `&'static str`) is interned on the way back, an `errno` crosses as its number, an `io::Error`
//! without one (rare on these paths) as its message.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A step name (`&'static str`) read back: see [`intern`].
pub(crate) fn static_str<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    String::deserialize(d).map(intern)
}

/// `nix::Error` as its errno number.
pub(crate) mod errno {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(e: &nix::Error, s: S) -> Result<S::Ok, S::Error> {
        (*e as i32).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<nix::Error, D::Error> {
        i32::deserialize(d).map(nix::errno::Errno::from_raw)
    }
}

/// `io::Error` as its errno, or its message when it has none.
pub(crate) mod io_error {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Wire {
        errno: Option<i32>,
        message: String,
    }

    pub(crate) fn serialize<S: Serializer>(e: &std::io::Error, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            errno: e.raw_os_error(),
            message: e.to_string(),
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::io::Error, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(match w.errno {
            Some(n) => std::io::Error::from_raw_os_error(n),
            None => std::io::Error::other(w.message),
        })
    }
}

/// The `&'static str` a step name had in the helper: the steps are a small fixed set of literals,
/// so each distinct name is leaked once and shared by every later error that carries it.
fn intern(s: String) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = match NAMES.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let names = guard.get_or_insert_with(HashSet::new);
    if let Some(&known) = names.get(s.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::error::Error;

    #[test]
    fn errors_cross_typed() {
        let e = Error::Sys {
            step: "clone init",
            path: Some("/x".into()),
            source: nix::errno::Errno::EAGAIN,
        };
        let text = serde_json::to_string(&e).unwrap();
        let back: Error = serde_json::from_str(&text).unwrap();
        match back {
            Error::Sys { step, path, source } => {
                assert_eq!(step, "clone init");
                assert_eq!(path, Some(PathBuf::from("/x")));
                assert_eq!(source, nix::errno::Errno::EAGAIN);
            }
            other => panic!("{other:?}"),
        }
        let e = Error::Io {
            step: "read",
            path: "/y".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let back: Error = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert!(
            matches!(&back, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
        );
        let e = Error::Io {
            step: "read",
            path: "/y".into(),
            source: std::io::Error::other("no errno"),
        };
        let back: Error = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back.to_string(), e.to_string());
        assert!(std::ptr::eq(
            intern("a step".into()),
            intern("a step".into())
        ));
    }
}
