//! Imports go one way. For every crate of the workspace, its modules are listed here bottom
//! up, in the order its `lib.rs` module map gives; a module may use only modules listed
//! before it. A new module must be placed in its crate's list, and an import that points up
//! fails here with the pair that does it.
//!
//! Test-only code (`*_tests.rs`, `testing.rs`, what follows a file's first `#[cfg(test)]`)
//! and comments are not read.

use std::path::Path;

/// Each crate's modules, bottom up.
const CRATES: &[(&str, &[&str])] = &[
    (
        "proto",
        &[
            "args", "ring", "topology", "query", "process", "wire", "lib",
        ],
    ),
    (
        "leaf",
        &[
            "schema",
            "collect",
            "top",
            "wal",
            "stats",
            "snapshot",
            "seed",
            "error",
            "document",
            "write",
            "query",
            "index",
            "index_search",
            "refresh",
            "service",
            "grpc",
            "server",
            "cli",
            "lib",
            "main",
        ],
    ),
    (
        "root",
        &[
            "hedge",
            "replica",
            "admission",
            "config",
            "cursor",
            "merge",
            "quarantine",
            "client",
            "metrics",
            "error",
            "http_limits",
            "stats_cache",
            "cluster",
            "choose",
            "scatter",
            "stats",
            "gather",
            "health",
            "discovery",
            "search",
            "api",
            "server",
            "cli",
            "lib",
            "main",
        ],
    ),
    (
        "indexer",
        &[
            "options", "ndjson", "progress", "plan", "rejects", "writer", "run", "cli", "lib",
            "main",
        ],
    ),
    (
        "loadtest",
        &[
            "schedule",
            "cpu",
            "breakdown",
            "report",
            "faults",
            "floor",
            "cluster",
            "supervise",
            "direct",
            "ingest",
            "load",
            "sweep",
            "statsbench",
            "relevance",
            "sim",
            "svg",
            "overload",
            "run_cmd",
            "fuzz",
            "fuzz_run",
            "demo",
            "cli",
            "lib",
            "main",
        ],
    ),
];

/// The modules `text` uses through `crate::NAME` or `crate::{NAME, ...}`, outside comments.
fn crate_imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut add = |name: String| {
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
    };
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    // Test modules come last in a file and may use anything.
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            // A group: the first name after each comma at its own depth.
            Some(group) => {
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            add(ident(&group[start..i]));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            add(ident(&group[start..i]));
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
            }
            None => add(ident(rest)),
        }
    }
    found
}

/// The source files of a crate's `src`, by module name (`bin/x.rs` counts as `main`).
fn modules(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.extension().is_some_and(|e| e == "rs")
                && !stem.ends_with("_tests")
                && stem != "testing"
            {
                let name = if dir.ends_with("bin") {
                    "main".into()
                } else {
                    stem
                };
                files.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files
}

#[test]
fn every_import_points_down() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrong = Vec::new();
    for (krate, order) in CRATES {
        let rank = |m: &str| order.iter().position(|o| *o == m);
        for (module, text) in modules(&workspace.join(krate).join("src")) {
            let Some(own) = rank(&module) else {
                wrong.push(format!("{krate}/{module} is not in its crate's list"));
                continue;
            };
            for used in crate_imports(&text) {
                match rank(&used) {
                    Some(r) if r < own || used == module => {}
                    Some(_) => wrong.push(format!("{krate}: {module} uses {used}, above it")),
                    None => wrong.push(format!("{krate}: {module} uses {used}, not listed")),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn imports_are_found_outside_comments_only() {
    let text = "use crate::a::B;\n// crate::c\nlet x = crate::d::f(); // crate::e\n";
    assert_eq!(crate_imports(text), ["a", "d"]);
    let grouped = "use crate::{f::G, h::{I, J}, k};";
    assert_eq!(crate_imports(grouped), ["f", "h", "k"]);
}
