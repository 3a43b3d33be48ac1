//! A small classic-BPF assembler with forward labels, and the import of seccompiler's argument
//! checks into it.
//!
//! seccompiler compiles one filter per (match action, mismatch action) pair, for one architecture,
//! with a fixed kill on any other. A profile needs many actions, up to three ABIs and a chosen
//! bad-architecture action in one program, so Hull lays out the program itself and uses seccompiler
//! for what it does well: the 64-bit (or 32-bit) argument comparisons of a syscall's rules. Those
//! come out of seccompiler with two sentinel actions, which [`rules_block`] turns into the rules'
//! real return value (any action, `SECCOMP_RET_USER_NOTIF` included) and a jump past the block.

use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JA: u16 = 0x00;
pub(super) const BPF_JEQ: u16 = 0x10;
pub(super) const BPF_JGT: u16 = 0x20;
pub(super) const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// The kernel's `BPF_MAXINSNS`.
pub(super) const MAX_INSNS: usize = 4096;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Label(usize);

/// Where a conditional jump goes: the next instruction, or a label at most 255 instructions on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Next,
    To(Label),
}

enum Item {
    Insn(sock_filter),
    Cond {
        op: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ja(Label),
    Mark(Label),
}

/// A program under construction. Jumps only go forward (as BPF wants); conditional ones must stay
/// within 255 instructions, which the callers guarantee by construction (long distances use `ja`).
#[derive(Default)]
pub(super) struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub(super) fn mark(&mut self, label: Label) {
        self.items.push(Item::Mark(label));
    }

    pub(super) fn load_arch(&mut self) {
        self.items
            .push(Item::Insn(stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET)));
    }

    pub(super) fn load_nr(&mut self) {
        self.items
            .push(Item::Insn(stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET)));
    }

    pub(super) fn ret(&mut self, k: u32) {
        self.items.push(Item::Insn(stmt(BPF_RET | BPF_K, k)));
    }

    /// `if (A <op> k) goto jt else goto jf`, with `op` one of `BPF_JEQ`, `BPF_JGT`, `BPF_JGE`.
    pub(super) fn jump_if(&mut self, op: u16, k: u32, jt: Target, jf: Target) {
        self.items.push(Item::Cond { op, k, jt, jf });
    }

    /// An unconditional jump, as far as needed.
    pub(super) fn ja(&mut self, label: Label) {
        self.items.push(Item::Ja(label));
    }

    pub(super) fn extend(&mut self, insns: Vec<sock_filter>) {
        self.items.extend(insns.into_iter().map(Item::Insn));
    }

    /// Resolves the labels; `Err` names a jump the layout made too long (a bug of the caller).
    pub(super) fn finish(self) -> Result<BpfProgram, String> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for item in &self.items {
            match item {
                Item::Mark(Label(l)) => at[*l] = pc,
                _ => pc += 1,
            }
        }
        let mut program = Vec::with_capacity(pc);
        for item in self.items {
            let here = program.len();
            let distance = |label: Label| {
                at[label.0]
                    .checked_sub(here + 1)
                    .ok_or_else(|| format!("jump back to label {} at {here}", label.0))
            };
            let short = |target: Target| match target {
                Target::Next => Ok(0),
                Target::To(l) => u8::try_from(distance(l)?)
                    .map_err(|_| format!("conditional jump too long at {here}")),
            };
            match item {
                Item::Mark(_) => {}
                Item::Insn(insn) => program.push(insn),
                Item::Cond { op, k, jt, jf } => program.push(sock_filter {
                    code: BPF_JMP | op | BPF_K,
                    jt: short(jt)?,
                    jf: short(jf)?,
                    k,
                }),
                Item::Ja(l) => {
                    let d = u32::try_from(distance(l)?).map_err(|e| e.to_string())?;
                    program.push(stmt(BPF_JMP | BPF_JA, d));
                }
            }
        }
        Ok(program)
    }
}

/// seccompiler's placeholders for "a rule matched" and "no rule matched": TRACE with data values
/// no profile action is handed to seccompiler with (only these two ever are).
const HIT: SeccompAction = SeccompAction::Trace(0xfff1);
const MISS: SeccompAction = SeccompAction::Trace(0xfff2);

/// The argument checks of `rules` (ORed; each one's conditions ANDed) for syscall `nr`, as a block
/// that returns `ret` when a rule matches and otherwise continues after its last instruction. The
/// block expects the syscall number to be `nr` already (the caller checked it) and leaves the
/// accumulator holding an argument.
pub(super) fn rules_block(
    nr: u32,
    rules: Vec<SeccompRule>,
    ret: u32,
) -> Result<Vec<sock_filter>, String> {
    let map = BTreeMap::from([(i64::from(nr), rules)]);
    // The target arch only feeds the arch check, which is cut off below.
    let filter =
        SeccompFilter::new(map, MISS, HIT, TargetArch::x86_64).map_err(|e| e.to_string())?;
    let program = BpfProgram::try_from(filter).map_err(|e| e.to_string())?;
    // seccompiler 0.5's layout: arch load, arch check, kill, nr load, nr check, then the rules.
    let head = [
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
    ];
    let nr_check = sock_filter {
        code: BPF_JMP | BPF_JEQ | BPF_K,
        jt: 0,
        jf: 1,
        k: nr,
    };
    if program.len() < 6
        || program[0] != head[0]
        || program[1].code != BPF_JMP | BPF_JEQ | BPF_K
        || program[2] != head[1]
        || program[3] != head[2]
        || program[4] != nr_check
    {
        return Err("seccompiler's program has an unexpected layout".into());
    }
    let mut block = program[5..].to_vec();
    let len = block.len();
    let (hit, miss) = (u32::from(HIT), u32::from(MISS));
    for (i, insn) in block.iter_mut().enumerate() {
        if insn.code != BPF_RET | BPF_K {
            continue;
        }
        *insn = match insn.k {
            k if k == hit => stmt(BPF_RET | BPF_K, ret),
            // To the instruction after the block.
            k if k == miss => stmt(BPF_JMP | BPF_JA, (len - i - 1) as u32),
            k => return Err(format!("seccompiler returned an unexpected action {k:#x}")),
        };
    }
    Ok(block)
}
