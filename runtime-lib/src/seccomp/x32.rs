//! The x32 ABI's own numbers, generated from linux-libc-dev's `asm/unistd_x32.h` and
//! `asm/unistd_64.h` (a name missing from the first is x86_64-only); `uprobe` and `uretprobe`
//! (x86_64-only, newer than those headers) were added from the kernel's `syscall_64.tbl`.
//! Every other x32 syscall has the x86_64 number, with `__X32_SYSCALL_BIT` set.

/// x32 syscalls numbered apart from x86_64 (without `__X32_SYSCALL_BIT`).
pub(super) const X32_OWN: &[(&str, u32)] = &[
    ("rt_sigaction", 512),
    ("rt_sigreturn", 513),
    ("ioctl", 514),
    ("readv", 515),
    ("writev", 516),
    ("recvfrom", 517),
    ("sendmsg", 518),
    ("recvmsg", 519),
    ("execve", 520),
    ("ptrace", 521),
    ("rt_sigpending", 522),
    ("rt_sigtimedwait", 523),
    ("rt_sigqueueinfo", 524),
    ("sigaltstack", 525),
    ("timer_create", 526),
    ("mq_notify", 527),
    ("kexec_load", 528),
    ("waitid", 529),
    ("set_robust_list", 530),
    ("get_robust_list", 531),
    ("vmsplice", 532),
    ("move_pages", 533),
    ("preadv", 534),
    ("pwritev", 535),
    ("rt_tgsigqueueinfo", 536),
    ("recvmmsg", 537),
    ("sendmmsg", 538),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("setsockopt", 541),
    ("getsockopt", 542),
    ("io_setup", 543),
    ("io_submit", 544),
    ("execveat", 545),
    ("preadv2", 546),
    ("pwritev2", 547),
];

/// x86_64 syscalls that x32 does not have.
pub(super) const X86_64_ONLY: &[&str] = &[
    "_sysctl",
    "create_module",
    "epoll_ctl_old",
    "epoll_wait_old",
    "get_kernel_syms",
    "get_thread_area",
    "nfsservctl",
    "query_module",
    "set_thread_area",
    "uprobe",
    "uretprobe",
    "uselib",
    "vserver",
];
