//! Loading a policy set: every Cedar file and manual-approval YAML file of a directory, checked
//! against the schema, the limits and each other before anything is decided with it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use cedar_policy::{Effect, Schema};

use crate::policy::cedar_statements::{self, Statement};
use crate::policy::contacts::{parse_contacts, Contact, CONTACTS_FILE};
use crate::policy::manual::{self, ManualPolicy, TagTarget, Targets};
use crate::policy::statement_index::StatementIndex;

/// How long auto-approved access lasts when the permit carries no `@accessWindowMinutes`.
pub const DEFAULT_AUTO_APPROVAL_WINDOW_MINUTES: u32 = 60;

const SCHEMA_TEXT: &str = include_str!("jitna.cedarschema");
/// The same schema in Cedar's JSON form, which loads in a fraction of the time the
/// human-readable form takes to parse (about 0.7 ms against 4 ms at a cold start, most of
/// evaluate-request's). `jitna.cedarschema` is the source: a test checks the two agree and
/// writes this file again when run with `JIT_WRITE_SCHEMA_JSON=1`.
const SCHEMA_JSON: &str = include_str!("jitna.cedarschema.json");

/// The schema text, for `jit policy schema` and the docs.
pub fn schema_text() -> &'static str {
    SCHEMA_TEXT
}

pub fn load_schema() -> Result<Schema, PolicySetError> {
    Schema::from_json_str(SCHEMA_JSON).map_err(|e| {
        PolicySetError(vec![PolicyLoadError {
            file: "<built-in schema>".into(),
            line: 1,
            message: e.to_string(),
            fix: "this is a bug in jit-node-access".into(),
        }])
    })
}

impl PolicySetError {
    /// The problems `errors` found in `file`.
    pub fn in_file(file: &str, errors: Vec<manual::LineError>) -> Self {
        Self(errors.into_iter().map(|e| e.located(file)).collect())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLoadError {
    pub file: String,
    pub line: usize,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}\n    fix: {}", self.file, self.line, self.message, self.fix)
    }
}

/// Every problem found in a policy set; the set is refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicySetError(pub Vec<PolicyLoadError>);

impl fmt::Display for PolicySetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the policy set is invalid ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Where a Cedar statement came from and what it sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementInfo {
    pub id: String,
    pub effect: Effect,
    pub file: String,
    pub line: usize,
    pub window_minutes: Option<u32>,
}

/// A loaded, validated policy set. Cheap to share across requests.
#[derive(Clone, Debug)]
pub struct PolicySet {
    pub(crate) index: StatementIndex,
    pub(crate) schema: Arc<Schema>,
    pub(crate) statements: BTreeMap<String, StatementInfo>,
    pub(crate) manual: Vec<ManualPolicy>,
    pub(crate) contacts: Vec<Contact>,
    pub(crate) warnings: Vec<PolicyLoadError>,
    /// The zone of `context.local` (`with_time_zone`; UTC by default).
    pub(crate) time_zone: crate::policy::local_time::PolicyTimeZone,
    /// `break-glass.yaml`; `None`: nobody can break glass.
    pub(crate) break_glass: Option<crate::policy::break_glass::BreakGlass>,
}

/// One file of a policy set: its path relative to the set's root, and its text.
#[derive(Clone, Debug)]
pub struct PolicyFile {
    pub path: String,
    pub text: String,
}

impl PolicySet {
    /// Policies read `context.local` in this zone (the stack's `PolicyTimeZone`).
    #[must_use]
    pub fn with_time_zone(mut self, zone: crate::policy::local_time::PolicyTimeZone) -> Self {
        self.time_zone = zone;
        self
    }

    pub fn statements(&self) -> impl Iterator<Item = &StatementInfo> {
        self.statements.values()
    }
    pub fn manual_policies(&self) -> &[ManualPolicy] {
        &self.manual
    }
    /// Who may break glass, for how long, reviewed how soon (`break-glass.yaml`).
    pub fn break_glass(&self) -> Option<&crate::policy::break_glass::BreakGlass> {
        self.break_glass.as_ref()
    }
    /// The people mail goes to (`contacts.yaml`; empty when the file is absent).
    pub fn contacts(&self) -> &[Contact] {
        &self.contacts
    }
    pub fn statement(&self, id: &str) -> Option<&StatementInfo> {
        self.statements.get(id)
    }
    /// What loaded but deserves a fix (a tag read without `hasTag`, say); logged at load.
    pub fn warnings(&self) -> &[PolicyLoadError] {
        &self.warnings
    }

    /// Reads every `*.cedar`, `*.yaml` and `*.yml` file under `dir` (sorted, recursively).
    pub fn load_dir(dir: &Path) -> Result<Self, PolicySetError> {
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files).map_err(|e| {
            PolicySetError(vec![PolicyLoadError {
                file: dir.display().to_string(),
                line: 1,
                message: format!("cannot read the policy directory: {e}"),
                fix: "pass a readable directory of .cedar and .yaml files".into(),
            }])
        })?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Self::from_files(&files)
    }

    pub fn from_files(files: &[PolicyFile]) -> Result<Self, PolicySetError> {
        let schema = load_schema()?;
        let validator = cedar_statements::validator(&schema);
        let mut errors = Vec::new();
        let mut cedar = cedar_policy::PolicySet::new();
        let mut index = StatementIndex::default();
        let mut statements: BTreeMap<String, StatementInfo> = BTreeMap::new();
        let mut manual = Vec::new();
        let mut contacts = Vec::new();
        let mut warnings = Vec::new();
        let mut break_glass = None;
        let located = |file: &str, e: manual::LineError| e.located(file);

        for f in files {
            if f.path == CONTACTS_FILE {
                match parse_contacts(&f.text) {
                    Ok(list) => contacts = list,
                    Err(list) => errors.extend(list.into_iter().map(|e| located(&f.path, e))),
                }
            } else if f.path == crate::policy::break_glass::BREAK_GLASS_FILE {
                match crate::policy::break_glass::parse_break_glass(&f.text) {
                    Ok(settings) => break_glass = Some(settings),
                    Err(list) => errors.extend(list.into_iter().map(|e| located(&f.path, e))),
                }
            } else if f.path.ends_with(".cedar") {
                match cedar_statements::parse_cedar_file(&f.path, &f.text, &validator) {
                    Ok((list, warned)) => {
                        warnings.extend(warned.into_iter().map(|w| located(&f.path, w)));
                        for Statement { policy, id, effect, line, window_minutes } in list {
                            if let Some(first) = statements.get(&id) {
                                errors.push(PolicyLoadError {
                                    file: f.path.clone(),
                                    line,
                                    message: format!(
                                        "policy id '{id}' is already used at {}:{}",
                                        first.file, first.line
                                    ),
                                    fix: "give each statement a unique @id".into(),
                                });
                                continue;
                            }
                            if cedar.add(policy.clone()).is_err() {
                                errors.push(PolicyLoadError {
                                    file: f.path.clone(),
                                    line,
                                    message: format!("policy id '{id}' clashes with another statement"),
                                    fix: "give each statement a unique @id".into(),
                                });
                                continue;
                            }
                            index.add(policy);
                            statements.insert(
                                id.clone(),
                                StatementInfo { id, effect, file: f.path.clone(), line, window_minutes },
                            );
                        }
                    }
                    Err(list) => errors.extend(list.into_iter().map(|e| located(&f.path, e))),
                }
            } else if f.path.ends_with(".yaml") || f.path.ends_with(".yml") {
                match manual::parse_manual_policy(&f.path, &f.text) {
                    Ok(p) => manual.push(p),
                    Err(list) => errors.extend(list.into_iter().map(|e| located(&f.path, e))),
                }
            }
        }
        errors.extend(manual_conflicts(&manual));
        if statements.is_empty() && manual.is_empty() && errors.is_empty() {
            errors.push(PolicyLoadError {
                file: "<policy set>".into(),
                line: 1,
                message: "the policy set has no policies, so every request would fail".into(),
                fix: "add at least one .cedar auto-approval policy or one .yaml manual-approval policy".into(),
            });
        }
        if errors.is_empty() {
            for w in &warnings {
                tracing::warn!(file = %w.file, line = w.line, message = %w.message, fix = %w.fix, "policy warning");
            }
            Ok(Self {
                index,
                schema: Arc::new(schema),
                statements,
                manual,
                contacts,
                warnings,
                time_zone: crate::policy::local_time::PolicyTimeZone::default(),
                break_glass,
            })
        } else {
            Err(PolicySetError(errors))
        }
    }
}

/// Two manual policies may not claim the same tag, two may not both cover all nodes, and names
/// are unique: AWS only finds such overlaps when a request fails; we refuse them at load.
/// Policies limited to disjoint accounts do not overlap; an all-nodes policy limited to some
/// accounts may sit beside one for every account (the limited one wins in its accounts).
fn manual_conflicts(manual: &[ManualPolicy]) -> Vec<PolicyLoadError> {
    let mut errors = Vec::new();
    let mut names: BTreeMap<&str, &ManualPolicy> = BTreeMap::new();
    let mut tags: BTreeMap<&TagTarget, Vec<(&ManualPolicy, usize)>> = BTreeMap::new();
    let mut all_nodes: Vec<&ManualPolicy> = Vec::new();
    for p in manual {
        if let Some(first) = names.insert(&p.name, p) {
            errors.push(PolicyLoadError {
                file: p.file.clone(),
                line: p.line,
                message: format!("manual policy name '{}' is already used in {}:{}", p.name, first.file, first.line),
                fix: "give each manual-approval policy a unique name".into(),
            });
        }
        match &p.targets {
            Targets::AllNodes => {
                let clash = all_nodes.iter().find(|q| {
                    (q.accounts.is_empty() && p.accounts.is_empty())
                        || (!q.accounts.is_empty() && !p.accounts.is_empty() && q.accounts_overlap(p))
                });
                if let Some(first) = clash {
                    errors.push(PolicyLoadError {
                        file: p.file.clone(),
                        line: p.target_lines.first().copied().unwrap_or(p.line),
                        message: format!(
                            "manual policies '{}' and '{}' ({}) both target all nodes",
                            first.name, p.name, first.file
                        ),
                        fix: "keep one all-nodes policy per account; give the other tag targets or other accounts"
                            .into(),
                    });
                } else {
                    all_nodes.push(p);
                }
            }
            Targets::Tags(list) => {
                for (i, t) in list.iter().enumerate() {
                    let line = p.target_lines.get(i).copied().unwrap_or(p.line);
                    let earlier = tags.entry(t).or_default();
                    if let Some((first, first_line)) = earlier.iter().find(|(q, _)| q.accounts_overlap(p)) {
                        errors.push(PolicyLoadError {
                            file: p.file.clone(),
                            line,
                            message: format!(
                                "manual policies '{}' ({}:{}) and '{}' both target tag {}={}, so requests for such nodes would fail",
                                first.name, first.file, first_line, p.name, t.key, t.value
                            ),
                            fix: "let exactly one manual-approval policy target each tag key/value".into(),
                        });
                    } else {
                        earlier.push((p, line));
                    }
                }
            }
        }
    }
    errors
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PolicyFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
            continue;
        }
        let name = path.to_string_lossy();
        if name.ends_with(".cedar") || name.ends_with(".yaml") || name.ends_with(".yml") {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push(PolicyFile { path: rel, text: std::fs::read_to_string(&path)? });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    const WRITE: &str = "JIT_WRITE_SCHEMA_JSON";

    #[test]
    fn the_json_schema_loaded_at_a_cold_start_is_the_cedarschema_converted() {
        let (fragment, _warnings) =
            cedar_policy::SchemaFragment::from_cedarschema_str(super::SCHEMA_TEXT).expect("jitna.cedarschema parses");
        let printed = fragment.to_cedarschema().expect("the schema prints");
        let converted = fragment.to_json_value().expect("the schema converts to JSON");
        if std::env::var_os(WRITE).is_some() {
            assert!(std::env::var_os("CI").is_none(), "{WRITE} rewrites the schema; CI only checks it");
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/policy/jitna.cedarschema.json");
            let text = serde_json::to_string_pretty(&converted).expect("JSON text") + "\n";
            std::fs::write(path, text).expect("jitna.cedarschema.json written");
            return;
        }

        let committed: serde_json::Value = serde_json::from_str(super::SCHEMA_JSON).expect("the committed JSON parses");

        assert_eq!(
            committed, converted,
            "jitna.cedarschema.json is not jitna.cedarschema: run `{WRITE}=1 cargo test -p jit-shared --lib the_json_schema`"
        );
        let back =
            cedar_policy::SchemaFragment::from_json_str(super::SCHEMA_JSON).expect("the committed JSON is a schema");
        assert_eq!(back.to_cedarschema().expect("it prints"), printed, "read back, the JSON is the same schema");
        assert!(super::load_schema().is_ok());
    }
}
