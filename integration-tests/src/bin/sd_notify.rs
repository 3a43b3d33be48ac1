//! `sd_notify STATE...`: what systemd-notify does, for containers whose busybox has no such
//! applet: sends the arguments, one per line, as one datagram to `$NOTIFY_SOCKET`. Built static
//! by the test bed and copied into a bundle's rootfs (`Bundle::install_tool`).

use std::os::unix::net::UnixDatagram;

fn main() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        eprintln!("sd_notify: NOTIFY_SOCKET is not set");
        std::process::exit(2);
    };
    let state: Vec<String> = std::env::args().skip(1).collect();
    let sock = UnixDatagram::unbound().unwrap_or_else(|e| {
        eprintln!("sd_notify: socket: {e}");
        std::process::exit(1)
    });
    if let Err(e) = sock.send_to(state.join("\n").as_bytes(), &path) {
        eprintln!("sd_notify: send to {}: {e}", path.to_string_lossy());
        std::process::exit(1);
    }
}
