//! The lifecycle state machine, `statemachine/lifecycle.asl.json`, executed by the emulator's ASL
//! interpreter with the lifecycle function's results queued (`integration_tests::moto_sfn`):
//! which states each execution enters, what the function is invoked with, how failures are
//! retried or caught, and how long the Waits hold. The queued results are built with the
//! function's own types from the sample payloads in `events/`.
//!
//! moto's interpreter sleeps for real (Waits and Retry intervals), so the deadlines are a few
//! seconds ahead and the retry test fails twice (retried after 2 s, then 4 s). Only the revoke
//! branch's 60 s `WaitForPropagation` is shortened, in that test's copy of the definition
//! (`propagation_wait_shortened_to`). The whole file runs in about 15 s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use chrono::{DateTime, Utc};
use integration_tests::moto_sfn::{sfn_emulator, TaskResult};
use integration_tests::unique;
use jit_cli::emulator::{ACCOUNT_ID, REGION};
use jit_shared::app::error::ServiceError;
use jit_shared::app::evaluate::{EvaluationTask, RecheckOutput};
use jit_shared::app::lifecycle::{execution_prefix, GrantOutput, Task, TeardownOutput};
use jit_shared::domain::grant::{deadline_text, policy_name};
use jit_shared::domain::ids::RequestId;
use jit_shared::domain::request::AccessRequest;
use jit_shared::domain::status::RequestStatus;
use serde_json::{json, Value};

const ASL: &str = include_str!("../statemachine/lifecycle.asl.json");
const GRANT_SAMPLE: &str = include_str!("../events/lifecycle-grant-task.json");
const EXPIRE_SAMPLE: &str = include_str!("../events/lifecycle-expire-task.json");
const REVOKE_SAMPLE: &str = include_str!("../events/lifecycle-revoke-task.json");
const RECORD_FAILURE_SAMPLE: &str = include_str!("../events/lifecycle-record-failure-task.json");
const RECHECK_SAMPLE: &str = include_str!("../events/evaluate-recheck-at-start-task.json");

/// How long an execution may take here: the longest (two retries and a wait) takes about 9 s.
const FINISHES_WITHIN: Duration = Duration::from_secs(45);

/// moto's Wait sleeps `int(timestamp - now())` whole seconds (`wait_function/timestamp.py`),
/// so it may end up to a second before the timestamp; Step Functions ends it at or after.
const MOTO_WAIT_ROUNDING: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

// ---- the deployed state machine ----

/// One deployment of the state machine, with its own lifecycle function and alert topic.
struct Lifecycle {
    sfn: aws_sdk_sfn::Client,
    state_machine: String,
    function: String,
    /// The evaluate-request function (`RecheckAtStart`).
    evaluate: String,
    topic: String,
}

impl Lifecycle {
    /// The definition as `template.yaml` deploys it: `DefinitionSubstitutions` fill in the
    /// lifecycle and evaluate-request functions' ARNs and the alert topic.
    async fn deploy() -> Self {
        Self::deploy_with(|definition| definition).await
    }

    async fn deploy_with(adjust: impl FnOnce(String) -> String) -> Self {
        let sdk = sfn_emulator().sdk_config().await;
        let topic = aws_sdk_sns::Client::new(&sdk)
            .create_topic()
            .name(unique("jit-alerts"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let function = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", unique("jit-lifecycle"));
        let evaluate = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", unique("jit-evaluate"));
        let definition = adjust(
            ASL.replace("${LifecycleFunctionArn}", &function)
                .replace("${EvaluateFunctionArn}", &evaluate)
                .replace("${AlertTopicArn}", &topic),
        );
        assert!(!definition.contains("${"), "every placeholder is substituted");
        let sfn = aws_sdk_sfn::Client::new(&sdk);
        let state_machine = sfn
            .create_state_machine()
            .name(unique("jit-lifecycle"))
            .definition(definition)
            .role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/jit-lifecycle-state-machine"))
            .send()
            .await
            .unwrap()
            .state_machine_arn;
        Self { sfn, state_machine, function, evaluate, topic }
    }

    /// What the next invocations of the lifecycle function return, in order.
    fn queue(&self, results: impl IntoIterator<Item = TaskResult>) {
        sfn_emulator().queue(&self.function, results);
    }

    /// What the next `RecheckAtStart` invocations of evaluate-request return, in order.
    fn queue_rechecks(&self, results: impl IntoIterator<Item = TaskResult>) {
        sfn_emulator().queue(&self.evaluate, results);
    }

    /// The payloads evaluate-request was invoked with, in order.
    fn recheck_invocations(&self) -> Vec<Value> {
        sfn_emulator().invocations(&self.evaluate)
    }

    /// The payloads the lifecycle function was invoked with, in order.
    fn invocations(&self) -> Vec<Value> {
        sfn_emulator().invocations(&self.function)
    }

    /// The ARN the next execution will have (`$$.Execution.Id`), so that results naming it can
    /// be queued before it starts. Executions are named: EventBridge and the sweeper start
    /// unnamed ones, but moto's interpreter names every unnamed execution `None`.
    fn next_execution(&self) -> String {
        format!("{}{}", execution_prefix(&self.state_machine), unique("execution"))
    }

    async fn start(&self, arn: &str, input: &Value) {
        let name = arn.rsplit(':').next().unwrap();
        let out = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.state_machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(out.execution_arn, arn);
    }

    async fn run(&self, arn: &str, input: &Value) -> Execution {
        self.start(arn, input).await;
        self.finished(arn).await
    }

    async fn history(&self, arn: &str) -> Vec<HistoryEvent> {
        let out = self.sfn.get_execution_history().execution_arn(arn).max_results(1000).send().await.unwrap();
        assert!(out.next_token.is_none(), "the whole history in one page");
        out.events
    }

    /// Polls until the execution has ended (bounded by `FINISHES_WITHIN`).
    async fn finished(&self, arn: &str) -> Execution {
        let started = Instant::now();
        loop {
            let out = self.sfn.describe_execution().execution_arn(arn).send().await.unwrap();
            if out.status != ExecutionStatus::Running {
                return Execution {
                    arn: arn.to_owned(),
                    status: out.status,
                    output: out.output.map(|o| serde_json::from_str(&o).unwrap()),
                    error: out.error,
                    cause: out.cause,
                    history: self.history(arn).await,
                };
            }
            assert!(
                started.elapsed() < FINISHES_WITHIN,
                "{arn} still runs after {FINISHES_WITHIN:?}; entered so far: {:?}",
                states_entered(&self.history(arn).await)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until the execution has entered `state`.
    async fn until_entered(&self, arn: &str, state: &str) {
        let started = Instant::now();
        while !states_entered(&self.history(arn).await).contains(&state.to_owned()) {
            assert!(started.elapsed() < FINISHES_WITHIN, "{arn} did not enter {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The revoke branch's `WaitForPropagation` (60 s, IAM's propagation delay) shortened to
/// `seconds`, nothing else changed: moto's Wait sleeps in real time, and a minute would be most
/// of the suite's run time. The test still measures that the wait lasts what the state says.
fn propagation_wait_shortened_to(seconds: u64) -> impl FnOnce(String) -> String {
    move |definition| {
        let mut asl: Value = serde_json::from_str(&definition).unwrap();
        let wait = &mut asl["States"]["WaitForPropagation"];
        assert_eq!(wait["Type"], "Wait");
        assert_eq!(wait["Seconds"], 60, "the deployed definition waits a minute");
        wait["Seconds"] = json!(seconds);
        asl.to_string()
    }
}

// ---- one execution, as its history tells it ----

struct Execution {
    arn: String,
    status: ExecutionStatus,
    output: Option<Value>,
    error: Option<String>,
    cause: Option<String>,
    history: Vec<HistoryEvent>,
}

/// A `TaskScheduled` event: the state that scheduled it, when, and the call's parameters.
struct Scheduled {
    state: String,
    at: DateTime<Utc>,
    resource_type: String,
    parameters: Value,
}

fn at(event: &HistoryEvent) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(event.timestamp().to_millis().unwrap()).unwrap()
}

fn states_entered(history: &[HistoryEvent]) -> Vec<String> {
    history.iter().filter_map(|e| e.state_entered_event_details()).map(|d| d.name().to_owned()).collect()
}

impl Execution {
    fn states_entered(&self) -> Vec<String> {
        states_entered(&self.history)
    }

    fn scheduled(&self) -> Vec<Scheduled> {
        let mut state = String::new();
        let mut out = vec![];
        for event in &self.history {
            if let Some(entered) = event.state_entered_event_details() {
                entered.name().clone_into(&mut state);
            }
            if let Some(task) = event.task_scheduled_event_details() {
                out.push(Scheduled {
                    state: state.clone(),
                    at: at(event),
                    resource_type: task.resource_type().to_owned(),
                    parameters: serde_json::from_str(task.parameters()).unwrap(),
                });
            }
        }
        out
    }

    fn scheduled_by(&self, state: &str) -> Vec<Scheduled> {
        self.scheduled().into_iter().filter(|s| s.state == state).collect()
    }

    /// `(error, cause)` of every failed task attempt, in order.
    fn task_failures(&self) -> Vec<(String, String)> {
        self.history
            .iter()
            .filter_map(|e| e.task_failed_event_details())
            .map(|d| (d.error().unwrap_or_default().to_owned(), d.cause().unwrap_or_default().to_owned()))
            .collect()
    }

    /// When `state` was entered, and its input.
    fn entered(&self, state: &str) -> (DateTime<Utc>, Value) {
        self.history
            .iter()
            .find_map(|e| {
                let d = e.state_entered_event_details().filter(|d| d.name() == state)?;
                Some((at(e), serde_json::from_str(d.input().unwrap_or("null")).unwrap()))
            })
            .unwrap_or_else(|| panic!("{} never entered {state}", self.arn))
    }

    fn exited(&self, state: &str) -> DateTime<Utc> {
        self.history
            .iter()
            .find(|e| e.state_exited_event_details().is_some_and(|d| d.name() == state))
            .map(at)
            .unwrap_or_else(|| panic!("{} never left {state}", self.arn))
    }

    fn published_alerts(&self) -> usize {
        self.history
            .iter()
            .filter(|e| {
                e.r#type == HistoryEventType::TaskSucceeded
                    && e.task_succeeded_event_details().is_some_and(|d| d.resource_type() == "sns")
            })
            .count()
    }
}

// ---- the lifecycle function's inputs and results ----

/// A deadline `seconds` from now, in whole seconds (the Grant task reports deadlines to the second).
fn deadline_in(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() + seconds, 0).unwrap()
}

/// The sample request (`events/lifecycle-expire-task.json`) as the Grant task of `execution`
/// records it: approved so that its access ends at `deadline`.
fn request_granted_by(execution: &str, id: &RequestId, deadline: DateTime<Utc>) -> AccessRequest {
    let Task::Expire { grant } = serde_json::from_str(EXPIRE_SAMPLE).unwrap() else {
        panic!("the expire sample carries the Grant task's output")
    };
    let mut request = *grant.request;
    request.request_id = id.clone();
    request.approved_at = Some(deadline - chrono::TimeDelta::minutes(i64::from(request.duration_minutes.get())));
    let recorded = request.grant.as_mut().expect("the sample request has its grant recorded");
    recorded.policy_name = policy_name(id);
    recorded.deadline = deadline;
    recorded.execution = Some(execution.to_owned());
    request
}

/// The Grant task's output, as `app::lifecycle::grant` returns it.
fn grant_output(granted: bool, request: &AccessRequest) -> Value {
    serde_json::to_value(GrantOutput::new(granted, &request.access_deadline(), request.clone())).unwrap()
}

fn returns(value: Value) -> TaskResult {
    TaskResult::Returns(value)
}

/// What Expire and Revoke return (`TeardownOutput`).
fn torn_down(id: &RequestId, status: RequestStatus, detached: bool, sessions: &[&str]) -> Value {
    serde_json::to_value(TeardownOutput {
        request_id: id.clone(),
        status,
        detached,
        terminated_sessions: sessions.iter().map(|s| (*s).to_owned()).collect(),
    })
    .unwrap()
}

/// What `recordFailure` returns (`app::lifecycle::run_task`).
fn recorded(id: &RequestId) -> TaskResult {
    returns(json!({ "requestId": id, "recorded": true }))
}

/// The function failing with `error`, reported as `adapters::runtime::diagnostic` reports it.
fn fails(error: &ServiceError) -> TaskResult {
    TaskResult::Fails { error_type: error.lambda_error_type().to_owned(), message: error.to_string() }
}

/// The `$.error` a `Catch` puts on the state: the error type, and the function's error as cause.
fn caught(error: &ServiceError) -> Value {
    json!({
        "Error": error.lambda_error_type(),
        "Cause": format!(
            r#"{{"errorType":{},"errorMessage":{}}}"#,
            Value::from(error.lambda_error_type()),
            Value::from(error.to_string())
        ),
    })
}

/// The function's input is a valid `Task` (what `handle_payload` accepts), with the keys of the
/// sample payload in `events/`.
fn assert_task(payload: &Value, sample: &str) -> Task {
    assert_shape(payload, sample);
    serde_json::from_value(payload.clone()).unwrap_or_else(|e| panic!("{payload} is not a task: {e}"))
}

/// A function's input has the keys of the sample payload in `events/`.
fn assert_shape(payload: &Value, sample: &str) {
    let sample: Value = serde_json::from_str(sample).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(payload), keys(&sample), "{payload} has the shape of the sample");
}

/// What `RecheckAtStart` returns.
/// A scheduled request whose first Grant finds its start `seconds` ahead (and returns
/// `not_yet`), with a deadline 5 seconds from now.
struct NotStartedYet {
    id: RequestId,
    arn: String,
    starts: DateTime<Utc>,
    request: AccessRequest,
    not_yet: Value,
}

impl NotStartedYet {
    fn starting_in(lifecycle: &Lifecycle, seconds: i64) -> Self {
        let id = RequestId::generate();
        let arn = lifecycle.next_execution();
        let starts = deadline_in(seconds);
        let request = request_granted_by(&arn, &id, deadline_in(5));
        let not_yet = serde_json::to_value(GrantOutput {
            starts_at: Some(deadline_text(&starts)),
            ..GrantOutput::new(false, &request.access_deadline(), request.clone())
        })
        .unwrap();
        Self { id, arn, starts, request, not_yet }
    }
}

fn rechecked(permitted: bool, status: RequestStatus) -> Value {
    let reason = (!permitted).then(|| "no longer permitted at its start: the node does not exist".to_owned());
    serde_json::to_value(RecheckOutput { permitted, status, reason }).unwrap()
}

/// The error an alert's message ends with (`States.JsonToString($.error)`).
fn error_in(message: &str) -> Value {
    let (_, error) = message.split_once(" Error: ").unwrap_or_else(|| panic!("no error in {message:?}"));
    serde_json::from_str(error).unwrap()
}

fn approved(id: &RequestId) -> Value {
    json!({ "requestId": id, "status": "Approved" })
}

fn revoked(id: &RequestId) -> Value {
    json!({ "requestId": id, "status": "Revoked" })
}

const SESSION: &str = "operator-0a1b2c3d4e5f67890";

// ---- the grant lifecycle ----

#[tokio::test]
async fn an_approved_request_is_granted_then_expired_with_the_request_its_grant_returned() {
    // Arrange
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let grant = grant_output(true, &request_granted_by(&arn, &id, deadline_in(2)));
    let expired = torn_down(&id, RequestStatus::Expired, true, &[SESSION]);
    lifecycle.queue([returns(grant.clone()), returns(expired.clone())]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(run.states_entered(), ["Route", "Grant", "WasGranted", "WaitUntilDeadline", "Expire"]);
    let invocations = lifecycle.invocations();
    assert_eq!(invocations.len(), 2, "{invocations:?}");
    assert_eq!(
        assert_task(&invocations[0], GRANT_SAMPLE),
        Task::Grant { request_id: id.clone(), execution: Some(arn.clone()), rechecked: false },
        "Grant names the request and its own execution ($$.Execution.Id)"
    );
    assert_task(&invocations[1], EXPIRE_SAMPLE);
    assert_eq!(invocations[1], json!({ "task": "expire", "grant": grant }), "Expire gets the whole Grant output");
    assert_eq!(run.output, Some(expired), "the execution ends with Expire's result");
}

#[tokio::test]
async fn the_expiry_waits_until_the_deadline_the_grant_returned() {
    // Arrange
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let deadline = deadline_in(5);
    lifecycle.queue([
        returns(grant_output(true, &request_granted_by(&arn, &id, deadline))),
        returns(torn_down(&id, RequestStatus::Expired, true, &[])),
    ]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    let (waiting_from, waiting_on) = run.entered("WaitUntilDeadline");
    assert_eq!(waiting_on["deadline"], deadline_text(&deadline), "the Wait reads the Grant's deadline");
    assert!(
        deadline - waiting_from > chrono::TimeDelta::seconds(2),
        "the wait began at {waiting_from}, seconds before the deadline {deadline}"
    );
    let expire = run.scheduled_by("Expire");
    assert_eq!(expire.len(), 1);
    assert!(
        expire[0].at >= deadline - MOTO_WAIT_ROUNDING,
        "Expire was scheduled at {}, before the deadline {deadline} (beyond moto's rounding)",
        expire[0].at
    );
    assert!(
        expire[0].at <= deadline + chrono::TimeDelta::seconds(2),
        "Expire was scheduled at {}, long after the deadline {deadline}",
        expire[0].at
    );
}

#[tokio::test]
async fn a_scheduled_access_waits_for_its_start_is_rechecked_then_and_granted_by_grant_rechecked() {
    // Arrange: the first Grant finds a scheduled request (it returns startsAt, not granted);
    // at the start the recheck permits it, and GrantRechecked grants.
    let lifecycle = Lifecycle::deploy().await;
    let NotStartedYet { id, arn, starts, request, not_yet } = NotStartedYet::starting_in(&lifecycle, 3);
    lifecycle.queue([
        returns(not_yet),
        returns(grant_output(true, &request)),
        returns(torn_down(&id, RequestStatus::Expired, true, &[])),
    ]);
    lifecycle.queue_rechecks([returns(rechecked(true, RequestStatus::Approved))]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?} after {:?}", run.cause, run.states_entered());
    assert_eq!(
        run.states_entered(),
        [
            "Route",
            "Grant",
            "WasGranted",
            "WaitUntilStart",
            "GrantAtStart",
            "RecheckAtStart",
            "StillPermitted",
            "GrantRechecked",
            "WasGranted",
            "WaitUntilDeadline",
            "Expire"
        ]
    );
    let granted = run.scheduled_by("GrantRechecked");
    assert_eq!(granted.len(), 1);
    assert!(
        granted[0].at >= starts - MOTO_WAIT_ROUNDING,
        "GrantRechecked ran at {}, before the start {starts}",
        granted[0].at
    );
    let invocations = lifecycle.invocations();
    let first = assert_task(&invocations[0], GRANT_SAMPLE);
    let second: Task = serde_json::from_value(invocations[1].clone()).unwrap();
    assert_eq!(first, Task::Grant { request_id: id.clone(), execution: Some(arn.clone()), rechecked: false });
    assert_eq!(second, Task::Grant { request_id: id.clone(), execution: Some(arn.clone()), rechecked: true });
    let rechecks = lifecycle.recheck_invocations();
    assert_eq!(rechecks.len(), 1);
    assert_shape(&rechecks[0], RECHECK_SAMPLE);
    let task: EvaluationTask = serde_json::from_value(rechecks[0].clone()).unwrap();
    assert_eq!(task, EvaluationTask::RecheckAtStart { request_id: id.clone() });
    assert!(run.scheduled_by("RecheckAtStart")[0].at >= starts - MOTO_WAIT_ROUNDING, "rechecked at the start");
}

#[tokio::test]
async fn a_scheduled_access_no_longer_permitted_at_its_start_is_not_granted() {
    // Arrange: the first Grant finds the start ahead; at the start the recheck finds the
    // policies no longer grant it (and has revoked it).
    let lifecycle = Lifecycle::deploy().await;
    let NotStartedYet { id, arn, not_yet, .. } = NotStartedYet::starting_in(&lifecycle, 2);
    lifecycle.queue([returns(not_yet)]);
    lifecycle.queue_rechecks([returns(rechecked(false, RequestStatus::Revoked))]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert: no second Grant.
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?} after {:?}", run.cause, run.states_entered());
    assert_eq!(
        run.states_entered(),
        ["Route", "Grant", "WasGranted", "WaitUntilStart", "GrantAtStart", "RecheckAtStart", "StillPermitted", "Done"]
    );
    assert_eq!(lifecycle.invocations().len(), 1, "the lifecycle function ran the first Grant only");
}

#[tokio::test]
async fn a_recheck_that_fails_for_good_grants_nothing_and_records_the_failure() {
    // Arrange: the recheck fails with an error that is not retried.
    let lifecycle = Lifecycle::deploy().await;
    let NotStartedYet { id, arn, not_yet, .. } = NotStartedYet::starting_in(&lifecycle, 2);
    let broken = ServiceError::Internal("the policy set failed to load".into());
    lifecycle.queue([returns(not_yet), recorded(&id)]);
    lifecycle.queue_rechecks([fails(&broken)]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert: fail closed, the way a failed Grant does.
    assert_eq!(run.status, ExecutionStatus::Failed, "{:?}", run.states_entered());
    let entered = run.states_entered();
    assert_eq!(
        entered[entered.len() - 4..],
        ["RecheckAtStart", "AlertGrantFailed", "RecordGrantFailure", "GrantFailed"]
    );
    let record = lifecycle.invocations().pop().unwrap();
    let task = assert_task(&record, RECORD_FAILURE_SAMPLE);
    assert!(matches!(task, Task::RecordFailure { ref failed_task, .. } if failed_task == "grant"), "{task:?}");
}

#[tokio::test]
async fn a_retryable_grant_failure_is_retried_with_backoff_and_the_lifecycle_goes_on() {
    // Arrange
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let throttled = ServiceError::Unavailable("PutUserPolicy: throttled".into());
    let grant = grant_output(true, &request_granted_by(&arn, &id, deadline_in(8)));
    lifecycle.queue([
        fails(&throttled),
        fails(&throttled),
        returns(grant),
        returns(torn_down(&id, RequestStatus::Expired, true, &[])),
    ]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    let cause = caught(&throttled)["Cause"].as_str().unwrap().to_owned();
    assert_eq!(run.task_failures(), [("Retryable".to_owned(), cause.clone()), ("Retryable".to_owned(), cause)]);
    let attempts = run.scheduled_by("Grant");
    assert_eq!(attempts.len(), 3, "two retries");
    assert!(attempts.iter().all(|a| a.parameters == attempts[0].parameters), "each retry is the same call");
    let (first, second) = (attempts[1].at - attempts[0].at, attempts[2].at - attempts[1].at);
    let s = chrono::TimeDelta::seconds;
    assert!(first >= s(2) && first < s(4), "the first retry after IntervalSeconds (2 s): {first}");
    assert!(second >= s(4) && second < s(8), "the second after twice that (BackoffRate 2): {second}");
    assert_eq!(
        run.states_entered(),
        ["Route", "Grant", "WasGranted", "WaitUntilDeadline", "Expire"],
        "a retry stays in its state"
    );
    let invocations = lifecycle.invocations();
    assert_eq!(invocations.len(), 4, "{invocations:?}");
    assert!(invocations[..3].iter().all(|i| i == &invocations[0]), "the function got the same payload three times");
    assert_eq!(invocations[3]["task"], "expire");
}

#[tokio::test]
async fn a_non_retryable_grant_failure_is_alerted_recorded_and_fails_the_lifecycle() {
    // Arrange
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let refused = ServiceError::Internal("JIT_TABLE_NAME is not set".into());
    lifecycle.queue([fails(&refused), recorded(&id)]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("LifecycleFailed"));
    assert_eq!(run.cause.as_deref(), Some("Granting access failed; an alert was published to the alert topic."));
    assert_eq!(run.states_entered(), ["Route", "Grant", "AlertGrantFailed", "RecordGrantFailure", "GrantFailed"]);
    assert_eq!(run.scheduled_by("Grant").len(), 1, "NonRetryable is not retried");
    let alert = run.scheduled_by("AlertGrantFailed");
    assert_eq!(alert.len(), 1);
    assert_eq!(alert[0].resource_type, "sns");
    assert_eq!(alert[0].parameters["TopicArn"], lifecycle.topic.as_str());
    assert_eq!(alert[0].parameters["Subject"], "jit-node-access: granting access failed");
    let message: Value = serde_json::from_str(alert[0].parameters["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message, json!({ "requestId": id, "status": "Approved", "error": caught(&refused) }));
    assert_eq!(run.published_alerts(), 1, "the alert topic took the alert");
    let invocations = lifecycle.invocations();
    assert_eq!(invocations.len(), 2, "{invocations:?}");
    assert_task(&invocations[1], RECORD_FAILURE_SAMPLE);
    assert_eq!(
        invocations[1],
        json!({
            "task": "recordFailure",
            "requestId": id,
            "failedTask": "grant",
            "error": caught(&refused),
            "execution": arn,
        })
    );
}

#[tokio::test]
async fn a_non_retryable_expiry_failure_is_alerted_with_its_request_recorded_and_fails_the_lifecycle() {
    // Arrange
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let refused = ServiceError::Internal("DeleteUserPolicy: AccessDenied".into());
    lifecycle.queue([
        returns(grant_output(true, &request_granted_by(&arn, &id, deadline_in(1)))),
        fails(&refused),
        recorded(&id),
    ]);

    // Act
    let run = lifecycle.run(&arn, &approved(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("LifecycleFailed"));
    assert_eq!(
        run.cause.as_deref(),
        Some("Expiring access failed; an alert was published to the alert topic and access may still be granted.")
    );
    assert_eq!(
        run.states_entered(),
        [
            "Route",
            "Grant",
            "WasGranted",
            "WaitUntilDeadline",
            "Expire",
            "AlertExpireFailed",
            "RecordExpireFailure",
            "ExpireFailed"
        ]
    );
    assert_eq!(run.scheduled_by("Expire").len(), 1, "NonRetryable is not retried");
    let alert = &run.scheduled_by("AlertExpireFailed")[0];
    assert_eq!(alert.parameters["TopicArn"], lifecycle.topic.as_str());
    let message = alert.parameters["Message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Access request {id} could not be expired (the sweeper retries). Error: ")),
        "{message}"
    );
    assert_eq!(error_in(message), caught(&refused));
    assert_eq!(run.published_alerts(), 1);
    let invocations = lifecycle.invocations();
    assert_eq!(invocations.len(), 3, "{invocations:?}");
    assert_task(&invocations[2], RECORD_FAILURE_SAMPLE);
    assert_eq!(
        invocations[2],
        json!({
            "task": "recordFailure",
            "requestId": id,
            "failedTask": "expire",
            "error": caught(&refused),
            "execution": arn,
        }),
        "the request's id comes from the Grant output's request"
    );
}

#[tokio::test]
async fn a_second_execution_for_one_approval_finds_the_grant_held_and_ends_without_expiring() {
    // Arrange: the first execution records the grant; the second (a redelivered Approved
    // event) reads it held by the first
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let (first, second) = (lifecycle.next_execution(), lifecycle.next_execution());
    // (its deadline far enough ahead that the first still waits while the second runs)
    let request = request_granted_by(&first, &id, deadline_in(6));
    let grant = grant_output(true, &request);
    lifecycle.queue([
        returns(grant.clone()),
        returns(grant_output(false, &request)),
        returns(torn_down(&id, RequestStatus::Expired, true, &[])),
    ]);

    // Act
    lifecycle.start(&first, &approved(&id)).await;
    lifecycle.until_entered(&first, "WaitUntilDeadline").await;
    let duplicate = lifecycle.run(&second, &approved(&id)).await;
    let original = lifecycle.finished(&first).await;

    // Assert
    assert_eq!(duplicate.status, ExecutionStatus::Succeeded, "{:?}", duplicate.cause);
    assert_eq!(duplicate.states_entered(), ["Route", "Grant", "WasGranted", "Done"]);
    assert_eq!(original.status, ExecutionStatus::Succeeded, "{:?}", original.cause);
    assert_eq!(original.states_entered(), ["Route", "Grant", "WasGranted", "WaitUntilDeadline", "Expire"]);
    let invocations = lifecycle.invocations();
    assert_eq!(invocations.len(), 3, "{invocations:?}");
    assert_eq!(
        assert_task(&invocations[1], GRANT_SAMPLE),
        Task::Grant { request_id: id.clone(), execution: Some(second.clone()), rechecked: false },
        "the duplicate's Grant names the duplicate"
    );
    assert_eq!(
        invocations.iter().filter(|i| i["task"] == "expire").collect::<Vec<_>>(),
        [&json!({ "task": "expire", "grant": grant })],
        "one expiry, the first execution's"
    );
}

#[tokio::test]
async fn an_execution_the_sweeper_starts_without_a_status_takes_the_grant_path() {
    // Arrange: the sweeper's input (`StepFunctionsExecutions::start`); the request was revoked
    // meanwhile, so its Grant grants nothing
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let mut request = request_granted_by(&arn, &id, deadline_in(60));
    request.status = RequestStatus::Revoked;
    lifecycle.queue([returns(grant_output(false, &request))]);

    // Act
    let run = lifecycle.run(&arn, &json!({ "requestId": id })).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(run.states_entered(), ["Route", "Grant", "WasGranted", "Done"]);
    let invocations = lifecycle.invocations();
    assert_eq!(invocations.len(), 1, "{invocations:?}");
    assert_eq!(
        assert_task(&invocations[0], GRANT_SAMPLE),
        Task::Grant { request_id: id.clone(), execution: Some(arn.clone()), rechecked: false }
    );
}

// ---- the revoke branch ----

#[tokio::test]
async fn a_revoked_request_is_torn_down_then_torn_down_again_after_the_propagation_wait() {
    // Arrange
    let lifecycle = Lifecycle::deploy_with(propagation_wait_shortened_to(2)).await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let first_pass = torn_down(&id, RequestStatus::Revoked, true, &[SESSION]);
    let second_pass = torn_down(&id, RequestStatus::Revoked, false, &["operator-opened-meanwhile"]);
    lifecycle.queue([returns(first_pass.clone()), returns(second_pass.clone())]);

    // Act
    let run = lifecycle.run(&arn, &revoked(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(run.states_entered(), ["Route", "Revoke", "WaitForPropagation", "RevokeAgain"]);
    let invocations = lifecycle.invocations();
    assert_eq!(invocations.len(), 2, "{invocations:?}");
    for (invocation, second_pass) in invocations.iter().zip([false, true]) {
        assert_eq!(assert_task(invocation, REVOKE_SAMPLE), Task::Revoke { request_id: id.clone(), second_pass });
    }
    let waited = run.exited("WaitForPropagation") - run.entered("WaitForPropagation").0;
    assert!(waited >= chrono::TimeDelta::seconds(2), "the passes are the wait's Seconds apart: {waited}");
    assert_eq!(
        run.entered("RevokeAgain").1,
        json!({ "requestId": id, "status": "Revoked", "revoke": { "firstPass": first_pass } }),
        "the first pass's result is kept beside the input"
    );
    assert_eq!(run.output, Some(second_pass), "the execution ends with the second pass's result");
}

#[tokio::test]
async fn a_non_retryable_revoke_failure_is_alerted_and_fails_the_lifecycle() {
    // Arrange
    let lifecycle = Lifecycle::deploy().await;
    let id = RequestId::generate();
    let arn = lifecycle.next_execution();
    let refused = ServiceError::Internal("DeleteUserPolicy: AccessDenied".into());
    lifecycle.queue([fails(&refused)]);

    // Act
    let run = lifecycle.run(&arn, &revoked(&id)).await;

    // Assert
    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("LifecycleFailed"));
    assert_eq!(run.states_entered(), ["Route", "Revoke", "AlertRevokeFailed", "RevokeFailed"]);
    assert_eq!(run.scheduled_by("Revoke").len(), 1, "NonRetryable is not retried");
    let alert = &run.scheduled_by("AlertRevokeFailed")[0];
    assert_eq!(alert.parameters["TopicArn"], lifecycle.topic.as_str());
    let message = alert.parameters["Message"].as_str().unwrap();
    assert!(message.starts_with(&format!("Access request {id} was revoked but its teardown failed")), "{message}");
    assert_eq!(error_in(message), caught(&refused));
    assert_eq!(run.published_alerts(), 1);
    assert_eq!(lifecycle.invocations().len(), 1, "the sweeper, not the state machine, follows up");
}
