//! Auto-approval (`permit`) and deny-access (`forbid`) statements from Cedar files.

use cedar_policy::{Effect, Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

use crate::domain::ids::MAX_DURATION_MINUTES;
use crate::policy::manual::LineError;

/// Annotation that names a statement; without it the id is `<file>#<n>` (n counts from 1).
pub const ID_ANNOTATION: &str = "id";
/// Annotation on a `permit` that sets how long auto-approved access lasts, in minutes.
pub const WINDOW_ANNOTATION: &str = "accessWindowMinutes";

/// One statement as loaded, with where it came from.
#[derive(Clone, Debug)]
pub struct Statement {
    pub policy: Policy,
    pub id: String,
    pub effect: Effect,
    pub line: usize,
    pub window_minutes: Option<u32>,
}

pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset.min(text.len())).filter(|b| **b == b'\n').count() + 1
}

fn first_label_line(text: &str, diag: &dyn Diagnostic) -> usize {
    diag.labels().and_then(|mut labels| labels.next()).map_or(1, |l| line_at(text, l.offset()))
}

fn help_of(diag: &dyn Diagnostic, default: &str) -> String {
    diag.help().map_or_else(|| default.to_owned(), |h| h.to_string())
}

/// The form some AWS documentation examples use; it is not valid Cedar.
const AWS_DOC_ACTION_FORM: &str = "AWS::SSM::getTokenForInstanceAccess";

/// A file's statements, with the warnings they load with.
pub type Loaded = (Vec<Statement>, Vec<LineError>);

/// Parses and validates one Cedar file against the schema; returns every problem found. A tag
/// read without `hasTag` first (as in AWS's own documentation example
/// `context.iam.principalTags.getTag("AccessLevel") == "Elevated"`) fails strict validation but
/// is accepted with a warning naming the safer form: where the tag is missing, the statement's
/// evaluation errors, so a `permit` does not apply and a `forbid` still counts (fail closed).
pub fn parse_cedar_file(file: &str, text: &str, validator: &Validator) -> Result<Loaded, Vec<LineError>> {
    let doc_form: Vec<LineError> = text
        .match_indices(AWS_DOC_ACTION_FORM)
        .map(|(offset, _)| LineError {
            line: line_at(text, offset),
            message: format!("'{AWS_DOC_ACTION_FORM}' is not valid Cedar (the form appears in some AWS documentation examples)"),
            fix: "write the action as AWS::SSM::Action::\"getTokenForInstanceAccess\", e.g. action == AWS::SSM::Action::\"getTokenForInstanceAccess\"".into(),
        })
        .collect();
    if !doc_form.is_empty() {
        return Err(doc_form);
    }
    let parsed: PolicySet = text.parse().map_err(|errs: cedar_policy::ParseErrors| {
        errs.iter()
            .map(|e| LineError {
                line: first_label_line(text, e),
                message: format!("Cedar syntax error: {e}"),
                fix: help_of(e, "correct the Cedar syntax at this line"),
            })
            .collect::<Vec<_>>()
    })?;

    // Statements come back keyed policy0, policy1, ... in source order.
    let mut ordered: Vec<(usize, &Policy)> = parsed
        .policies()
        .map(|p| (p.id().to_string().trim_start_matches("policy").parse::<usize>().unwrap_or(usize::MAX), p))
        .collect();
    ordered.sort_by_key(|(n, _)| *n);

    let mut errors = Vec::new();
    let mut statements = Vec::new();
    let mut renamed = PolicySet::new();
    for (position, (_, policy)) in ordered.into_iter().enumerate() {
        let source = policy.to_string();
        let line = text.find(source.trim()).map_or(1, |o| line_at(text, o));
        let id = policy.annotation(ID_ANNOTATION).map_or_else(|| format!("{file}#{}", position + 1), str::to_owned);
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            errors.push(LineError {
                line,
                message: format!("@id(\"{id}\") is not a usable policy id"),
                fix: "use 1 to 128 printable characters".into(),
            });
            continue;
        }
        let window_minutes = match policy.annotation(WINDOW_ANNOTATION) {
            None => None,
            Some(raw) => match raw.parse::<u32>() {
                Ok(m) if (1..=MAX_DURATION_MINUTES).contains(&m) && policy.effect() == Effect::Permit => Some(m),
                Ok(_) if policy.effect() == Effect::Forbid => {
                    errors.push(LineError {
                        line,
                        message: format!("@{WINDOW_ANNOTATION} on deny-access policy '{id}' has no effect"),
                        fix: "remove the annotation: only permit statements grant access".into(),
                    });
                    None
                }
                _ => {
                    errors.push(LineError {
                        line,
                        message: format!("@{WINDOW_ANNOTATION}(\"{raw}\") on '{id}' is not a whole number of minutes from 1 to {MAX_DURATION_MINUTES}"),
                        fix: format!("write e.g. @{WINDOW_ANNOTATION}(\"60\")"),
                    });
                    None
                }
            },
        };
        let effect = policy.effect();
        let policy = policy.new_id(PolicyId::new(&id));
        if renamed.add(policy.clone()).is_err() {
            errors.push(LineError {
                line,
                message: format!("policy id '{id}' is used twice in this file"),
                fix: "give each statement its own @id".into(),
            });
            continue;
        }
        statements.push(Statement { policy, id, effect, line, window_minutes });
    }

    let result = validator.validate(&renamed, ValidationMode::Strict);
    let mut warnings = Vec::new();
    for e in result.validation_errors() {
        if matches!(e, cedar_policy::ValidationError::UnsafeTagAccess(_)) {
            // Cedar reports each enclosing expression of the read; one warning per line says it.
            if warnings.iter().any(|w: &LineError| w.line == first_label_line(text, e)) {
                continue;
            }
            warnings.push(LineError {
                line: first_label_line(text, e),
                message: format!("reads a tag that may be absent ({e}); where it is absent this statement errors, so a permit does not apply and a forbid still counts"),
                fix: "test for the tag first: x.hasTag(\"Key\") && x.getTag(\"Key\") == \"Value\"".into(),
            });
            continue;
        }
        errors.push(LineError {
            line: first_label_line(text, e),
            message: format!("does not match the jit-node-access schema: {e}"),
            fix: help_of(e, "use only the entity types, attributes and action of the schema (see docs/policies.md)"),
        });
    }
    if errors.is_empty() {
        Ok((statements, warnings))
    } else {
        Err(errors)
    }
}

pub fn validator(schema: &Schema) -> Validator {
    Validator::new(schema.clone())
}
