//! A TCP relay between one process and a server, that the test can cut: while cut, open
//! connections are closed and new ones are closed on arrival, so that one host loses a
//! dependency while every other host keeps it (the same loopback serves them all). Or silence:
//! every byte is dropped, nothing closes — as a partition that drops packets looks to both
//! ends (their calls hang until their own timeouts).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let cut = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o, q) = (cut.clone(), open.clone(), silent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if q.load(Ordering::SeqCst) {
                    // Held open, never answered (closed when the silence ends).
                    if let Ok(mut o) = o.lock() {
                        o.push(client);
                    }
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for s in [&client, &server] {
                    if let (Ok(s), Ok(mut o)) = (s.try_clone(), o.lock()) {
                        o.push(s);
                    }
                }
                pump(&client, &server, q.clone());
                pump(&server, &client, q.clone());
            }
        });
        Relay {
            addr,
            cut,
            silent,
            open,
        }
    }

    /// Drops every byte (`true`) without closing anything, until `false`: then the
    /// connections that lost bytes are closed (their streams are broken).
    pub fn silence(&self, on: bool) {
        self.silent.store(on, Ordering::SeqCst);
        if !on {
            if let Ok(mut open) = self.open.lock() {
                for s in open.drain(..) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }

    /// Cuts (`true`) or restores (`false`) the path.
    pub fn cut(&self, on: bool) {
        self.cut.store(on, Ordering::SeqCst);
        if on {
            if let Ok(mut open) = self.open.lock() {
                for s in open.drain(..) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes; drops what it reads
/// while `silent`.
fn pump(from: &TcpStream, to: &TcpStream, silent: Arc<AtomicBool>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if silent.load(Ordering::SeqCst) => {}
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
