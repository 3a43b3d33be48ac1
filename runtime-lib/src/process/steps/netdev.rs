//! linux.netDevices in the init: the devices the runtime moved into the container's network
//! namespace go up.

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use oci_spec::runtime::LinuxNetDevice;

use crate::error::{InitFailure, InitResult, InitStep};
use crate::plan::netdev::ifreq;

/// In the init, inside the container's network namespace: the moved devices go up.
pub fn set_up(devices: &HashMap<String, LinuxNetDevice>) -> InitResult<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| InitFailure::sys(InitStep::NetDevices, "socket", e))?;
    for (host, dev) in devices {
        let name = dev.name().clone().unwrap_or_else(|| host.clone());
        let fail = |e| InitFailure::sys(InitStep::NetDevices, &name, e);
        let mut req = ifreq(&name).ok_or_else(|| {
            InitFailure::new(InitStep::NetDevices)
                .subject(&name)
                .detail("name too long")
        })?;
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write one `ifreq`, which `req` is.
        nix::errno::Errno::result(unsafe {
            libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req)
        })
        .map_err(fail)?;
        // SAFETY: the flags member of the union is the one SIOCGIFFLAGS filled in.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: as above.
        nix::errno::Errno::result(unsafe {
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req)
        })
        .map_err(fail)?;
    }
    Ok(())
}
