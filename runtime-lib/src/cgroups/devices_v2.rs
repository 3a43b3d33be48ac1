//! linux.resources.devices on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE,
//! generated here as raw instructions, loaded with bpf(2) and attached to the container's cgroup.
//!
//! The rules are first reduced the way the v1 devices controller would hold them (as runc's
//! emulator does): a default (allow or deny everything) and a set of exceptions to it, each a
//! device pattern with its access bits. A wildcard `a` rule resets both. The program then only
//! has to look for an exception that matches the request, so the rule order no longer matters
//! and v1 and v2 hosts enforce the same policy.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::devices;
use crate::error::{Error, Result};

// include/uapi/linux/bpf.h
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: u8 = 1;
const ACC_READ: u8 = 2;
const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// The license the kernel records; the program calls no GPL-only helper.
const LICENSE: &[u8] = b"Apache\0";

/// One `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one (little-endian bitfield order).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Registers: R0 return value, R1 the context, R2..R5 what the prologue loads from it.
const R0: u8 = 0;
const R1: u8 = 1;
const R2_TYPE: u8 = 2;
const R3_ACCESS: u8 = 3;
const R4_MAJOR: u8 = 4;
const R5_MINOR: u8 = 5;

// Opcode parts.
const BPF_LDX_MEM_W: u8 = 0x61;
const BPF_ALU_K: u8 = 0x04;
const BPF_JMP_K: u8 = 0x05;
const BPF_JMP32_K: u8 = 0x06;
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
const JA: u8 = 0x00;
const JNE: u8 = 0x50;
const JSET: u8 = 0x40;
const EXIT: u8 = 0x90;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// dst = *(u32 *)(src + off)
fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX_MEM_W, dst, src, off, 0)
}

/// 32-bit `dst op= imm` (the upper half of dst is zeroed, as for every ALU32 op).
fn alu32(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU_K | op, dst, 0, 0, imm)
}

fn mov_imm(dst: u8, imm: i32) -> Insn {
    alu32(MOV, dst, imm)
}

/// Jump by `off` when the low 32 bits of dst compare `op` to imm: 32-bit compares, so a major
/// or minor above i32::MAX is not sign-extended into a mismatch.
fn jmp32_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    insn(BPF_JMP32_K | op, dst, 0, off, imm)
}

fn ja(off: i16) -> Insn {
    insn(BPF_JMP_K | JA, 0, 0, off, 0)
}

fn exit() -> Insn {
    insn(BPF_JMP_K | EXIT, 0, 0, 0, 0)
}

fn ret(allow: bool) -> [Insn; 2] {
    [mov_imm(R0, i32::from(allow)), exit()]
}

/// A device pattern: type (block or char), major and minor (None = any).
type Meta = (i32, Option<u32>, Option<u32>);

/// The rules as the v1 devices controller holds them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Policy {
    default_allow: bool,
    /// Exceptions to the default, with their access bits.
    exceptions: BTreeMap<Meta, u8>,
}

impl Policy {
    /// Applies the rules in order, starting from deny-all (runc's empty whitelist).
    fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<Policy> {
        let mut p = Policy::default();
        for (i, r) in rules.iter().enumerate() {
            // Same checks and messages as the v1 manager (type, access).
            devices::v1_line(i, r)?;
            let access = r.access().as_deref().unwrap_or("").chars().fold(0, |a, c| {
                a | match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    _ => ACC_MKNOD,
                }
            });
            let typ = match r.typ().unwrap_or_default() {
                LinuxDeviceType::B => DEV_BLOCK,
                LinuxDeviceType::C => DEV_CHAR,
                // `a` (v1_line refused every other type).
                _ => {
                    p = Policy {
                        default_allow: r.allow(),
                        exceptions: BTreeMap::new(),
                    };
                    continue;
                }
            };
            let num = |what: &str, n: Option<i64>| match n {
                Some(n) if n >= 0 => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| Error::InvalidConfig {
                        field: format!("linux.resources.devices[{i}].{what}"),
                        problem: format!("invalid {what} {n}"),
                    }),
                _ => Ok(None),
            };
            let meta = (typ, num("major", r.major())?, num("minor", r.minor())?);
            if r.allow() == p.default_allow {
                p.remove(i, meta, access)?;
            } else {
                *p.exceptions.entry(meta).or_default() |= access;
            }
        }
        Ok(p)
    }

    /// A rule equal to the default takes its access out of the exception for the same pattern.
    /// Like runc, refuses one that would punch a hole in a wildcard exception, which v1 cannot
    /// express.
    fn remove(&mut self, i: usize, meta: Meta, access: u8) -> Result<()> {
        let (t, maj, min) = meta;
        for wider in [(t, None, min), (t, maj, None), (t, None, None)] {
            if wider == meta {
                continue;
            }
            if self.exceptions.get(&wider).is_some_and(|a| a & access != 0) {
                return Err(Error::InvalidConfig {
                    field: format!("linux.resources.devices[{i}]"),
                    problem: "not supported by devices cgroupv1 (cannot punch hole in existing wildcard rule)".into(),
                });
            }
        }
        if let Some(a) = self.exceptions.get_mut(&meta) {
            *a &= !access;
            if *a == 0 {
                self.exceptions.remove(&meta);
            }
        }
        Ok(())
    }

    fn program(&self) -> Vec<Insn> {
        // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
        let mut p = vec![
            ldx_w(R2_TYPE, R1, 0),
            alu32(AND, R2_TYPE, 0xffff),
            ldx_w(R3_ACCESS, R1, 0),
            alu32(RSH, R3_ACCESS, 16),
            ldx_w(R4_MAJOR, R1, 4),
            ldx_w(R5_MINOR, R1, 8),
        ];
        for (&(typ, major, minor), &access) in &self.exceptions {
            p.extend(block(!self.default_allow, typ, major, minor, access));
        }
        p.extend(ret(self.default_allow));
        p
    }
}

/// The instructions that return `allow` when the request matches the exception, and fall
/// through to the next block otherwise. An allow exception covers a request only when it
/// grants every requested bit; a deny exception hits as soon as it shares one (the v1
/// controller's tests for a whitelist and a blacklist).
fn block(allow: bool, typ: i32, major: Option<u32>, minor: Option<u32>, access: u8) -> Vec<Insn> {
    // Offsets are patched once the block length is known: `NEXT` marks "to the next block".
    const NEXT: i16 = i16::MIN;
    let mut b = vec![jmp32_imm(JNE, R2_TYPE, typ, NEXT)];
    if access != ACC_ALL {
        if allow {
            b.push(jmp32_imm(
                JSET,
                R3_ACCESS,
                i32::from(ACC_ALL & !access),
                NEXT,
            ));
        } else {
            b.push(jmp32_imm(JSET, R3_ACCESS, i32::from(access), 1));
            b.push(ja(NEXT));
        }
    }
    if let Some(m) = major {
        b.push(jmp32_imm(JNE, R4_MAJOR, m as i32, NEXT));
    }
    if let Some(m) = minor {
        b.push(jmp32_imm(JNE, R5_MINOR, m as i32, NEXT));
    }
    b.extend(ret(allow));
    let len = b.len();
    for (i, ins) in b.iter_mut().enumerate() {
        if ins.off == NEXT {
            ins.off = (len - i - 1) as i16;
        }
    }
    b
}

/// The device program for `rules` (v1 semantics, starting from deny-all).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    Ok(Policy::from_rules(rules)?.program())
}

/// Builds the program for `rules`, attaches it to the cgroup `dir` and detaches the device
/// programs attached there before (runc's replacement), so calling it again replaces the
/// policy. The kernel keeps the program as long as it is attached: our fds are closed.
///
/// As runc, a failure to load or attach is ignored when every rule allows everything it names,
/// or when running in a user namespace, where bpf(2) is out of reach.
pub fn set(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = program(rules)?;
    let r = load(&insns, dir).and_then(|prog| attach(dir, prog.as_fd()));
    match r {
        Err(e) if can_skip(rules) => {
            log::warn!("ignoring the cgroup device program: {e}");
            Ok(())
        }
        r => r,
    }
}

fn can_skip(rules: &[LinuxDeviceCgroup]) -> bool {
    let in_userns = std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]);
    in_userns
        || rules.iter().all(|r| {
            let a = r.access().as_deref().unwrap_or("");
            r.allow() && ['r', 'w', 'm'].iter().all(|c| a.contains(*c))
        })
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::result::Result<libc::c_long, Errno> {
    // SAFETY: attr is a live #[repr(C)] bpf_attr prefix for `cmd`, of the size passed; pointers
    // inside it point to buffers that outlive the call. The kernel reads only that many bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    Errno::result(r)
}

fn fd_from(r: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned a fresh file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// BPF_PROG_LOAD. On a refusal, loads again with the verifier log on, so the error says why.
fn load(insns: &[Insn], dir: &Path) -> Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..8].copy_from_slice(b"hull_dev");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    let errno = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(fd_from(fd)),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 16];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let _ = bpf(BPF_PROG_LOAD, &mut attr);
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end]);
    let msg = match log.trim() {
        "" => errno.desc().to_string(),
        l => format!("{}: verifier log: {}", errno.desc(), l.replace('\n', "; ")),
    };
    Err(Error::Io {
        step: "load the cgroup device program (BPF_PROG_LOAD) for",
        path: dir.to_path_buf(),
        source: std::io::Error::new(std::io::Error::from(errno).kind(), msg),
    })
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn sys_err<'a>(step: &'static str, dir: &'a Path) -> impl FnOnce(Errno) -> Error + 'a {
    move |source| Error::Sys {
        step,
        path: Some(dir.to_path_buf()),
        source,
    }
}

/// The ids of the device programs attached to the cgroup.
fn attached(cgroup: BorrowedFd, dir: &Path) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(sys_err("query cgroup device programs", dir))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// How many device programs the cgroup `dir` has (tests of the v2 manager).
#[cfg(test)]
pub(super) fn attached_count(dir: &Path) -> Result<usize> {
    let fd = std::fs::File::open(dir).map_err(|source| Error::Io {
        step: "open cgroup",
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(attached(fd.as_fd(), dir)?.len())
}

/// Attaches `prog`, then detaches what was there before: in this order, the cgroup is never
/// without a policy.
fn attach(dir: &Path, prog: BorrowedFd) -> Result<()> {
    let cgroup: OwnedFd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys_err("open cgroup", dir))?;
    let old = attached(cgroup.as_fd(), dir)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(sys_err(
        "attach the cgroup device program (BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) to",
        dir,
    ))?;
    for id in old {
        let mut by_id = GetFdByIdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id) {
            Ok(fd) => fd_from(fd),
            // Detached meanwhile.
            Err(Errno::ENOENT) => continue,
            Err(e) => {
                return Err(sys_err("open the previous cgroup device program of", dir)(
                    e,
                ))
            }
        };
        let mut attr = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_DETACH, &mut attr) {
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys_err("detach the previous cgroup device program of", dir)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "devices_v2_tests.rs"]
mod tests;
