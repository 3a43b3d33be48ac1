//! [`Error`] as it crosses from the helper process back to the caller (see [`super::helper`]):
//! variant for variant, so the caller matches the same typed error it would get in-process. An
//! `errno` crosses as its number; an `io::Error` without one (rare on these paths) as its kind's
//! nearest errno-less form, its message kept.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, InitFailure};
use crate::hooks::HookFailure;
use crate::Status;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    Io {
        step: String,
        path: PathBuf,
        errno: Option<i32>,
        message: String,
    },
    Sys {
        step: String,
        path: Option<PathBuf>,
        errno: i32,
    },
    ConfigSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        msg: String,
    },
    InvalidConfig {
        field: String,
        problem: String,
    },
    InvalidId {
        id: String,
        problem: String,
    },
    ContainerExists {
        id: String,
    },
    ContainerNotFound {
        id: String,
    },
    InvalidStatus {
        id: String,
        op: String,
        status: Status,
    },
    InvalidSignal {
        signal: String,
    },
    Unsupported {
        feature: String,
    },
    Init(InitFailure),
    Hook(HookFailure),
    ExeNotSealed {
        detail: String,
    },
    Systemd {
        step: String,
        unit: String,
        detail: String,
    },
    InitLost {
        step: String,
        detail: String,
    },
    Image {
        path: PathBuf,
        problem: String,
    },
    LayerEntry {
        layer: String,
        entry: PathBuf,
        problem: String,
    },
}

impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { step, path, source } => WireError::Io {
                step: step.into(),
                path,
                errno: source.raw_os_error(),
                message: source.to_string(),
            },
            Error::Sys { step, path, source } => WireError::Sys {
                step: step.into(),
                path,
                errno: source as i32,
            },
            Error::ConfigSyntax {
                path,
                line,
                column,
                field,
                msg,
            } => WireError::ConfigSyntax {
                path,
                line,
                column,
                field,
                msg,
            },
            Error::InvalidConfig { field, problem } => WireError::InvalidConfig { field, problem },
            Error::InvalidId { id, problem } => WireError::InvalidId {
                id,
                problem: problem.into(),
            },
            Error::ContainerExists { id } => WireError::ContainerExists { id },
            Error::ContainerNotFound { id } => WireError::ContainerNotFound { id },
            Error::InvalidStatus { id, op, status } => WireError::InvalidStatus {
                id,
                op: op.into(),
                status,
            },
            Error::InvalidSignal { signal } => WireError::InvalidSignal { signal },
            Error::Unsupported { feature } => WireError::Unsupported { feature },
            Error::Init(f) => WireError::Init(f),
            Error::Hook(h) => WireError::Hook(h),
            Error::ExeNotSealed { detail } => WireError::ExeNotSealed { detail },
            Error::Systemd { step, unit, detail } => WireError::Systemd {
                step: step.into(),
                unit,
                detail,
            },
            Error::InitLost { step, detail } => WireError::InitLost {
                step: step.into(),
                detail,
            },
            Error::Image { path, problem } => WireError::Image { path, problem },
            Error::LayerEntry {
                layer,
                entry,
                problem,
            } => WireError::LayerEntry {
                layer,
                entry,
                problem,
            },
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Io {
                step,
                path,
                errno,
                message,
            } => Error::Io {
                step: intern(step),
                path,
                source: match errno {
                    Some(n) => std::io::Error::from_raw_os_error(n),
                    None => std::io::Error::other(message),
                },
            },
            WireError::Sys { step, path, errno } => Error::Sys {
                step: intern(step),
                path,
                source: nix::errno::Errno::from_raw(errno),
            },
            WireError::ConfigSyntax {
                path,
                line,
                column,
                field,
                msg,
            } => Error::ConfigSyntax {
                path,
                line,
                column,
                field,
                msg,
            },
            WireError::InvalidConfig { field, problem } => Error::InvalidConfig { field, problem },
            WireError::InvalidId { id, problem } => Error::InvalidId {
                id,
                problem: intern(problem),
            },
            WireError::ContainerExists { id } => Error::ContainerExists { id },
            WireError::ContainerNotFound { id } => Error::ContainerNotFound { id },
            WireError::InvalidStatus { id, op, status } => Error::InvalidStatus {
                id,
                op: intern(op),
                status,
            },
            WireError::InvalidSignal { signal } => Error::InvalidSignal { signal },
            WireError::Unsupported { feature } => Error::Unsupported { feature },
            WireError::Init(f) => Error::Init(f),
            WireError::Hook(h) => Error::Hook(h),
            WireError::ExeNotSealed { detail } => Error::ExeNotSealed { detail },
            WireError::Systemd { step, unit, detail } => Error::Systemd {
                step: intern(step),
                unit,
                detail,
            },
            WireError::InitLost { step, detail } => Error::InitLost {
                step: intern(step),
                detail,
            },
            WireError::Image { path, problem } => Error::Image { path, problem },
            WireError::LayerEntry {
                layer,
                entry,
                problem,
            } => Error::LayerEntry {
                layer,
                entry,
                problem,
            },
        }
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
    use super::*;

    #[test]
    fn errors_cross_typed() {
        let e = Error::Sys {
            step: "clone init",
            path: Some("/x".into()),
            source: nix::errno::Errno::EAGAIN,
        };
        let text = serde_json::to_string(&WireError::from(e)).unwrap();
        let back: Error = serde_json::from_str::<WireError>(&text).unwrap().into();
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
        let back: Error = WireError::from(e).into();
        assert!(
            matches!(&back, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
        );
        assert!(std::ptr::eq(
            intern("a step".into()),
            intern("a step".into())
        ));
    }
}
