//! Capped capture of a run's output: the first `head` bytes and the last `tail` bytes of a
//! stream, and a count of what was cut between them. Memory is bounded by `head + tail`
//! whatever the job prints.
//!
//! Readers of live output (`run tail`, the console) name a position as a byte offset in the
//! stream the job wrote, so a reader that reconnects resumes with nothing lost and nothing
//! repeated. The same offsets address a buffer being filled ([`CappedBuffer::slice_from`]) and
//! the text stored once the run ended ([`stored_slice_from`]): head, cut, tail.

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

    /// Bytes written so far (kept or cut): the offset just past the end of the stream.
    pub fn written(&self) -> u64 {
        self.head.len() as u64 + self.cut + self.tail.len() as u64
    }

    /// At most `max` bytes from stream offset `offset` (see [`Slice`]).
    pub fn slice_from(&self, offset: u64, max: usize) -> Slice {
        let head = self.head.len() as u64;
        let tail_start = head + self.cut;
        if offset < head {
            let end = head.min(offset + max as u64);
            return Slice {
                skipped: 0,
                bytes: self.head[offset as usize..end as usize].to_vec(),
                next: end,
            };
        }
        let from = offset.max(tail_start);
        let skipped = from - offset;
        let at = ((from - tail_start) as usize).min(self.tail.len());
        let end = self.tail.len().min(at + max);
        let bytes: Vec<u8> = self.tail.range(at..end).copied().collect();
        Slice {
            skipped,
            next: from + bytes.len() as u64,
            bytes,
        }
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
            format!("{head}{}{tail}", cut_marker(self.cut))
        }
    }
}

/// A piece of a stream read from an offset: `skipped` bytes were cut before it (the reader
/// was past the head and the tail scrolled beyond it), then `bytes`; `next` is the offset to
/// read from next time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    pub skipped: u64,
    pub bytes: Vec<u8>,
    pub next: u64,
}

impl Slice {
    /// The slice as text, held back before a character cut in two at its end (it comes whole
    /// with the next read) unless `last`; other invalid UTF-8 is replaced.
    pub fn into_text(mut self, last: bool) -> (Slice, String) {
        if !last {
            let keep = complete_prefix(&self.bytes);
            let held = self.bytes.len() - keep;
            self.bytes.truncate(keep);
            self.next -= held as u64;
        }
        let text = String::from_utf8_lossy(&self.bytes).into_owned();
        (self, text)
    }
}

/// A piece of one stream as it travels (executor RPC, API): text from an offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Piece {
    /// Bytes cut (never to be seen) between the offset asked for and this text.
    pub skipped: u64,
    pub text: String,
    /// The offset after this text: where the next read starts.
    pub next: u64,
}

impl Piece {
    /// At most `max` bytes of a stream from `offset`, as text (see [`Slice::into_text`]).
    pub fn of(slice: Slice, last: bool) -> Piece {
        let (slice, text) = slice.into_text(last);
        Piece {
            skipped: slice.skipped,
            text,
            next: slice.next,
        }
    }
}

/// A read of a run's output from a pair of offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    /// False once the run's process ended (what follows is in the store).
    pub running: bool,
    pub stdout: Piece,
    pub stderr: Piece,
}

/// The length of `bytes` without a UTF-8 sequence left incomplete at its very end.
fn complete_prefix(bytes: &[u8]) -> usize {
    // Look at the last three bytes at most for the lead byte of a sequence that needs more.
    let start = bytes.len().saturating_sub(3);
    for i in (start..bytes.len()).rev() {
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: its lead is further back
        }
        let need = match b {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if bytes.len() - i < need {
            i
        } else {
            bytes.len()
        };
    }
    bytes.len()
}

/// The marker [`CappedBuffer::render`] puts where `cut` bytes were dropped.
fn cut_marker(cut: u64) -> String {
    format!("\n[... cronvisor: {cut} bytes cut ...]\n")
}

/// Reads the stored text of a stream (as [`CappedBuffer::render`] wrote it, `cut` bytes
/// dropped) from stream offset `offset`, the way [`CappedBuffer::slice_from`] reads it live.
pub fn stored_slice_from(text: &str, cut: u64, offset: u64, max: usize) -> Slice {
    let marker = cut_marker(cut);
    let (head, tail, cut) = match text.find(&marker).filter(|_| cut > 0) {
        Some(at) => (
            &text.as_bytes()[..at],
            &text.as_bytes()[at + marker.len()..],
            cut,
        ),
        None => (text.as_bytes(), &b""[..], 0),
    };
    let mut buf = CappedBuffer::new(head.len(), tail.len());
    buf.head.extend_from_slice(head);
    buf.tail.extend(tail);
    buf.cut = cut;
    buf.slice_from(offset, max)
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

    #[test]
    fn live_and_stored_slices_agree_on_offsets() {
        let mut b = CappedBuffer::new(4, 4);
        b.push(b"0123");
        assert_eq!(b.slice_from(0, 100).bytes, b"0123");
        assert_eq!(b.slice_from(2, 1).bytes, b"2");
        b.push(b"456789abcdefXYZW");
        // A reader at 4 lost what scrolled out of the tail: told so, then the tail.
        let s = b.slice_from(4, 100);
        assert_eq!(
            (s.skipped, s.bytes.as_slice(), s.next),
            (12, &b"XYZW"[..], 20)
        );
        assert_eq!(b.slice_from(18, 100).bytes, b"ZW");
        assert_eq!(b.slice_from(20, 100).bytes, b"");
        let stored = b.render();
        for offset in [0, 2, 4, 10, 16, 18, 20] {
            assert_eq!(
                stored_slice_from(&stored, b.cut(), offset, 100),
                b.slice_from(offset, 100),
                "offset {offset}"
            );
        }
        // Uncut output: the stored text is the stream.
        let mut short = CappedBuffer::new(8, 8);
        short.push(b"hello world");
        assert_eq!(
            stored_slice_from(&short.render(), 0, 6, 100).bytes,
            b"world".to_vec()
        );
    }

    #[test]
    fn a_character_split_across_reads_arrives_whole() {
        let e_acute = "h\u{e9}".as_bytes();
        let (slice, text) = Slice {
            skipped: 0,
            bytes: e_acute[..2].to_vec(),
            next: 2,
        }
        .into_text(false);
        assert_eq!((text.as_str(), slice.next), ("h", 1));
        let (_, text) = Slice {
            skipped: 0,
            bytes: e_acute.to_vec(),
            next: 3,
        }
        .into_text(false);
        assert_eq!(text, "h\u{e9}");
    }
}
