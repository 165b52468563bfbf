//! The receiving end of sd_notify: one datagram socket per child, whose path the child finds in
//! `NOTIFY_SOCKET`. One socket per child means a message's sender needs no credentials check.

use std::path::{Path, PathBuf};

use tokio::net::UnixDatagram;

/// What a child said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ready,
    Stopping,
    Status(String),
}

pub fn parse(datagram: &str) -> Vec<Message> {
    datagram
        .lines()
        .filter_map(|line| match line.split_once('=') {
            Some(("READY", "1")) => Some(Message::Ready),
            Some(("STOPPING", "1")) => Some(Message::Stopping),
            Some(("STATUS", s)) => Some(Message::Status(s.to_string())),
            _ => None,
        })
        .collect()
}

/// A bound notify socket; the path is removed on drop.
#[derive(Debug)]
pub struct NotifySocket {
    path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    pub fn bind(path: &Path) -> std::io::Result<NotifySocket> {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path)?;
        Ok(NotifySocket {
            path: path.to_path_buf(),
            sock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next message batch.
    pub async fn recv(&self) -> std::io::Result<Vec<Message>> {
        let mut buf = vec![0u8; 4096];
        let n = self.sock.recv(&mut buf).await?;
        Ok(parse(&String::from_utf8_lossy(&buf[..n])))
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sd_notify_lines() {
        assert_eq!(
            parse("READY=1\nSTATUS=serving\nWATCHDOG=1\n"),
            vec![Message::Ready, Message::Status("serving".into())]
        );
        assert_eq!(parse("STOPPING=1"), vec![Message::Stopping]);
    }
}
