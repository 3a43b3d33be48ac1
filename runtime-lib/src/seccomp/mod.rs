//! `linux.seccomp`: compiled to one BPF program in pure Rust (no libseccomp, so the binary stays one
//! static file), with runc's semantics.
//!
//! - [`compile`] runs in the runtime before the init exists, so a bad profile fails `create` with
//!   nothing made.
//! - [`install`] runs in the init (and in an `exec`'d process): without `noNewPrivileges` it must
//!   run while the process still has CAP_SYS_ADMIN (before the capabilities are dropped); with it,
//!   as late as possible, but before the process tells the runtime it is ready, since a listener
//!   must reach the agent during `create`.
//! - [`send_listener`] runs in the runtime, with the listener the init sent back, when
//!   [`Filter::needs_listener`].
//!
//! What the program does, and how the profile's rules combine, is told in `compile`.

mod arch;
mod bpf;
mod compile;
mod notify;
mod x32;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_docker;
#[cfg(test)]
mod tests_notify;

use std::os::fd::{FromRawFd, OwnedFd};

use oci_spec::runtime::LinuxSeccomp;
use seccompiler::{sock_filter, BpfProgram};

use crate::error::{InitFailure, InitResult, InitStep};
use crate::Result;

pub use notify::{send_listener, send_process_listener};

/// A compiled profile: the BPF program and the flags of the `seccomp(2)` call that loads it.
#[derive(Debug, Clone)]
pub struct Filter {
    program: BpfProgram,
    flags: libc::c_ulong,
    listener: bool,
}

impl Filter {
    /// Whether the profile uses SCMP_ACT_NOTIFY: [`install`] then returns the listener, which the
    /// runtime must hand to the agent at `listenerPath` ([`send_listener`]).
    pub fn needs_listener(&self) -> bool {
        self.listener
    }

    /// The filter as bytes for a file only the runtime writes (`<state>/seccomp.bpf`): a version
    /// tag, the flags, whether it has a listener, then each instruction (code, jt, jf, k) in
    /// little-endian order.
    // c_ulong is u64 on the hosts hull supports, but not on every target.
    #[allow(clippy::useless_conversion)]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEPT_HEADER + 8 * self.program.len());
        out.extend_from_slice(KEPT_TAG);
        out.extend_from_slice(&u64::from(self.flags).to_le_bytes());
        out.push(u8::from(self.listener));
        for insn in &self.program {
            out.extend_from_slice(&insn.code.to_le_bytes());
            out.extend_from_slice(&[insn.jt, insn.jf]);
            out.extend_from_slice(&insn.k.to_le_bytes());
        }
        out
    }

    /// [`Filter::to_bytes`] read back; `None` for anything else (another version's tag, a short
    /// or overlong program), which the caller compiles again instead. The kernel checks the
    /// program itself when it is loaded.
    #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
    pub fn from_bytes(data: &[u8]) -> Option<Filter> {
        let rest = data.strip_prefix(KEPT_TAG)?;
        let (flags, rest) = rest.split_first_chunk::<8>()?;
        let (&listener, insns) = rest.split_first()?;
        let n = insns.len() / 8;
        if listener > 1 || insns.len() % 8 != 0 || n == 0 || n > bpf::MAX_INSNS {
            return None;
        }
        let program = insns
            .chunks_exact(8)
            .map(|c| sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Filter {
            program,
            flags: libc::c_ulong::try_from(u64::from_le_bytes(*flags)).ok()?,
            listener: listener == 1,
        })
    }

    /// The program's length in BPF instructions (the kernel takes 4096 at most).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits [`install`] passes.
    #[cfg(test)]
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }
}

/// The tag of [`Filter::to_bytes`]' format: a hull that writes another format tags it otherwise.
const KEPT_TAG: &[u8; 8] = b"hullbpf1";
const KEPT_HEADER: usize = 8 + 8 + 1;

/// Compiles `linux.seccomp`. Errors are `InvalidConfig` naming the field (e.g.
/// `linux.seccomp.syscalls[3].errnoRet`), or `Unsupported` on a host architecture Hull has no
/// syscall tables for. Unknown action, architecture and operator names never get here: they fail
/// when config.json is parsed.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter> {
    compile::compile(seccomp)
}

/// Loads the filter into the calling thread (and, with SECCOMP_FILTER_FLAG_TSYNC, its siblings).
/// Returns the notify listener when the filter has one (see [`Filter::needs_listener`]); it is
/// close-on-exec.
///
/// Needs `no_new_privs` set or CAP_SYS_ADMIN. Allocates nothing, so it is safe after a fork.
pub fn install(filter: &Filter) -> InitResult<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: filter.program.len() as u16,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's (and libc's) layout.
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter.program`, alive and unchanged for the call; the kernel
    // copies the program and only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            filter.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    let ret = nix::errno::Errno::result(ret).map_err(|e| {
        let failure = InitFailure::new(InitStep::Seccomp).errno(e);
        match e {
            nix::errno::Errno::EACCES => {
                failure.detail("no_new_privs is not set and CAP_SYS_ADMIN is missing")
            }
            _ => failure,
        }
    })?;
    if !filter.listener {
        return Ok(None);
    }
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the kernel returns a new fd that nothing
    // else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as i32) }))
}

/// What `features` lists: (actions, operators, architectures, flags) Hull accepts.
///
/// Every architecture name is accepted; the filter checks those this host's kernel can run
/// (x86_64, x86 and x32 on x86_64; arm64 and arm on arm64) and refuses all others with the
/// bad-architecture action, as a libseccomp filter does.
pub fn supported() -> (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
) {
    (
        &[
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_LOG",
            "SCMP_ACT_NOTIFY",
            "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP",
        ],
        &[
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_LE",
            "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_NE",
        ],
        &[
            "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_ARM",
            "SCMP_ARCH_LOONGARCH64",
            "SCMP_ARCH_M68K",
            "SCMP_ARCH_MIPS",
            "SCMP_ARCH_MIPS64",
            "SCMP_ARCH_MIPS64N32",
            "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64",
            "SCMP_ARCH_MIPSEL64N32",
            "SCMP_ARCH_PARISC",
            "SCMP_ARCH_PARISC64",
            "SCMP_ARCH_PPC",
            "SCMP_ARCH_PPC64",
            "SCMP_ARCH_PPC64LE",
            "SCMP_ARCH_RISCV64",
            "SCMP_ARCH_S390",
            "SCMP_ARCH_S390X",
            "SCMP_ARCH_SH",
            "SCMP_ARCH_SHEB",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X86_64",
        ],
        &[
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        ],
    )
}
