//! Capped capture of a run's output: the first `head` bytes and the last `tail` bytes of a
//! stream, and a count of what was cut between them. Memory is bounded by `head + tail`
//! whatever the job prints.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct CappedBuffer {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    cut: u64,
}

impl CappedBuffer {
    pub fn new(head_cap: usize, tail_cap: usize) -> CappedBuffer {
        CappedBuffer {
            head: Vec::with_capacity(head_cap.min(8192)),
            head_cap,
            tail: VecDeque::new(),
            tail_cap,
            cut: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.is_empty() {
            return;
        }
        if bytes.len() >= self.tail_cap {
            // The new bytes alone fill the tail: everything older is cut.
            self.cut += self.tail.len() as u64 + (bytes.len() - self.tail_cap) as u64;
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.cut += overflow as u64;
        self.tail.extend(bytes);
    }

    /// Bytes dropped from the middle.
    pub fn cut(&self) -> u64 {
        self.cut
    }

    /// The kept text, with a marker where bytes were cut. Invalid UTF-8 is replaced, not
    /// rejected: output is for people.
    pub fn render(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        if self.tail.is_empty() {
            return head.into_owned();
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail);
        if self.cut == 0 {
            format!("{head}{tail}")
        } else {
            format!(
                "{head}\n[... cronvisor: {} bytes cut ...]\n{tail}",
                self.cut
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut b = CappedBuffer::new(8, 8);
        b.push(b"hello ");
        b.push(b"world");
        assert_eq!(b.render(), "hello world");
        assert_eq!(b.cut(), 0);
    }

    #[test]
    fn long_output_keeps_head_and_tail_and_counts_the_cut() {
        let mut b = CappedBuffer::new(4, 4);
        for chunk in [&b"0123"[..], b"45", b"6789abcdef", b"XYZW"] {
            b.push(chunk);
        }
        // 20 bytes: head "0123", tail "XYZW", 12 cut.
        assert_eq!(b.cut(), 12);
        assert_eq!(b.render(), "0123\n[... cronvisor: 12 bytes cut ...]\nXYZW");
    }

    #[test]
    fn tail_only_and_small_pushes() {
        let mut b = CappedBuffer::new(0, 3);
        for c in b"abcdef" {
            b.push(&[*c]);
        }
        assert_eq!(b.cut(), 3);
        assert!(b.render().ends_with("def"));
    }
}
