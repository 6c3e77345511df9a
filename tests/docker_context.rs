//! The image cannot be built here (no Docker engine, no registry), so this test checks what
//! would break its build: every file the sources embed with `include_str!`/`include_bytes!`
//! must reach the build stage, i.e. be under a path the Dockerfile's build stage COPYs and
//! not be excluded by `.dockerignore`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sources compiled into the binary: every crate's `src/`.
fn source_files(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["src", "schemas/src", "ledger/src", "pipelines/src"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    for adapter in std::fs::read_dir(root.join("adapters")).unwrap() {
        dirs.push(adapter.unwrap().path().join("src"));
    }
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The paths (relative to the repository root) that `source` embeds.
fn embedded_by(root: &Path, source: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for macro_name in ["include_str!(\"", "include_bytes!(\""] {
        for (at, _) in text.match_indices(macro_name) {
            let rest = &text[at + macro_name.len()..];
            let Some(end) = rest.find('"') else { continue };
            let target = source.parent().unwrap().join(&rest[..end]);
            found.push(relative(root, &target));
        }
    }
    found
}

/// `target` relative to `root`, with `..` and `.` resolved lexically.
fn relative(root: &Path, target: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in target.strip_prefix(root).unwrap().components() {
        match component {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The sources of the COPY lines of the first stage (the build stage), from the context.
fn copied_paths(dockerfile: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut stages = 0;
    for line in dockerfile.lines().map(str::trim) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("FROM ") {
            stages += 1;
        }
        if stages != 1 || !upper.starts_with("COPY ") {
            continue;
        }
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        if args.iter().any(|a| a.starts_with("--from")) {
            continue;
        }
        let args: Vec<&str> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
        if let Some((_, sources)) = args.split_last() {
            paths.extend(
                sources
                    .iter()
                    .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_string()),
            );
        }
    }
    paths
}

/// Whether `.dockerignore` (Docker's rules: patterns from the context's root, `*` within a
/// name, `**` across directories, `!` re-includes, the last match wins) excludes `path` or
/// one of its directories.
fn ignored(dockerignore: &str, path: &str) -> bool {
    let mut excluded = false;
    let parts: Vec<&str> = path.split('/').collect();
    for line in dockerignore.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (include, pattern) = match line.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, line),
        };
        let pattern: Vec<&str> = pattern
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .collect();
        let matched = (1..=parts.len()).any(|n| glob(&pattern, &parts[..n]));
        if matched {
            excluded = !include;
        }
    }
    excluded
}

fn glob(pattern: &[&str], parts: &[&str]) -> bool {
    match (pattern.first(), parts.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            glob(&pattern[1..], parts) || (!parts.is_empty() && glob(pattern, &parts[1..]))
        }
        (Some(p), Some(name)) => name_matches(p, name) && glob(&pattern[1..], &parts[1..]),
        _ => false,
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len())
                    .any(|skip| name_matches(tail, &name[head.len() + skip..]))
        }
    }
}

/// The embedded paths that would be missing from the build stage.
fn missing_from_build(dockerfile: &str, dockerignore: &str, embedded: &[String]) -> Vec<String> {
    let copied = copied_paths(dockerfile);
    embedded
        .iter()
        .filter(|path| {
            let under_copy = copied
                .iter()
                .any(|c| c == "." || *path == c || path.starts_with(&format!("{c}/")));
            !under_copy || ignored(dockerignore, path)
        })
        .cloned()
        .collect()
}

#[test]
fn every_embedded_file_reaches_the_docker_build() {
    let root = root();
    let mut embedded = Vec::new();
    for source in source_files(&root) {
        let text = std::fs::read_to_string(&source).unwrap();
        embedded.extend(embedded_by(&root, &source, &text));
    }
    embedded.sort();
    embedded.dedup();
    assert!(
        embedded.iter().any(|p| p.starts_with("demo/")),
        "the scan finds the demo's embedded exports: {embedded:?}"
    );
    for path in &embedded {
        assert!(root.join(path).is_file(), "{path} is embedded but absent");
    }
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let dockerignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let missing = missing_from_build(&dockerfile, &dockerignore, &embedded);
    assert!(
        missing.is_empty(),
        "embedded by the sources but not in the Docker build context (add a COPY line, or \
         remove them from .dockerignore): {missing:?}"
    );
}

#[test]
fn a_file_outside_the_copied_paths_or_ignored_is_reported() {
    let dockerfile = "FROM rust AS build\nCOPY Cargo.toml ./\nCOPY src src\nCOPY demo demo\n\
                      FROM debian\nCOPY config /etc/x\n";
    let embedded = vec![
        "src/a.rs".to_string(),
        "demo/exports/a.csv".to_string(),
        "config/encaisse.toml".to_string(),
        "demo/notes/b.md".to_string(),
    ];
    assert_eq!(
        missing_from_build(dockerfile, "target/\n**/*.md\n", &embedded),
        ["config/encaisse.toml", "demo/notes/b.md"]
    );
    assert_eq!(
        missing_from_build(dockerfile, "demo/\n!demo/exports\n", &embedded),
        ["config/encaisse.toml", "demo/notes/b.md"]
    );
}

#[test]
fn embedded_paths_are_resolved_from_the_source_file() {
    let root = Path::new("/r");
    let source = Path::new("/r/src/demo/config.rs");
    let text = r#"const A: &str = include_str!("../../demo/x.toml");
                  const B: &[u8] = include_bytes!("y.bin");"#;
    assert_eq!(
        embedded_by(root, source, text),
        ["demo/x.toml", "src/demo/y.bin"]
    );
}
