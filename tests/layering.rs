//! The modules' layering, read from the code: each top-level module of `src/` may use
//! only the modules of lower layers, and `sim` (the simulators) only the command line
//! may use. Test code is exempt: it may reach anywhere to set a scene.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;

/// The layers, lowest first. A module may use the modules of the layers below its
/// own, never its own layer's others nor any above (README, "Architecture").
const LAYERS: &[&[&str]] = &[
    &["locks"],
    &[
        "wire",
        "money",
        "bounds",
        "throttle",
        "credentials",
        "state",
    ],
    &["text", "link"],
    &["message", "ledger", "provider", "transport"],
    &["reconcile", "fleet"],
    &["bridge"],
    &["config"],
    &["daemon"],
    &["sim"],
    &["cli"],
];

/// The simulators are tools, not part of the daemon: only these may use them.
const SIM_USERS: &[&str] = &["cli"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Why `from` may not use `to`, or `None` when it may.
fn forbidden(from: &str, to: &str) -> Option<String> {
    if from == to {
        return None;
    }
    if to == "sim" && !SIM_USERS.contains(&from) {
        return Some("only the command line uses the simulators".into());
    }
    match (layer_of(from), layer_of(to)) {
        (Some(a), Some(b)) if b < a => None,
        (Some(a), Some(b)) if a == b => Some("a module of the same layer".into()),
        (Some(_), Some(_)) => Some("a module of a higher layer".into()),
        (None, _) => Some(format!("`{from}` is in no layer: add it to LAYERS")),
        (_, None) => Some(format!("`{to}` is in no layer: add it to LAYERS")),
    }
}

/// Whether an item is compiled only for tests (`#[cfg(test)]`).
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The modules named after `crate::` anywhere in `tokens`: `crate::ledger::X` and
/// each head of `crate::{ledger, wire::Frame}`.
fn crate_paths(tokens: TokenStream, found: &mut BTreeSet<String>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Group(g) => crate_paths(g.stream(), found),
            TokenTree::Ident(id) if id == "crate" => {
                let colons = trees.get(i + 1..i + 3).is_some_and(|p| {
                    p.iter()
                        .all(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ':'))
                });
                if !colons {
                    continue;
                }
                match trees.get(i + 3) {
                    Some(TokenTree::Ident(name)) => {
                        found.insert(name.to_string());
                    }
                    Some(TokenTree::Group(group)) => {
                        let mut head = true;
                        for t in group.stream() {
                            match t {
                                TokenTree::Ident(name) if head => {
                                    found.insert(name.to_string());
                                    head = false;
                                }
                                TokenTree::Punct(p) if p.as_char() == ',' => head = true,
                                _ => head = false,
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// The modules a file's non-test code uses through `crate::`.
fn uses_of(source: &str) -> Result<BTreeSet<String>, String> {
    let file = syn::parse_file(source).map_err(|e| e.to_string())?;
    let mut found = BTreeSet::new();
    let mut items: Vec<syn::Item> = file.items;
    while let Some(item) = items.pop() {
        if is_test_only(item_attrs(&item)) {
            continue;
        }
        if let syn::Item::Mod(syn::ItemMod {
            content: Some((_, inner)),
            ..
        }) = item
        {
            items.extend(inner);
            continue;
        }
        crate_paths(item.to_token_stream(), &mut found);
    }
    Ok(found)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to, or `None` for the crate root and
/// the binaries (which may use anything) and for test-only files.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    if matches!(first, "lib.rs" | "main.rs" | "bin") {
        return None;
    }
    let stem = file.file_stem()?.to_str()?;
    if stem == "tests" || stem.ends_with("_tests") {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_owned())
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut modules = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        modules.insert(module.clone());
        let source = std::fs::read_to_string(file).unwrap();
        let uses = uses_of(&source).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for used in uses {
            if let Some(why) = forbidden(&module, &used) {
                let rel = file.strip_prefix(&src).unwrap().display();
                wrong.push(format!("src/{rel}: {module} uses crate::{used}: {why}"));
            }
        }
    }
    assert!(modules.len() >= 15, "only {modules:?} found under src/");
    for module in &modules {
        assert!(layer_of(module).is_some(), "`{module}` is in no layer");
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways uses:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_finds_every_way_to_name_a_module_and_skips_test_code() {
    let source = r#"
        use crate::ledger::Ledger;
        use crate::{wire::Frame, money};
        fn f() { crate::cli::stop_signal(); tracing::info!("{}", crate::text::clean("x")); }
        /// A link to [`crate::daemon`] in a comment is not a use.
        struct S;
        mod inner { pub(crate) fn g() -> crate::sim::X { todo!() } }
        #[cfg(test)]
        mod tests { use crate::bridge::Bridge; }
        #[cfg(test)]
        use crate::fleet::Shipper;
    "#;
    let uses: Vec<String> = uses_of(source).unwrap().into_iter().collect();
    assert_eq!(uses, ["cli", "ledger", "money", "sim", "text", "wire"]);
}

#[test]
fn the_rules_refuse_upward_sideways_and_simulator_uses() {
    assert_eq!(forbidden("bridge", "ledger"), None);
    assert_eq!(forbidden("cli", "sim"), None);
    assert!(forbidden("daemon", "cli").is_some());
    assert!(forbidden("bridge", "sim").is_some());
    assert!(forbidden("ledger", "message").is_some());
    assert!(forbidden("wire", "link").is_some());
    assert!(forbidden("newthing", "wire").is_some());
}
