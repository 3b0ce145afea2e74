//! Notification Lambda, triggered by the bus rule for Pending, Level Completed and final-status
//! events. Contacts come with the policy set (`contacts.yaml`), bundled at build time.

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::error::ServiceError;
use jit_shared::app::notify::{handle_event, LinkSettings, NotifyDeps};
use jit_shared::config::{signing_key_parameter, MailConfig, StackConfig};
use jit_shared::domain::events::EventEnvelope;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

mod bundled_policies {
    include!(concat!(env!("OUT_DIR"), "/bundled_policies.rs"));
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let mail = MailConfig::from_env()?;
    let parameter = signing_key_parameter()?;
    let contacts = jit_shared::policy::contacts::contacts_of(&bundled_policies::files())?;
    let security_contacts = jit_shared::policy::break_glass::security_contacts_of(&bundled_policies::files())?;
    let sdk = sdk_config(&stack.region).await;
    let key = wiring::signing_key(&sdk, &parameter);
    let store = wiring::store(&sdk, &stack);
    let directory = wiring::principal_directory(&sdk, &stack);
    let mailer = wiring::mailer(&sdk, &mail);
    // Slack, when its bot-token parameter is set: approval requests are posted there too.
    let slack = match jit_shared::config::slack_bot_token_parameter() {
        Some(parameter) => Some(wiring::slack_notifier(&sdk, &parameter, &jit_shared::config::slack_api_url()?)),
        None => None,
    };
    // Teams, when its webhooks parameter is set: each approver with a webhook gets a card too.
    let teams =
        jit_shared::config::teams_webhooks_parameter().map(|parameter| wiring::teams_notifier(&sdk, &parameter));
    // Amazon Q Developer in chat applications, when its topic is set: notices for a shared channel.
    let chat_topic = jit_shared::config::chat_topic_arn()?.map(|arn| wiring::chat_topic(&sdk, &arn));
    let links = LinkSettings {
        api_base_url: mail.api_base_url.clone(),
        account: stack.account_id.clone(),
        region: stack.region.clone(),
    };
    let (key, store, directory, mailer, contacts, links, slack, teams, chat_topic, security_contacts) =
        (&key, &store, &directory, &mailer, &contacts, &links, &slack, &teams, &chat_topic, &security_contacts);
    run(service_fn(move |event: LambdaEvent<EventEnvelope>| async move {
        // A key that cannot be read is retryable or not as the read was: Lambda's retry and the
        // dead-letter queue then handle the mail like any other failure.
        let key = key.get().await.map_err(|e| diagnostic(&ServiceError::from(e), "notification"))?;
        let chat = slack.as_ref().map(|s| s as &dyn jit_shared::ports::ChatNotifier);
        let teams = teams.as_ref().map(|t| t as &dyn jit_shared::ports::TeamsNotifier);
        let chat_topic = chat_topic.as_ref().map(|t| t as &dyn jit_shared::ports::ChatTopic);
        let deps =
            NotifyDeps { store, directory, mailer, contacts, key, links, chat, teams, chat_topic, security_contacts };
        handle_event(&deps, &event.payload, jit_shared::now())
            .await
            .map(|_| ())
            .map_err(|e| diagnostic(&e, "notification"))
    }))
    .await
}
