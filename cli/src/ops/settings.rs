//! Where the operator commands find the API, its Region and the credentials to sign with.
//!
//! The API URL: `--api-url`, else `JIT_API_URL`, else the config file `jit configure` writes, else
//! `.jit/dev.env` in the current directory (written by `make dev`; only a loopback URL is taken
//! from it). The Region (the API's, which signs): `--region`, else the one an `execute-api` URL
//! names, else the one stored with the URL (config file or `.jit/dev.env`), else the AWS chain
//! (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`). Credentials: the profile of
//! `--profile`, else the standard AWS chain (environment, `AWS_PROFILE` or `default`, IAM Identity
//! Center, credential_process, …), else the config file's profile; with `.jit/dev.env`, the static
//! keys of the named profile (else the first) of its credentials file.

use std::path::{Path, PathBuf};

use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use serde::{Deserialize, Serialize};

use crate::api::{self, Api};

/// The file `make dev` writes, relative to the current directory.
pub const DEV_ENV: &str = ".jit/dev.env";
/// The config file's place under the user's configuration directory.
const CONFIG_DIR: &str = "jit-node-access";
const CONFIG_FILE: &str = "config.json";

/// Where the API is and whom to sign as: the flags every API command takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ApiArgs {
    /// The API's base URL [default: $JIT_API_URL, then `jit configure`'s, then .jit/dev.env's]
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// The API's AWS Region, which signs the requests [default: the URL's, the configured one, then the AWS chain's]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The AWS profile to sign with (any kind: keys, IAM Identity Center, credential_process, role)
    /// [default: the AWS chain: environment, $AWS_PROFILE, then `jit configure`'s]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
}

/// `jit configure`'s file: `~/.config/jit-node-access/config.json` (or `$XDG_CONFIG_HOME/…`,
/// `%APPDATA%\jit-node-access\config.json`; `JIT_CONFIG` names another file). Also the flags of
/// `jit configure`, where an empty value removes the key.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ConfigFile {
    /// The API's base URL (https://…; http only for 127.0.0.1). An empty value forgets it.
    #[arg(long, value_name = "URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The API's Region. An empty value forgets it.
    #[arg(long, value_name = "REGION")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AWS profile to sign with. An empty value forgets it.
    #[arg(long, value_name = "PROFILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The stack's session document (SessionDocumentName), for attach-mode `jit connect`. An empty
    /// value forgets it.
    #[arg(long, value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_name: Option<String>,
}

/// Why no client could be made. The exit status tells them apart (docs/cli.md): what the user
/// passes is theirs to fix (usage), a broken setup is not a usage mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// Nothing says where the API is (no URL or Region), or a URL or flag is wrong.
    Usage(String),
    /// The setup around the command failed: the config file, the credentials, the root certificates.
    Environment(String),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(message) | Self::Environment(message) => f.write_str(message),
        }
    }
}

/// For callers that only print the message (`jit console`).
impl From<SetupError> for String {
    fn from(e: SetupError) -> Self {
        e.to_string()
    }
}

/// Reads an environment variable; a seam so resolution can be tested without the process's own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The config file's path, if a home or config directory is known.
pub fn config_path(env: Env<'_>) -> Option<PathBuf> {
    if let Some(path) = env("JIT_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")))
        .or_else(|| env("APPDATA").map(PathBuf::from))?;
    Some(base.join(CONFIG_DIR).join(CONFIG_FILE))
}

/// The config file; a missing file is an empty configuration.
pub fn load_config(path: &Path) -> Result<ConfigFile, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{}: {e} (fix or delete it, or write it again with `jit configure`)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

pub fn save_config(path: &Path, config: &ConfigFile) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(config).map_err(|e| e.to_string())?;
    std::fs::write(path, format!("{text}\n")).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// What `make dev` wrote to `.jit/dev.env`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevEnv {
    pub path: PathBuf,
    pub api_url: Option<String>,
    pub region: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

/// `.jit/dev.env` under `dir`, if there is one.
pub fn read_dev_env(dir: &Path) -> Option<DevEnv> {
    let path = dir.join(DEV_ENV);
    let text = std::fs::read_to_string(&path).ok()?;
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.trim().split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    Some(DevEnv {
        api_url: value("JIT_API_URL"),
        region: value("AWS_REGION"),
        credentials_file: value("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from),
        path,
    })
}

/// The first `[profile]` of a credentials file.
fn first_profile(credentials_file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(credentials_file)
        .map_err(|e| format!("reading {} (named by {DEV_ENV}): {e}", credentials_file.display()))?;
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix('[').and_then(|l| l.strip_suffix(']')).map(str::to_owned))
        .ok_or_else(|| format!("{} has no [profile]: run `make dev` again", credentials_file.display()))
}

/// The static keys of `profile` (else the first profile) of `make dev`'s credentials file, and the
/// profile's name. Only `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token` are
/// read, never through the AWS profile provider: the file comes with the current directory (a
/// cloned repository may carry one), so its `credential_process`, `source_profile`, SSO settings
/// and the like must not run anything. `make dev` writes static keys only.
fn local_credentials(file: &Path, profile: Option<&str>) -> Result<(String, Credentials), String> {
    let name = match profile {
        Some(name) => name.to_owned(),
        None => first_profile(file)?,
    };
    let keys = crate::client::read_profile(file, &name).map_err(|e| {
        format!("{e} with static keys (aws_access_key_id, aws_secret_access_key): only those are read from {DEV_ENV}'s credentials file")
    })?;
    let credentials =
        Credentials::new(keys.access_key_id, keys.secret_access_key, keys.session_token, None, "jit-dev-env");
    Ok((name, credentials))
}

/// Where the API URL came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlSource {
    Flag,
    Environment,
    ConfigFile(PathBuf),
    DevEnv(PathBuf),
}

impl std::fmt::Display for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => write!(f, "--api-url"),
            Self::Environment => write!(f, "JIT_API_URL"),
            Self::ConfigFile(p) | Self::DevEnv(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Everything decided before asking the AWS chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub api_url: String,
    pub url_source: UrlSource,
    /// Known without the AWS chain; `None`: ask it.
    pub region: Option<String>,
    /// A profile to sign with, overriding the chain's environment credentials; with `local_keys`,
    /// the profile of that file (`None`: its first).
    pub profile: Option<String>,
    /// `make dev`'s credentials file (named by `.jit/dev.env`): its static keys sign, in place of
    /// the AWS chain and profile provider.
    pub local_keys: Option<PathBuf>,
    pub document_name: Option<String>,
}

/// Decides the API URL, and what of the Region and profile is known, from the flags, the
/// environment, the config file and `.jit/dev.env`. An error is a usage error: it says what to pass.
pub fn resolve(args: &ApiArgs, env: Env<'_>, config: &ConfigFile, dev: Option<&DevEnv>) -> Result<Settings, String> {
    let config_source = || UrlSource::ConfigFile(config_path(env).unwrap_or_default());
    let (raw_url, url_source) = if let Some(url) = &args.api_url {
        (url.clone(), UrlSource::Flag)
    } else if let Some(url) = env("JIT_API_URL") {
        (url, UrlSource::Environment)
    } else if let Some(url) = &config.api_url {
        (url.clone(), config_source())
    } else if let Some((url, dev)) = dev.and_then(|d| d.api_url.clone().map(|u| (u, d))) {
        (url, UrlSource::DevEnv(dev.path.clone()))
    } else {
        return Err(format!(
            "no API URL: pass --api-url https://<api-id>.execute-api.<region>.amazonaws.com, set JIT_API_URL, \
             save it once with `jit configure --api-url …`, or run `make dev` and call jit from the checkout \
             (it reads {DEV_ENV})"
        ));
    };
    let from_dev = match &url_source {
        UrlSource::DevEnv(_) => dev,
        _ => None,
    };
    let checked = api::check_api_url(&raw_url);
    // `make dev` always writes a loopback URL; another one in a checkout's file is not the local stack.
    if from_dev.is_some() && !checked.as_ref().is_ok_and(|url| api::is_local(url)) {
        return Err(format!(
            "API URL (from {url_source}): '{raw_url}' is not a loopback address, and only the local stack's \
             (http://127.0.0.1:…, written by `make dev`) is taken from {DEV_ENV}: pass --api-url, set JIT_API_URL \
             or save it with `jit configure --api-url …`"
        ));
    }
    let api_url = checked.map_err(|e| format!("API URL (from {url_source}): {e}"))?;
    let config_region = match &url_source {
        UrlSource::ConfigFile(_) => config.region.clone(),
        // A Region configured on its own (no URL) still applies to a URL from elsewhere.
        UrlSource::Flag | UrlSource::Environment if config.api_url.is_none() => config.region.clone(),
        _ => None,
    };
    let region = args
        .region
        .clone()
        .or_else(|| api::region_of_url(&api_url))
        .or_else(|| from_dev.and_then(|d| d.region.clone()))
        .or(config_region);
    let env_keys = env("AWS_ACCESS_KEY_ID").is_some();
    // The local stack's keys, unless the environment names its own credentials file, or its own
    // keys and no --profile (they win, as in the AWS chain).
    let local_keys = from_dev
        .filter(|_| env("AWS_SHARED_CREDENTIALS_FILE").is_none() && (args.profile.is_some() || !env_keys))
        .and_then(|d| d.credentials_file.clone());
    let profile = if args.profile.is_some() {
        args.profile.clone()
    } else if local_keys.is_some() {
        env("AWS_PROFILE")
    } else if env("AWS_PROFILE").is_some() || env_keys {
        None
    } else {
        config.profile.clone()
    };
    Ok(Settings { api_url, url_source, region, profile, local_keys, document_name: config.document_name.clone() })
}

/// The settings of this process: its flags, environment, config file and current directory.
pub fn resolve_here(args: &ApiArgs) -> Result<Settings, SetupError> {
    resolve_in(args, &process_env, std::env::current_dir().ok().as_deref())
}

/// The settings of `args` with the environment `env`, called from `dir` (where `.jit/dev.env` is read).
pub fn resolve_in(args: &ApiArgs, env: Env<'_>, dir: Option<&Path>) -> Result<Settings, SetupError> {
    let config = match config_path(env) {
        Some(path) => load_config(&path).map_err(SetupError::Environment)?,
        None => ConfigFile::default(),
    };
    let dev = dir.and_then(read_dev_env);
    resolve(args, env, &config, dev.as_ref()).map_err(SetupError::Usage)
}

/// The Region from the AWS chain: `AWS_REGION` / `AWS_DEFAULT_REGION`, then the profile's.
async fn chain_region(settings: &Settings) -> Option<String> {
    let from_env = aws_config::environment::region::EnvironmentVariableRegionProvider::new().region().await;
    if let Some(region) = from_env {
        return Some(region.to_string());
    }
    let mut builder = aws_config::profile::ProfileFileRegionProvider::builder();
    if let Some(profile) = settings.profile.as_ref().filter(|_| settings.local_keys.is_none()) {
        builder = builder.profile_name(profile);
    }
    builder.build().region().await.map(|r| r.to_string())
}

/// The signed client these settings describe.
pub async fn connect(settings: &Settings) -> Result<Api, SetupError> {
    let region = match &settings.region {
        Some(region) => region.clone(),
        // Like a missing URL, nothing says where the API is: the user passes it.
        None => chain_region(settings).await.ok_or_else(|| {
            SetupError::Usage(
                "no Region: pass --region (the API's Region), set AWS_REGION, or save it with `jit configure --region …`"
                    .to_owned(),
            )
        })?,
    };
    // `resolve` checked the URL, so what `Api::new` can still fail on is the TLS setup.
    let client = |provider| Api::new(&settings.api_url, &region, provider).map_err(SetupError::Environment);
    if let Some(file) = &settings.local_keys {
        let (profile, credentials) =
            local_credentials(file, settings.profile.as_deref()).map_err(SetupError::Environment)?;
        let source = format!("profile '{profile}' of {} (its static keys)", file.display());
        return Ok(client(SharedCredentialsProvider::new(credentials))?.credentials_from(source));
    }
    let provider = match &settings.profile {
        // A named profile wins over credentials in the environment, as with the AWS CLI's --profile.
        Some(profile) => {
            let builder = ProfileFileCredentialsProvider::builder()
                .configure(&ProviderConfig::without_region().with_region(Some(Region::new(region.clone()))))
                .profile_name(profile);
            SharedCredentialsProvider::new(builder.build())
        }
        None => {
            let loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.clone()));
            loader.load().await.credentials_provider().ok_or_else(|| {
                SetupError::Environment(
                    "no AWS credentials provider: pass --profile, or set AWS_PROFILE or AWS_ACCESS_KEY_ID".to_owned(),
                )
            })?
        }
    };
    let source = match &settings.profile {
        Some(profile) => format!(
            "profile '{profile}' (~/.aws/config, ~/.aws/credentials or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)"
        ),
        None => "the AWS credential chain (environment, AWS_PROFILE or the default profile, instance role)".to_owned(),
    };
    Ok(client(provider)?.credentials_from(source))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    fn dev() -> DevEnv {
        DevEnv {
            path: PathBuf::from(".jit/dev.env"),
            api_url: Some("http://127.0.0.1:8080".into()),
            region: Some("us-east-1".into()),
            credentials_file: Some(PathBuf::from("/nonexistent/credentials")),
        }
    }

    #[test]
    fn the_flag_beats_the_environment_which_beats_the_config_file_which_beats_dev_env() {
        let config = ConfigFile { api_url: Some("https://cfg.example.com".into()), ..Default::default() };
        let env = env_of(&[("JIT_API_URL", "https://env.example.com")]);
        let flag = ApiArgs { api_url: Some("https://flag.example.com".into()), ..Default::default() };
        assert_eq!(resolve(&flag, &env, &config, Some(&dev())).unwrap().api_url, "https://flag.example.com");
        let none = ApiArgs::default();
        assert_eq!(resolve(&none, &env, &config, Some(&dev())).unwrap().url_source, UrlSource::Environment);
        let s = resolve(&none, &env_of(&[]), &config, Some(&dev())).unwrap();
        assert_eq!((s.api_url.as_str(), s.local_keys), ("https://cfg.example.com", None));
        let s = resolve(&none, &env_of(&[]), &ConfigFile::default(), Some(&dev())).unwrap();
        assert_eq!(s.url_source, UrlSource::DevEnv(PathBuf::from(".jit/dev.env")));
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert_eq!(s.local_keys, Some(PathBuf::from("/nonexistent/credentials")));
    }

    #[test]
    fn dev_env_is_taken_only_for_a_loopback_url() {
        // (dev.env's JIT_API_URL, whether it is taken)
        let cases = [
            ("http://127.0.0.1:8080", true),
            ("https://127.0.0.1:8443", true),
            ("http://[::1]:8080", true),
            ("https://jit.example.com", false),
            ("http://jit.example.com", false),
        ];
        for (url, taken) in cases {
            let dev = DevEnv { api_url: Some(url.into()), ..dev() };

            let resolved = resolve(&ApiArgs::default(), &env_of(&[]), &ConfigFile::default(), Some(&dev));

            match resolved {
                Ok(s) => assert!(taken && s.url_source == UrlSource::DevEnv(dev.path.clone()), "{url}: {s:?}"),
                Err(e) => assert!(!taken && e.contains(".jit/dev.env") && e.contains("--api-url"), "{url}: {e}"),
            }
        }
        let https = DevEnv { api_url: Some("https://jit.example.com".into()), ..dev() };
        let refused = resolve(&ApiArgs::default(), &env_of(&[]), &ConfigFile::default(), Some(&https));
        assert!(refused.is_err_and(|e| e.contains("not a loopback address")));
    }

    #[test]
    fn dev_env_keys_are_the_named_profiles_else_the_first_unless_the_environment_has_its_own() {
        // (flags, environment, the local keys' file and profile)
        let file = Some(PathBuf::from("/nonexistent/credentials"));
        let named = ApiArgs { profile: Some("approver-a".into()), ..Default::default() };
        let none = ApiArgs::default();
        let cases = [
            (&none, vec![], file.clone(), None),
            (&named, vec![], file.clone(), Some("approver-a")),
            (&none, vec![("AWS_PROFILE", "approver-b")], file.clone(), Some("approver-b")),
            (&named, vec![("AWS_ACCESS_KEY_ID", "AKIA")], file.clone(), Some("approver-a")),
            (&none, vec![("AWS_ACCESS_KEY_ID", "AKIA")], None, None),
            (&none, vec![("AWS_SHARED_CREDENTIALS_FILE", "/mine")], None, None),
        ];
        for (args, env, keys, profile) in cases {
            let s = resolve(args, &env_of(&env), &ConfigFile::default(), Some(&dev())).unwrap();

            assert_eq!((s.local_keys, s.profile.as_deref()), (keys, profile), "{args:?} {env:?}");
        }
    }

    /// A fresh directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn dev_env_credentials_are_static_keys_whatever_else_the_profile_says() {
        let dir = scratch("static-keys");
        let marker = dir.join("ran");
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            format!(
                "# make dev\n[operator]\naws_access_key_id = AKIDLOCAL\naws_secret_access_key = s3cret\n\
                 credential_process = touch {}\n[approver-a]\naws_access_key_id = AKIDAPPROVER\n\
                 aws_secret_access_key = other\naws_session_token = tok\n",
                marker.display()
            ),
        )
        .unwrap();

        let first = local_credentials(&file, None).unwrap();
        let named = local_credentials(&file, Some("approver-a")).unwrap();

        assert_eq!((first.0.as_str(), first.1.access_key_id()), ("operator", "AKIDLOCAL"));
        assert_eq!((named.1.access_key_id(), named.1.session_token()), ("AKIDAPPROVER", Some("tok")));
        assert!(!marker.exists(), "credential_process is not run");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_checkouts_credential_process_is_refused_not_run() {
        // Arrange: a cloned repository's .jit/credentials whose only profile runs a command.
        let dir = scratch("credential-process");
        let marker = dir.join("ran");
        let file = dir.join("credentials");
        std::fs::write(&file, format!("[evil]\ncredential_process = touch {}\n", marker.display())).unwrap();
        let dev = DevEnv { credentials_file: Some(file), ..dev() };
        let settings = resolve(&ApiArgs::default(), &env_of(&[]), &ConfigFile::default(), Some(&dev)).unwrap();

        // Act
        let signed = connect(&settings).await;

        // Assert
        let refused = signed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("profile 'evil'") && refused.contains("static keys"), "{refused}");
        assert!(!marker.exists(), "credential_process is not run");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_configured_is_a_usage_error_saying_what_to_pass() {
        let err = resolve(&ApiArgs::default(), &env_of(&[]), &ConfigFile::default(), None).unwrap_err();
        assert!(err.contains("--api-url") && err.contains("jit configure") && err.contains("make dev"), "{err}");
        let plain = ApiArgs { api_url: Some("http://api.example.com".into()), ..Default::default() };
        let err = resolve(&plain, &env_of(&[]), &ConfigFile::default(), None).unwrap_err();
        assert!(err.contains("--api-url") && err.contains("https://"), "{err}");
    }

    #[test]
    fn the_region_comes_from_the_flag_then_the_url_then_its_source() {
        let url =
            ApiArgs { api_url: Some("https://a.execute-api.eu-west-1.amazonaws.com".into()), ..Default::default() };
        let config = ConfigFile { region: Some("ap-south-1".into()), ..Default::default() };
        assert_eq!(resolve(&url, &env_of(&[]), &config, None).unwrap().region.as_deref(), Some("eu-west-1"));
        let flagged = ApiArgs { region: Some("us-west-2".into()), ..url.clone() };
        assert_eq!(resolve(&flagged, &env_of(&[]), &config, None).unwrap().region.as_deref(), Some("us-west-2"));
        let custom = ApiArgs { api_url: Some("https://jit.example.com".into()), ..Default::default() };
        assert_eq!(resolve(&custom, &env_of(&[]), &config, None).unwrap().region.as_deref(), Some("ap-south-1"));
        let paired = ConfigFile { api_url: Some("https://other.example.com".into()), ..config };
        assert_eq!(resolve(&custom, &env_of(&[]), &paired, None).unwrap().region, None, "left to the AWS chain");
    }

    #[test]
    fn a_named_profile_beats_the_config_files_and_the_environment_leaves_it_to_the_chain() {
        let config = ConfigFile {
            api_url: Some("https://cfg.example.com".into()),
            profile: Some("jit".into()),
            ..Default::default()
        };
        let flag = ApiArgs { profile: Some("ops".into()), ..Default::default() };
        assert_eq!(resolve(&flag, &env_of(&[]), &config, None).unwrap().profile.as_deref(), Some("ops"));
        let none = ApiArgs::default();
        assert_eq!(resolve(&none, &env_of(&[]), &config, None).unwrap().profile.as_deref(), Some("jit"));
        assert_eq!(resolve(&none, &env_of(&[("AWS_PROFILE", "x")]), &config, None).unwrap().profile, None);
    }

    #[test]
    fn the_config_file_round_trips_and_a_broken_one_says_how_to_fix_it() {
        let dir = std::env::temp_dir().join(format!("jit-config-{}", std::process::id()));
        let path = dir.join("nested").join("config.json");
        assert_eq!(load_config(&path).unwrap(), ConfigFile::default(), "missing is empty");
        let config =
            ConfigFile { api_url: Some("https://x".into()), region: Some("eu-west-1".into()), ..Default::default() };
        save_config(&path, &config).unwrap();
        assert_eq!(load_config(&path).unwrap(), config);
        std::fs::write(&path, "{\"apiUrl\": 1}").unwrap();
        assert!(load_config(&path).unwrap_err().contains("jit configure"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_config_path_follows_xdg_then_home() {
        let xdg = env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(config_path(&xdg), Some(PathBuf::from("/x/jit-node-access/config.json")));
        assert_eq!(
            config_path(&env_of(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/jit-node-access/config.json"))
        );
        assert_eq!(config_path(&env_of(&[("JIT_CONFIG", "/c.json"), ("HOME", "/h")])), Some(PathBuf::from("/c.json")));
    }

    #[test]
    fn dev_env_is_read_as_make_dev_writes_it() {
        let dir = std::env::temp_dir().join(format!("jit-devenv-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".jit")).unwrap();
        std::fs::write(
            dir.join(".jit/dev.env"),
            "JIT_API_URL=http://127.0.0.1:8080\nAWS_SHARED_CREDENTIALS_FILE=/tmp/c\nAWS_REGION=us-east-1\n",
        )
        .unwrap();
        let read = read_dev_env(&dir).unwrap();
        assert_eq!(read.api_url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(read.credentials_file, Some(PathBuf::from("/tmp/c")));
        assert_eq!(read.region.as_deref(), Some("us-east-1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
