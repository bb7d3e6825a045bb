//! The operator's source files import one another without a circle: `config.rs` takes each
//! part's configuration type from the part's own leaf module, and no file's imports lead back
//! to itself (issue 18: ten files once formed one circle through `config.rs`). A check on the
//! source text, as `use crate::…` and `use super::…` lines name files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `alerting/mod.rs` is `["alerting"]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The paths a file's code (tests left out) names with `crate::` or `super::`, as segments
/// from the crate root.
fn named_paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let starts = (rest.starts_with("crate::") || rest.starts_with("super::"))
            && (i == 0 || !word(bytes[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (word(bytes[j]) || bytes[j] == ':') {
            j += 1;
        }
        let path: String = bytes[i..j].iter().collect();
        let mut segments: Vec<String> = path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let mut base: Vec<String> = Vec::new();
        if segments.first().map(String::as_str) == Some("crate") {
            segments.remove(0);
        } else {
            base = module.to_vec();
            while segments.first().map(String::as_str) == Some("super") {
                segments.remove(0);
                base.pop();
            }
        }
        base.extend(segments);
        out.push(base);
        i = j;
    }
    out
}

#[test]
fn no_source_file_imports_lead_back_to_itself() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(&root, f), f.clone()))
        .collect();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let targets = edges.entry(file.clone()).or_default();
        for path in named_paths(&module_of(&root, file), &text) {
            // The longest prefix that is a file is what the path imports from.
            let target = (0..=path.len())
                .rev()
                .find_map(|n| modules.get(&path[..n]))
                .filter(|t| *t != file);
            if let Some(target) = target {
                targets.insert(target.clone());
            }
        }
    }
    if let Some(trail) = circle(&edges) {
        let names: Vec<String> = trail
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        panic!("an import circle: {}", names.join(" -> "));
    }
}

/// A trail of imports from a file back to itself, if there is one.
fn circle(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    for start in edges.keys() {
        // Depth-first from `start`'s imports; reaching `start` again is a circle.
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(PathBuf, Vec<PathBuf>)> = edges[start]
            .iter()
            .map(|t| (t.clone(), vec![start.clone(), t.clone()]))
            .collect();
        while let Some((file, trail)) = stack.pop() {
            if &file == start {
                return Some(trail);
            }
            if !seen.insert(file.clone()) {
                continue;
            }
            for next in edges.get(&file).into_iter().flatten() {
                let mut longer = trail.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn the_check_finds_a_circle_when_there_is_one() {
    let a = named_paths(
        &["alerting".into()],
        "use super::config::Thing;\nuse crate::x::Y;",
    );
    assert_eq!(a, [vec!["config", "Thing"], vec!["x", "Y"]]);
    let nested = named_paths(
        &["monitor".into(), "probes".into()],
        "fn f() { super::super::context::Context::new() }",
    );
    assert_eq!(nested, [vec!["context", "Context", "new"]]);
    let graph = |pairs: &[(&str, &str)]| {
        let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for (from, to) in pairs {
            edges.entry(from.into()).or_default().insert(to.into());
            edges.entry(to.into()).or_default();
        }
        edges
    };
    let line = graph(&[
        ("config.rs", "usage/config.rs"),
        ("usage/mod.rs", "config.rs"),
    ]);
    assert_eq!(circle(&line), None);
    let round = graph(&[
        ("config.rs", "usage/mod.rs"),
        ("usage/mod.rs", "context.rs"),
        ("context.rs", "config.rs"),
    ]);
    assert_eq!(circle(&round).map(|t| t.len()), Some(4));
}
