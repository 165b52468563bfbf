//! The docs are tests: every ```console block of README.md and docs/*.md runs, in the form a
//! person types it (human output, through `sh`, `cv` being the binary), against a real
//! `cronvisor up`, and its output must match what the page shows.
//!
//! In the expected output, `[..]` stands for any text within a line (ids, times, pids) and a
//! line `...` for any number of lines. A command is expected to succeed unless its expected
//! output has a line starting with `error:`. The tour's commands depend on runs that happen on
//! their own schedule, so a command whose output does not match yet is run again until it
//! does (bounded: 30 s), as a person would look again a moment later.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Cronvisor, BIN};

/// One `$ command` of a console block and the output shown under it.
struct Example {
    file: String,
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn examples(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut out: Vec<Example> = Vec::new();
    let mut in_console = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(Example {
                file: file.clone(),
                line: i + 1,
                command: cmd.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(ex) = out.last_mut() {
            ex.expected.push(line.to_string());
        }
    }
    out
}

/// Does `line` match `pattern`, where `[..]` matches any text?
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || !line[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Does `actual` match `expected`, where a line `...` matches any number of lines?
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((p, rest)) if p == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((p, rest)) => {
            !actual.is_empty() && line_matches(p, actual[0]) && lines_match(rest, &actual[1..])
        }
    }
}

/// A dir holding `cv` and `cronvisor`, both the binary under test, to put first on PATH.
fn bin_dir(cv: &Cronvisor) -> PathBuf {
    let dir = cv.dir.0.join("docs-bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    for name in ["cv", "cronvisor"] {
        let link = dir.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(BIN, &link).expect("symlink");
        }
    }
    dir
}

fn run(cv: &Cronvisor, path_var: &str, ex: &Example) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{} 2>&1", ex.command))
        .current_dir(&cv.dir.0)
        .env("PATH", path_var)
        .env("TZ", "UTC")
        .env("CRONVISOR_CONFIG", cv.config_path())
        .env_remove("CRONVISOR_DATA_DIR")
        .env_remove("CRONVISOR_TOKEN")
        .env_remove("CRONVISOR_API_URL")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn every_console_example_in_the_docs_runs_as_shown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let all: Vec<Example> = files.iter().flat_map(|f| examples(f)).collect();
    assert!(
        all.len() >= 20,
        "only {} console examples found: did the docs lose their ```console blocks?",
        all.len()
    );

    let cv = Cronvisor::start("docs");
    // The example configs, where the examples name them (`--config cluster.toml`).
    for name in ["standalone.toml", "cluster.toml"] {
        std::fs::copy(root.join("conf").join(name), cv.dir.0.join(name)).expect("copy config");
    }
    let path_var = format!(
        "{}:{}",
        bin_dir(&cv).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for ex in &all {
        let want_ok = !ex.expected.iter().any(|l| l.starts_with("error:"));
        let start = Instant::now();
        let mut first = None;
        loop {
            let (ok, output) = run(&cv, &path_var, ex);
            assert!(
                !output.contains("panicked") && !output.contains("RUST_BACKTRACE"),
                "{}:{} `{}` panicked:\n{output}",
                ex.file,
                ex.line,
                ex.command
            );
            let lines: Vec<&str> = output.lines().collect();
            if ok == want_ok && lines_match(&ex.expected, &lines) {
                break;
            }
            let first = first.get_or_insert((ok, output));
            if start.elapsed() > Duration::from_secs(30) {
                panic!(
                    "{}:{} `{}` (exit ok: {}, expected ok: {want_ok}) printed:\n{}\n--- expected:\n{}",
                    ex.file,
                    ex.line,
                    ex.command,
                    first.0,
                    first.1,
                    ex.expected.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
fn the_matcher_understands_the_placeholders() {
    let exp = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    assert!(lines_match(&exp("a [..] c"), &["a b c"]));
    assert!(!lines_match(&exp("a [..] c"), &["a b d"]));
    assert!(lines_match(&exp("x\n...\nz"), &["x", "1", "2", "z"]));
    assert!(lines_match(&exp("x\n...\nz"), &["x", "z"]));
    assert!(!lines_match(&exp("x\nz"), &["x", "y", "z"]));
    assert!(lines_match(
        &exp("[..]succeeded[..]"),
        &["1  hello  succeeded  0"]
    ));
}
