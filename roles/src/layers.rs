//! The layers of this crate, and a test that keeps them: a module imports only from its own
//! layer or the ones below it, so that a change in a role never rebuilds the picture under it
//! and no cycle can form. Chosen over one crate per layer: the layers are checked at once by
//! one test, while a crate per layer would turn every cross-layer move into a `Cargo.toml`
//! change and multiply link steps (measured in docs/ARCHITECTURE.md, "Layers").
//!
//! Bottom to top (the CLI, `src/`, and the supervisor crate stand outside: the supervisor
//! below all of it, the CLI above):
//!
//! 0. facts: `model`, `schedule`, `names`, `metrics`, `privilege`, `tokens`, `output`,
//!    `instance`, `shutdown`, `tls`
//! 1. `config`
//! 2. `store`, `http`
//! 3. `cluster`, `presence`
//! 4. roles: `runtime`, `dispatcher`, `executor`, `monitor`

/// Each top module of the crate and its layer.
pub const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("schedule", 0),
    ("names", 0),
    ("metrics", 0),
    ("privilege", 0),
    ("tokens", 0),
    ("output", 0),
    ("instance", 0),
    ("shutdown", 0),
    ("tls", 0),
    ("config", 1),
    ("store", 2),
    ("http", 2),
    ("cluster", 3),
    ("presence", 3),
    ("runtime", 4),
    ("dispatcher", 4),
    ("executor", 4),
    ("monitor", 4),
];

#[cfg(test)]
mod tests {
    use super::LAYERS;
    use std::path::Path;

    fn layer(module: &str) -> Option<u8> {
        LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
    }

    /// The top modules a source file names through `crate::`, its tests left out.
    fn imports(text: &str) -> Vec<String> {
        let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
        let mut out = Vec::new();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push(name);
                }
            } else {
                out.push(
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
        out
    }

    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn every_module_imports_only_from_its_layer_or_below() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let mut wrong = Vec::new();
        for file in &files {
            let rel = file.strip_prefix(&src).expect("under src");
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("")
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "layers" {
                continue;
            }
            let Some(mine) = layer(&top) else {
                wrong.push(format!(
                    "{}: module `{top}` has no layer in LAYERS",
                    rel.display()
                ));
                continue;
            };
            let text = std::fs::read_to_string(file).expect("read source");
            for used in imports(&text) {
                match layer(&used) {
                    Some(theirs) if theirs > mine => wrong.push(format!(
                        "{}: `{top}` (layer {mine}) uses crate::{used} (layer {theirs})",
                        rel.display()
                    )),
                    None if !used.is_empty() => wrong.push(format!(
                        "{}: crate::{used} has no layer in LAYERS",
                        rel.display()
                    )),
                    _ => {}
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(wrong.is_empty(), "imports upward:\n{}", wrong.join("\n"));
    }

    #[test]
    fn the_import_reader_sees_groups_and_paths() {
        let text = "use crate::{model::Job, store::Store};\nlet x = crate::http::client::x();\n\
                    #[cfg(test)]\nmod tests { use crate::monitor; }";
        assert_eq!(imports(text), ["model", "store", "http"]);
    }
}
