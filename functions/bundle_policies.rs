//! Bundles the policy set into the binary: the set is deployed with the function and read at
//! cold start. `JIT_POLICY_DIR` picks the directory (default: the repository's `policies/`).

use std::path::{Path, PathBuf};
use std::{env, fs};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "cedar" || e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dir = env::var("JIT_POLICY_DIR").map(PathBuf::from).unwrap_or_else(|_| manifest.join("../../policies"));
    println!("cargo:rerun-if-env-changed=JIT_POLICY_DIR");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    let mut code = String::from("pub fn files() -> Vec<jit_shared::policy::PolicyFile> {\n    vec![\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f.strip_prefix(&dir).unwrap_or(f).to_string_lossy().replace('\\', "/");
        let abs = fs::canonicalize(f).unwrap_or_else(|_| f.clone());
        code.push_str(&format!(
            "        jit_shared::policy::PolicyFile {{ path: {rel:?}.to_owned(), text: include_str!({:?}).to_owned() }},\n",
            abs.display().to_string()
        ));
    }
    code.push_str("    ]\n}\n");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default()).join("bundled_policies.rs");
    if let Err(e) = fs::write(&out, code) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
}
