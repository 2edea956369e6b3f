//! The house has no import circle: reads every `crate::` and `super::` path in `src/`
//! (outside comments and unit tests), resolves it to the file of the module that
//! defines what it names (through re-exports: `super::FiringRecord` in
//! `store/runs.rs` is `store/firings.rs`), and
//! looks for a circle among the top-level parts (`store`, `bus`, `sessions`, …) and
//! among the files. A circle fails with the files and the paths that tie it.
//!
//! Run alone: `cargo test --test import_graph`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["api", "queues"]`) of each source file, and its text.
fn sources() -> BTreeMap<Vec<String>, (PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap();
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(module, (rel.to_owned(), text));
        }
    }
    out
}

/// The text without comments and without the trailing `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(end) => &text[..end],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is rare in paths' lines; good enough here.
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `crate::` or `super::` prefix leads to in the file of `module`, from
/// the crate root, use-trees expanded: `crate::bus::{Bus, topic::TopicPattern}` gives
/// `bus::Bus` and `bus::topic::TopicPattern`; `super::events::Receipt` in `api::chat`
/// gives `api::events::Receipt`.
fn paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let s: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let starts = |at: usize, word: &str| {
        let word: Vec<char> = word.chars().collect();
        s.len() >= at + word.len() && s[at..at + word.len()] == word[..]
    };
    let mut i = 0;
    while i < s.len() {
        let boundary =
            i == 0 || !(s[i - 1].is_alphanumeric() || s[i - 1] == '_' || s[i - 1] == ':');
        if boundary && starts(i, "crate::") {
            let mut at = i + "crate::".len();
            tree(&s, &mut at, Vec::new(), &mut out);
            i = at;
        } else if boundary && starts(i, "super::") {
            let mut at = i;
            let mut up = 0;
            while starts(at, "super::") {
                at += "super::".len();
                up += 1;
            }
            let base = module[..module.len().saturating_sub(up)].to_vec();
            tree(&s, &mut at, base, &mut out);
            i = at;
        } else {
            i += 1;
        }
    }
    out
}

fn skip_space(s: &[char], at: &mut usize) {
    while *at < s.len() && s[*at].is_whitespace() {
        *at += 1;
    }
}

fn ident(s: &[char], at: &mut usize) -> Option<String> {
    let start = *at;
    while *at < s.len() && (s[*at].is_alphanumeric() || s[*at] == '_') {
        *at += 1;
    }
    (*at > start).then(|| s[start..*at].iter().collect())
}

/// One use-tree at `at` under `prefix`.
fn tree(s: &[char], at: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        skip_space(s, at);
        if *at < s.len() && s[*at] == '{' {
            *at += 1;
            loop {
                skip_space(s, at);
                if *at >= s.len() || s[*at] == '}' {
                    *at += 1;
                    return;
                }
                tree(s, at, prefix.clone(), out);
                skip_space(s, at);
                if *at < s.len() && s[*at] == ',' {
                    *at += 1;
                }
            }
        }
        match ident(s, at) {
            Some(name) if name != "self" => prefix.push(name),
            Some(_) => {}
            None => {
                // `*`, or the end of the path.
                if *at < s.len() && s[*at] == '*' {
                    *at += 1;
                }
                out.push(prefix);
                return;
            }
        }
        if s[*at..].starts_with(&[':', ':']) {
            *at += 2;
        } else {
            // Skip `as name` in a use-tree; anything else ends the path.
            out.push(prefix);
            skip_space(s, at);
            if s[*at..].starts_with(&['a', 's', ' ']) {
                *at += 3;
                skip_space(s, at);
                ident(s, at);
            }
            return;
        }
    }
}

/// Names a module re-exports (`pub use child::Name;`), each with the path it stands for.
type Reexports = BTreeMap<(Vec<String>, String), Vec<String>>;

fn reexports(modules: &BTreeMap<Vec<String>, (PathBuf, String)>) -> Reexports {
    let mut out = Reexports::new();
    for (module, (_, text)) in modules {
        let s: Vec<char> = code(text).chars().collect();
        let word: Vec<char> = "pub use ".chars().collect();
        let mut i = 0;
        while i + word.len() <= s.len() {
            if s[i..i + word.len()] != word[..] {
                i += 1;
                continue;
            }
            let mut at = i + word.len();
            let mut found = Vec::new();
            // `crate::…` and `super::…` are read from the root; anything else is
            // relative to the module (a child, or another crate, which resolves to
            // nothing here).
            let rest: String = s[at..s.len().min(at + 7)].iter().collect();
            if rest.starts_with("crate::") {
                at += "crate::".len();
                tree(&s, &mut at, Vec::new(), &mut found);
            } else if rest.starts_with("super::") {
                at += "super::".len();
                tree(&s, &mut at, module[..module.len() - 1].to_vec(), &mut found);
            } else {
                tree(&s, &mut at, module.clone(), &mut found);
            }
            for path in found {
                if let Some(name) = path.last() {
                    out.insert((module.clone(), name.clone()), path.clone());
                }
            }
            i = at;
        }
    }
    out
}

/// The file of the module that defines what `path` names: the deepest module of it
/// that has a file of its own, followed through that module's re-exports.
fn resolve<'a>(
    path: &[String],
    modules: &'a BTreeMap<Vec<String>, (PathBuf, String)>,
    reexported: &Reexports,
) -> Option<&'a Vec<String>> {
    let mut path = path.to_vec();
    for _ in 0..8 {
        let module = (1..=path.len())
            .rev()
            .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))?;
        let Some(name) = path.get(module.len()) else {
            return Some(module);
        };
        match reexported.get(&(module.clone(), name.clone())) {
            Some(target) if target != &path[..=module.len()] => {
                let mut next = target.clone();
                next.extend_from_slice(&path[module.len() + 1..]);
                path = next;
            }
            _ => return Some(module),
        }
    }
    None
}

/// A circle of `graph`, if it has one (depth-first search, the path on the stack).
fn circle<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        node: &N,
        graph: &BTreeMap<N, BTreeSet<N>>,
        done: &mut BTreeSet<N>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            return Some(stack[i..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

#[test]
fn src_has_no_import_circle() {
    let modules = sources();
    let reexported = reexports(&modules);
    let mut files: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut parts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(Vec<String>, Vec<String>), Vec<String>> = BTreeMap::new();
    for (module, (_, text)) in &modules {
        let Some(part) = module.first() else { continue };
        files.entry(module.clone()).or_default();
        for path in paths(&code(text), module) {
            let Some(target) = resolve(&path, &modules, &reexported) else {
                continue;
            };
            // A module naming its own ancestor (`crate::bus` from `bus::fanout`) is the
            // family's own business, not an import between rooms.
            if target == module || module.starts_with(target) {
                continue;
            }
            files
                .entry(module.clone())
                .or_default()
                .insert(target.clone());
            why.entry((module.clone(), target.clone()))
                .or_default()
                .push(path.join("::"));
            if target[0] != *part {
                parts
                    .entry(part.clone())
                    .or_default()
                    .insert(target[0].clone());
            }
        }
    }
    assert!(
        files.len() > 50,
        "read only {} files: is src/ where it was?",
        files.len()
    );
    if let Some(c) = circle(&parts) {
        panic!(
            "the parts import each other in a circle: {}",
            c.join(" -> ")
        );
    }
    if let Some(c) = circle(&files) {
        let mut ties = Vec::new();
        for (i, from) in c.iter().enumerate() {
            let to = &c[(i + 1) % c.len()];
            let names = why
                .get(&(from.clone(), to.clone()))
                .cloned()
                .unwrap_or_default();
            ties.push(format!(
                "{} -> {}: {}",
                modules[from].0.display(),
                modules[to].0.display(),
                names.join(", ")
            ));
        }
        panic!("files import each other in a circle:\n{}", ties.join("\n"));
    }
}

#[test]
fn use_trees_expand_to_every_path() {
    let found = paths(
        "use crate::bus::{Bus, topic::{TopicPattern as P, self}};\nlet x = crate::time::now();\n\
         use super::events::Receipt;",
        &["api".to_owned(), "chat".to_owned()],
    );
    let text: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        text,
        [
            "bus::Bus",
            "bus::topic::TopicPattern",
            "bus::topic",
            "time::now",
            "api::events::Receipt",
        ]
    );
}

#[test]
fn a_circle_is_found_and_a_tree_is_not() {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    graph.entry("a").or_default().insert("b");
    graph.entry("b").or_default().insert("c");
    assert_eq!(circle(&graph), None);
    graph.entry("c").or_default().insert("a");
    assert_eq!(circle(&graph), Some(vec!["a", "b", "c"]));
}

#[test]
fn a_name_is_followed_through_its_parents_reexport() {
    let module = |path: &str, text: &str| {
        let key: Vec<String> = path.split("::").map(str::to_owned).collect();
        (key, (PathBuf::from(path), text.to_owned()))
    };
    let modules: BTreeMap<_, _> = [
        module(
            "store",
            "mod runs;\nmod firings;\npub use firings::{FiringRecord, Decision};\n",
        ),
        module("store::runs", "use super::FiringRecord;\n"),
        module("store::firings", "pub struct FiringRecord;\n"),
    ]
    .into_iter()
    .collect();
    let reexported = reexports(&modules);
    let path: Vec<String> = ["store", "FiringRecord"].map(str::to_owned).to_vec();
    assert_eq!(
        resolve(&path, &modules, &reexported),
        Some(&vec!["store".to_owned(), "firings".to_owned()])
    );
}
