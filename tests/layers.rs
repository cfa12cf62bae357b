//! Dependencies run one way: every `crate::…` path in the library's source
//! names a module of a lower layer (or the module itself), so the layers
//! record → store/index → plan → exec → api → engine, shards have no
//! circle.
//! `cargo test --test layers` prints each offending path with its file and
//! line.

use std::path::Path;

/// The library's top-level modules, lowest layer first. A module may use
/// modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["timestamp", "quote", "schema", "codec"],
    &["record"],
    &["error"],
    &["batch", "index", "query", "synth"],
    &["store"],
    &["plan"],
    &["exec"],
    &["api"],
    &["engine", "oracle", "shards"],
    &["proptests"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a source file belongs to (`src/store/field.rs` →
/// `store`).
fn module_of(path: &Path, src: &Path) -> String {
    let relative = path.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .expect("a path");
    first.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::name` outside comments on a line.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `$crate::…` in macros and `crate::{…}` lists count too.
        if after.starts_with('{') {
            let list: String = after.chars().take_while(|&c| c != '}').collect();
            found.extend(
                list.trim_start_matches('{')
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or("").to_owned()),
            );
        } else {
            found.push(name);
        }
        rest = after;
    }
    found
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut faults = Vec::new();
    for path in &files {
        let module = module_of(path, &src);
        if module == "lib" {
            continue;
        }
        let own = layer_of(&module)
            .unwrap_or_else(|| panic!("{module} (in {}) is in no layer", path.display()));
        let text = std::fs::read_to_string(path).expect("readable");
        for (number, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                if used.is_empty() || used == module {
                    continue;
                }
                let theirs = layer_of(&used);
                if theirs.is_none_or(|t| t >= own) {
                    faults.push(format!(
                        "{}:{}: `{module}` uses `crate::{used}`: {}",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

#[test]
fn the_check_sees_paths_and_lists() {
    assert_eq!(crate_paths("use crate::store::Store;"), ["store"]);
    assert_eq!(
        crate_paths("use crate::{record::Record, store::Store};"),
        ["record", "store"]
    );
    assert_eq!(
        crate_paths("// crate::api in a comment"),
        Vec::<String>::new()
    );
    assert_eq!(
        crate_paths("$crate::schema::record_fields! { x }"),
        ["schema"]
    );
}
