//! `run tail ID [--follow]`: a run's output, read from the monitor as Server-Sent Events.
//! With `--follow` it keeps reading until the run ends — through a monitor restart or reload,
//! resuming from the last event's id, so no line is lost and none printed twice — and exits
//! with a status that tells how the run ended.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::api_client::Api;
use crate::cli::RunTailArgs;

/// One chunk of the stream (the API's `Chunk`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Chunk {
    Output {
        stream: String,
        text: String,
        skipped: u64,
    },
    /// The run moved on (dispatched, running): nothing to print.
    State {},
    End {
        state: String,
        exit_code: Option<i64>,
        error: Option<String>,
    },
}

/// Server-Sent Events parsed from bytes as they come: complete events only.
#[derive(Default)]
struct Events {
    pending: Vec<u8>,
    last_id: Option<String>,
    ended: Option<(String, Option<i64>, Option<String>)>,
}

impl Events {
    fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = find_blank_line(&self.pending) {
            let block: Vec<u8> = self.pending.drain(..end.0).collect();
            self.pending.drain(..end.1);
            self.event(&String::from_utf8_lossy(&block));
        }
    }

    fn event(&mut self, block: &str) {
        let (mut id, mut data) = (None, String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim_start().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if data.is_empty() {
            return; // a keep-alive comment
        }
        match serde_json::from_str::<Chunk>(&data) {
            Ok(chunk) => show(chunk, &mut self.ended),
            Err(e) => tracing::debug!(error = %e, "unreadable event"),
        }
        if id.is_some() {
            self.last_id = id;
        }
    }
}

/// Where the first blank line (`\n\n` or `\r\n\r\n`) starts and how long it is.
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(c)) => Some(if a.0 <= c.0 { a } else { c }),
        (a, c) => a.or(c),
    }
}

fn show(chunk: Chunk, ended: &mut Option<(String, Option<i64>, Option<String>)>) {
    match chunk {
        Chunk::Output {
            stream,
            text,
            skipped,
        } => {
            let cut = (skipped > 0).then(|| format!("[... cronvisor: {skipped} bytes cut ...]\n"));
            if stream == "stderr" {
                let mut e = std::io::stderr().lock();
                let _ = e.write_all(cut.unwrap_or_default().as_bytes());
                let _ = e.write_all(text.as_bytes());
            } else {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(cut.unwrap_or_default().as_bytes());
                let _ = o.write_all(text.as_bytes());
                let _ = o.flush();
            }
        }
        Chunk::State {} => {}
        Chunk::End {
            state,
            exit_code,
            error,
        } => *ended = Some((state, exit_code, error)),
    }
}

/// The exit status for a run that ended `state`.
fn status_of(state: &str, exit_code: Option<i64>) -> u8 {
    match (state, exit_code) {
        ("succeeded", _) => 0,
        ("failed", Some(c)) if (1..=255).contains(&c) => c as u8,
        ("timed_out", _) => 124,
        ("killed", _) => 137,
        _ => 1,
    }
}

pub async fn tail(api: &Api, args: &RunTailArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/runs/{}/output", args.id);
    if !args.follow {
        let now: Value = api.call(Method::GET, &path, None).await?;
        let mut ignore = None;
        for c in now["chunks"].as_array().into_iter().flatten() {
            if let Ok(chunk) = serde_json::from_value::<Chunk>(c.clone()) {
                show(chunk, &mut ignore);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut events = Events::default();
    // Reconnects (monitor reload or restart) are bounded: a monitor gone for good ends it.
    let mut failures = 0u32;
    loop {
        let last = events.last_id.clone();
        let mut feed = |b: &[u8]| events.feed(b);
        let answer = api.stream(&path, last.as_deref(), &mut feed).await;
        if let Some((state, code, error)) = &events.ended {
            let how = match error {
                Some(e) => format!("{state} ({e})"),
                None => state.clone(),
            };
            eprintln!("run {} {how}", args.id);
            return Ok(ExitCode::from(status_of(state, *code)));
        }
        match answer {
            Ok(StatusCode::OK) => failures = 0,
            Ok(status) if status.is_client_error() => {
                // The full message: ask once more as JSON.
                api.call::<Value>(Method::GET, &path, None).await?;
                bail!("the API answered {status}");
            }
            Ok(_) | Err(_) => {
                failures += 1;
                if failures > 60 {
                    answer?;
                    bail!("the monitor keeps failing; giving up");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_are_parsed_once_whole() {
        let mut e = Events::default();
        e.feed(b"retry: 1000\nevent: output\nid: 3.0\ndata: {\"type\":\"output\",\"stream\":\"stdout\",");
        assert_eq!(e.last_id, None);
        e.feed(b"\"text\":\"abc\",\"skipped\":0}\n\n:keep-alive\n\n");
        assert_eq!(e.last_id.as_deref(), Some("3.0"));
        e.feed(b"event: end\nid: 3.0\ndata: {\"type\":\"end\",\"state\":\"failed\",\"exit_code\":3,\"error\":\"exit code 3\"}\n\n");
        let (state, code, _) = e.ended.clone().expect("ended");
        assert_eq!(status_of(&state, code), 3);
        assert_eq!(status_of("timed_out", None), 124);
        assert_eq!(status_of("succeeded", Some(0)), 0);
    }
}
