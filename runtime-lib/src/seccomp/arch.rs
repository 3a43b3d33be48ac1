//! The syscall ABIs a filter can meet on this host, and their syscall tables.
//!
//! A process on an x86_64 kernel can only make x86_64, x32 and i386 syscalls; on arm64, arm64 and
//! 32-bit arm ones. A profile may list any of libseccomp's architectures, but only these ever reach
//! the filter, so only these get a section in it: the others are accepted and cost nothing.

use std::collections::HashMap;
use std::sync::OnceLock;

use oci_spec::runtime::Arch;

use super::x32;

/// `AUDIT_ARCH_*` from `<linux/audit.h>`: the ELF machine with the 64-bit and little-endian bits.
const AUDIT_64BIT: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;
pub(super) const AUDIT_ARCH_X86_64: u32 = 62 | AUDIT_64BIT | AUDIT_LE;
pub(super) const AUDIT_ARCH_I386: u32 = 3 | AUDIT_LE;
pub(super) const AUDIT_ARCH_AARCH64: u32 = 183 | AUDIT_64BIT | AUDIT_LE;
pub(super) const AUDIT_ARCH_ARM: u32 = 40 | AUDIT_LE;

/// x32 syscalls run under `AUDIT_ARCH_X86_64` and are told apart by this bit of the number.
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// arm's private syscalls (`__ARM_NR_BASE` + n in the kernel's `asm/unistd.h`), which the generic
/// tables lack; Docker's profile allows three of them.
const ARM_PRIVATE: &[(&str, u32)] = &[
    ("breakpoint", 0x0f_0001),
    ("cacheflush", 0x0f_0002),
    ("usr26", 0x0f_0003),
    ("usr32", 0x0f_0004),
    ("set_tls", 0x0f_0005),
    ("get_tls", 0x0f_0006),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Abi {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
}

impl Abi {
    /// The ABIs of this host, native first; empty where Hull has no tables.
    pub(super) fn host() -> &'static [Abi] {
        if cfg!(target_arch = "x86_64") {
            &[Abi::X86_64, Abi::X32, Abi::X86]
        } else if cfg!(target_arch = "aarch64") {
            &[Abi::Aarch64, Abi::Arm]
        } else {
            &[]
        }
    }

    /// The host ABI an architecture of the profile names, `None` for one this kernel never runs.
    pub(super) fn of(arch: Arch) -> Option<Abi> {
        let abi = match arch {
            Arch::ScmpArchNative => return Abi::host().first().copied(),
            Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX32 => Abi::X32,
            Arch::ScmpArchX86 => Abi::X86,
            Arch::ScmpArchAarch64 => Abi::Aarch64,
            Arch::ScmpArchArm => Abi::Arm,
            _ => return None,
        };
        Abi::host().contains(&abi).then_some(abi)
    }

    /// The value of `seccomp_data.arch` for this ABI's syscalls.
    pub(super) fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// libseccomp compares all 64 bits of an argument on 64-bit ABIs and the low 32 on the others
    /// (x32 included), whatever the value in the profile.
    pub(super) fn wide_args(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::Aarch64)
    }

    /// The syscall number of `name` in this ABI, as `seccomp_data.nr` shows it.
    pub(super) fn resolve(self, name: &str) -> Option<u32> {
        table(self).get(name).copied()
    }
}

type Table = HashMap<&'static str, u32>;

/// The syscall crate's tables are a `match` on the name: a linear scan per look-up. A profile
/// looks up hundreds of names per ABI, so each table is turned into a map once.
fn table(abi: Abi) -> &'static Table {
    static TABLES: [OnceLock<Table>; 5] = [const { OnceLock::new() }; 5];
    TABLES[abi as usize].get_or_init(|| match abi {
        Abi::X86_64 => x86_64(),
        Abi::X32 => {
            let mut t = x86_64();
            t.retain(|name, _| !x32::X86_64_ONLY.contains(name));
            t.extend(x32::X32_OWN.iter().copied());
            t.values_mut().for_each(|nr| *nr |= X32_SYSCALL_BIT);
            t
        }
        Abi::X86 => syscalls::x86::Sysno::iter()
            .map(|s| (s.name(), s.id() as u32))
            .collect(),
        Abi::Aarch64 => aarch64(),
        Abi::Arm => syscalls::arm::Sysno::iter()
            .map(|s| (s.name(), s.id() as u32))
            .chain(ARM_PRIVATE.iter().copied())
            .collect(),
    })
}

#[cfg(target_arch = "x86_64")]
fn x86_64() -> Table {
    syscalls::x86_64::Sysno::iter()
        .map(|s| (s.name(), s.id() as u32))
        .collect()
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_64() -> Table {
    Table::new()
}

#[cfg(target_arch = "aarch64")]
fn aarch64() -> Table {
    syscalls::aarch64::Sysno::iter()
        .map(|s| (s.name(), s.id() as u32))
        .collect()
}

#[cfg(not(target_arch = "aarch64"))]
fn aarch64() -> Table {
    Table::new()
}
