//! The qemu guest lanes: a pure cgroup-v2 host ([`cgroup_v2`]) and systemd as PID 1 on its
//! unified and legacy hierarchies ([`systemd`]). One test binary, so that libtest runs the two
//! lanes side by side: each guest keeps about 1.2 of this machine's two cores busy under TCG, so
//! together they take little more than the longer one alone instead of the sum of both.

mod cgroup_v2;
mod systemd;
