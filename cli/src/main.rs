//! `jit`: policy tooling for administrators and the local stack for everyone.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jit_cli::policy_cmds::{self, ExplainInput};

#[derive(Parser)]
#[command(
    name = "jit",
    version,
    about = "jit-node-access: request, approve and connect to nodes just in time; the web console; policy tooling; the local stack"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with a policy set offline.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run the whole system locally against the moto emulator (see README).
    Dev(jit_cli::local::DevArgs),
    /// Serve a web UI on 127.0.0.1 that calls the API with your own credentials (docs/console.md).
    Console(jit_cli::console::ConsoleArgs),
    /// Walk through the four decision outcomes, a two-level mail approval and a Slack approval against `jit dev`.
    Demo(jit_cli::demo::DemoArgs),
    /// Play Slack for the local stack: press a button of a message the notifier posted (docs/chat.md).
    Slack {
        #[command(subcommand)]
        command: jit_cli::slack::SlackCommand,
    },
    #[command(flatten)]
    Operator(jit_cli::ops::OperatorCommand),
    /// Print the SNS email subscriptions (with per-person filter policies) for contacts.yaml.
    Contacts {
        /// Policy directory holding contacts.yaml.
        #[arg(long, default_value = "policies")]
        policies: std::path::PathBuf,
        /// The stack's ApproverMailTopicArn output.
        #[arg(long)]
        approver_topic: String,
        /// The stack's RequesterMailTopicArn output.
        #[arg(long)]
        requester_topic: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy directory against the schema, the limits and itself.
    Validate {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Decide a request offline and print the outcome and the deciding policies.
    Explain {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// IAM user ARN, assumed-role ARN, or identity-center:<user id>.
        #[arg(long)]
        principal: String,
        /// IAM group name or ARN, or Identity Center group id (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Identity Center user attribute, KEY=VALUE (repeatable).
        #[arg(long = "attribute", value_parser = policy_cmds::parse_pair)]
        attributes: Vec<(String, String)>,
        /// IAM principal tag, KEY=VALUE (repeatable).
        #[arg(long = "principal-tag", value_parser = policy_cmds::parse_pair)]
        principal_tags: Vec<(String, String)>,
        /// Node id (i-… or mi-…).
        #[arg(long)]
        node: String,
        /// Node tag, KEY=VALUE (repeatable).
        #[arg(long = "tag", value_parser = policy_cmds::parse_pair)]
        tags: Vec<(String, String)>,
        /// Requested duration in minutes.
        #[arg(long, default_value_t = 60)]
        duration: u32,
        /// Decide as at this instant (RFC 3339, e.g. 2026-12-02T03:00:00Z) instead of now: what
        /// `context.requestTime` and `context.local` see.
        #[arg(long)]
        at: Option<String>,
        /// The time zone of `context.local` (the stack's PolicyTimeZone; an IANA name).
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Decide a break-glass request (`breakGlass: true`): membership, `context.breakGlass`
        /// forbids, the maximum.
        #[arg(long)]
        break_glass: bool,
        /// Print the decision record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the Cedar schema policies are validated against.
    Schema,
    /// Write the IAM documents the stack generates (grants, session policies, a revoke's deny)
    /// for a sample request, one JSON file each, to review them or lint them.
    IamDocuments {
        #[arg(long, default_value = "target/iam-documents")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy { command: PolicyCommand::Validate { dir } } => match policy_cmds::validate(&dir) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    policies,
                    principal,
                    groups,
                    attributes,
                    principal_tags,
                    node,
                    tags,
                    duration,
                    at,
                    time_zone,
                    break_glass,
                    json,
                },
        } => {
            let input = ExplainInput {
                principal,
                groups,
                attributes,
                principal_tags,
                node_id: node,
                node_tags: tags,
                duration_minutes: duration,
                at,
                time_zone,
                break_glass,
            };
            match policy_cmds::explain(&policies, &input) {
                Ok(d) if json => {
                    println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(d) => {
                    print!("{}", policy_cmds::render_decision(&d));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Policy { command: PolicyCommand::IamDocuments { out } } => {
            let written = policy_cmds::iam_documents().and_then(|docs| {
                std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
                for (name, doc) in &docs {
                    let path = out.join(format!("{name}.json"));
                    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
                    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
                    println!("{}", path.display());
                }
                Ok(())
            });
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Policy { command: PolicyCommand::Schema } => {
            print!("{}", jit_shared::policy::policy_set::schema_text());
            ExitCode::SUCCESS
        }
        Command::Dev(args) => jit_cli::local::run_dev(args),
        Command::Demo(args) => jit_cli::demo::run_demo(args),
        Command::Slack { command } => jit_cli::slack::run(command),
        Command::Operator(command) => jit_cli::ops::run(command, <Cli as clap::CommandFactory>::command),
        Command::Console(args) => jit_cli::console::run_console(args),
        Command::Contacts { policies, approver_topic, requester_topic } => {
            match jit_shared::policy::PolicySet::load_dir(&policies) {
                Ok(set) => {
                    print!(
                        "{}",
                        jit_cli::policy_cmds::subscription_commands(set.contacts(), &approver_topic, &requester_topic)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
