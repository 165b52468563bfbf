//! The supervisor's named listening sockets: adopted from systemd by name when it passed them,
//! bound here otherwise. They live as long as the supervisor, across child restarts, so the
//! kernel's accept queue keeps taking connections while a child is replaced.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};

use crate::activation::Inherited;

#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub name: String,
    pub addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot bind listener `{name}` on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener `{name}`: {source}")]
    Socket {
        name: String,
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Bound {
    name: String,
    listener: TcpListener,
    addr: SocketAddr,
    adopted: bool,
}

#[derive(Debug, Default)]
pub struct Listeners {
    items: Vec<Bound>,
}

impl Listeners {
    /// Adopts each spec's socket from `inherited` by name, or binds it.
    pub fn open(
        specs: &[ListenerSpec],
        inherited: &mut Inherited,
    ) -> Result<Listeners, ListenError> {
        let mut items = Vec::with_capacity(specs.len());
        for spec in specs {
            let (listener, adopted) = match inherited.take(&spec.name) {
                Some(fd) => (TcpListener::from(fd), true),
                None => (
                    TcpListener::bind(spec.addr).map_err(|source| ListenError::Bind {
                        name: spec.name.clone(),
                        addr: spec.addr,
                        source,
                    })?,
                    false,
                ),
            };
            let addr = listener
                .local_addr()
                .map_err(|source| ListenError::Socket {
                    name: spec.name.clone(),
                    source,
                })?;
            items.push(Bound {
                name: spec.name.clone(),
                listener,
                addr,
                adopted,
            });
        }
        Ok(Listeners { items })
    }

    /// The address each listener is bound to (port 0 resolved).
    pub fn addrs(&self) -> Vec<(String, SocketAddr, bool)> {
        self.items
            .iter()
            .map(|b| (b.name.clone(), b.addr, b.adopted))
            .collect()
    }

    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.items.iter().find(|b| b.name == name).map(|b| b.addr)
    }

    /// (name, fd number) of every listener, for a self-upgrade hand-over.
    pub fn raw_fds(&self) -> Vec<(String, std::os::fd::RawFd)> {
        use std::os::fd::AsRawFd;
        self.items
            .iter()
            .map(|b| (b.name.clone(), b.listener.as_raw_fd()))
            .collect()
    }

    /// A duplicate of the named socket for a child (close-on-exec in this process; the child's
    /// copy is placed at a fixed fd by the spawn).
    pub fn dup(&self, name: &str) -> Option<std::io::Result<OwnedFd>> {
        self.items
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.listener.as_fd().try_clone_to_owned())
    }
}
