//! linux.netDevices on the host: host network interfaces checked, then moved into the container's
//! new network namespace and renamed (the init sets them up: `crate::process::steps::netdev`).
//!
//! The move is one rtnetlink RTM_NEWLINK request (IFLA_NET_NS_FD + IFLA_IFNAME, as `ip link set dev
//! X netns N name Y` sends it), built here by hand: a fixed 40-odd byte message is easier to audit
//! than a netlink crate's builder. The kernel drops an interface's addresses when it changes
//! namespace and the spec asks for permanent global ones to be kept: Hull does not restore them
//! yet, so an interface that has any is refused instead of silently losing them.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use oci_spec::runtime::LinuxNetDevice;

use crate::error::Error;
use crate::Result;

const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;

/// (host name, name in the container) for each entry.
pub fn plan(devices: &HashMap<String, LinuxNetDevice>) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (host, dev) in devices {
        let field = format!("linux.netDevices.{host}");
        let name = dev.name().clone().unwrap_or_else(|| host.clone());
        if name.contains("%d") {
            return Err(Error::Unsupported {
                feature: format!("{field}: a %d name template"),
            });
        }
        if index_of(host).is_none() {
            return Err(Error::InvalidConfig {
                field,
                problem: format!("no network interface {host:?} on the host"),
            });
        }
        if has_permanent_addresses(host) {
            return Err(Error::Unsupported {
                feature: format!("{field}: keeping the interface's IP addresses across the move"),
            });
        }
        out.push((host.clone(), name));
    }
    Ok(out)
}

/// In the runtime, once the init's network namespace exists: moves and renames each device.
pub fn move_into(devices: &[(String, String)], netns: BorrowedFd<'_>) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let sys = |step: &'static str| {
        move |source| Error::Sys {
            step,
            path: None,
            source,
        }
    };
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(sys("open rtnetlink socket"))?;
    for (seq, (host, name)) in devices.iter().enumerate() {
        let index = index_of(host).ok_or_else(|| Error::InvalidConfig {
            field: format!("linux.netDevices.{host}"),
            problem: format!("no network interface {host:?} on the host"),
        })?;
        let msg = newlink_message(seq as u32 + 1, index, netns.as_raw_fd() as u32, name);
        sendto(
            sock.as_raw_fd(),
            &msg,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(sys("send RTM_NEWLINK"))?;
        let mut reply = [0u8; 1024];
        let n = recv(sock.as_fd().as_raw_fd(), &mut reply, MsgFlags::empty())
            .map_err(sys("receive RTM_NEWLINK answer"))?;
        if let Some(errno) = ack_error(&reply[..n]) {
            return Err(Error::Sys {
                step: "move network device into the container",
                path: Some(host.into()),
                source: nix::errno::Errno::from_raw(errno),
            });
        }
    }
    Ok(())
}

pub(crate) fn ifreq(name: &str) -> Option<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value (empty name, zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Some(req)
}

fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads one NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Any IPv4 address, or a permanent global IPv6 one (/proc/net/if_inet6: scope 00, flag 0x80).
fn has_permanent_addresses(name: &str) -> bool {
    let v6 = std::fs::read_to_string("/proc/net/if_inet6")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 6
                && f[5] == name
                && f[3] == "00"
                && u32::from_str_radix(f[4], 16).is_ok_and(|flags| flags & 0x80 != 0)
        });
    let v4 = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()
    .and_then(|s| {
        let mut req = ifreq(name)?;
        // SAFETY: SIOCGIFADDR fills in one `ifreq`, which `req` is.
        let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFADDR, &mut req) };
        Some(r == 0)
    })
    .unwrap_or(false);
    v4 || v6
}

/// nlmsghdr + ifinfomsg + IFLA_NET_NS_FD + IFLA_IFNAME, native endian, 4-byte aligned attributes.
fn newlink_message(seq: u32, index: u32, netns_fd: u32, name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    // struct ifinfomsg: family, pad, type, index, flags, change.
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&(index as i32).to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut body, IFLA_NET_NS_FD, &netns_fd.to_ne_bytes());
    let mut cname = name.as_bytes().to_vec();
    cname.push(0);
    attr(&mut body, IFLA_IFNAME, &cname);

    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

/// The errno of an NLMSG_ERROR answer (0 is the ack), or None when all is well.
fn ack_error(reply: &[u8]) -> Option<i32> {
    if reply.len() < 20 {
        return Some(libc::EPROTO);
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != NLMSG_ERROR {
        return Some(libc::EPROTO);
    }
    let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    (err != 0).then_some(-err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlink_message_layout() {
        let m = newlink_message(7, 3, 9, "eth1");
        // 16 header + 16 ifinfomsg + 8 netns fd + 12 ("eth1\0" padded) bytes.
        assert_eq!(m.len(), 52);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 52);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWLINK);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 3);
        assert_eq!(
            u16::from_ne_bytes(m[34..36].try_into().unwrap()),
            IFLA_NET_NS_FD
        );
        assert_eq!(u32::from_ne_bytes(m[36..40].try_into().unwrap()), 9);
        assert_eq!(&m[44..49], b"eth1\0");
    }

    #[test]
    fn unknown_host_device_is_refused() {
        let mut devs = HashMap::new();
        devs.insert("hull-nosuch0".to_string(), LinuxNetDevice::default());
        let e = plan(&devs).unwrap_err().to_string();
        assert!(e.contains("hull-nosuch0"), "{e}");
    }
}
