//! Sink configuration: the `[[sink]]` tables and the `[delivery]` section
//! of the config file, read into validated [`SinkConfig`]s.
//!
//! Raw serde structs with `deny_unknown_fields`, then one validation pass
//! that reports every error at once, each naming the sink and the key.
//! Secrets (tokens, HMAC keys, URLs that carry a key) are read from the
//! environment or from files into [`Secret`], whose `Debug` and `Display`
//! never show the value; nothing here logs them.

use crate::alert::Severity;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SinkConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid sink configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// A secret value: shown as `[redacted]` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The parts of the config file this module reads; the other sections
/// (`[kafka]`, `[state]`, `[output]`) belong to live mode.
#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    delivery: DeliverySection,
    #[serde(default)]
    sink: Vec<SinkSpec>,
    #[serde(flatten)]
    _rest: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverySection {
    spool_dir: Option<PathBuf>,
    drain_timeout_seconds: Option<f64>,
}

/// One `[[sink]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    format: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    routing_key_env: Option<String>,
    routing_key_file: Option<PathBuf>,
    headers: Option<BTreeMap<String, String>>,
    index: Option<String>,
    source: Option<String>,
    sourcetype: Option<String>,
    host: Option<String>,
    path: Option<PathBuf>,
    min_severity: Option<Severity>,
    detectors: Option<Vec<String>>,
    mask: Option<Vec<String>>,
    batch_max: Option<usize>,
    timeout_seconds: Option<f64>,
    retry_initial_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    queue_max: Option<usize>,
}

/// How an alert is written for a sink that accepts several shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// auditwatch's own alert JSON (README, "Alert schema").
    Alert,
    /// OCSF Detection Finding (class 2004).
    Ocsf,
    /// Elastic Common Schema.
    Ecs,
    /// The human rendering of `render_alert` (stdout only).
    Text,
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "alert" => Format::Alert,
            "ocsf" => Format::Ocsf,
            "ecs" => Format::Ecs,
            "text" => Format::Text,
            _ => return None,
        })
    }
}

/// Where a sink sends alerts, with what it needs to do so.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// POST of one alert per request, signed with HMAC-SHA256 when a secret is set.
    Webhook {
        url: Secret,
        format: Format,
        secret: Option<Secret>,
    },
    /// Splunk HTTP Event Collector, `/services/collector/event`.
    SplunkHec {
        url: String,
        token: Secret,
        format: Format,
        index: Option<String>,
        source: String,
        sourcetype: String,
        host: String,
    },
    /// Elasticsearch `_bulk` with ECS documents, `create` by `alert_id`.
    Elastic {
        url: String,
        index: String,
        auth: Option<Secret>,
    },
    /// A Slack incoming webhook (the URL is the secret).
    Slack {
        url: Secret,
    },
    /// PagerDuty Events API v2.
    PagerDuty {
        url: String,
        routing_key: Secret,
    },
    /// JSON lines or Parquet, by the path's extension.
    File {
        path: PathBuf,
        format: Format,
    },
    Stdout {
        format: Format,
    },
}

impl SinkKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Webhook { .. } => "webhook",
            SinkKind::SplunkHec { .. } => "splunk_hec",
            SinkKind::Elastic { .. } => "elastic",
            SinkKind::Slack { .. } => "slack",
            SinkKind::PagerDuty { .. } => "pagerduty",
            SinkKind::File { .. } => "file",
            SinkKind::Stdout { .. } => "stdout",
        }
    }

    /// Sinks that send over HTTP go through the spool and a delivery thread.
    pub fn is_remote(&self) -> bool {
        !matches!(self, SinkKind::File { .. } | SinkKind::Stdout { .. })
    }

    /// Every secret value the sink holds, so that responses echoing one can
    /// be scrubbed before they are stored.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            SinkKind::Webhook { url, secret, .. } => {
                let mut v = vec![url.expose()];
                v.extend(secret.as_ref().map(Secret::expose));
                v
            }
            SinkKind::SplunkHec { token, .. } => vec![token.expose()],
            SinkKind::Elastic { auth, .. } => auth.iter().map(Secret::expose).collect(),
            SinkKind::Slack { url } => vec![url.expose()],
            SinkKind::PagerDuty { routing_key, .. } => vec![routing_key.expose()],
            SinkKind::File { .. } | SinkKind::Stdout { .. } => Vec::new(),
        }
    }
}

/// Which alerts a sink receives.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub min_severity: Severity,
    /// Empty: every detector.
    pub detectors: Vec<String>,
}

impl Filter {
    pub fn accepts(&self, alert: &crate::alert::Alert) -> bool {
        alert.severity >= self.min_severity && (self.detectors.is_empty() || self.detectors.contains(&alert.detector))
    }
}

/// Personal data replaced before an alert leaves for this sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mask {
    pub emails: bool,
    pub ips: bool,
}

/// How a remote sink retries and how much it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Most alerts in one request.
    pub batch_max: usize,
    /// Whole-request timeout (connect, send, response).
    pub timeout: Duration,
    /// First backoff; it doubles per failed attempt up to `retry_max`, with
    /// full jitter. A `Retry-After` longer than the backoff wins.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Alerts the spool holds before accepting more waits for deliveries.
    pub queue_max: usize,
}

/// One validated sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Unique; names the spool folder and the `sink` metric label.
    pub name: String,
    pub kind: SinkKind,
    pub filter: Filter,
    pub mask: Mask,
    pub delivery: Delivery,
    /// Extra request headers (HTTP sinks).
    pub headers: BTreeMap<String, String>,
}

/// The sinks and where undelivered alerts wait.
#[derive(Debug, Clone, Default)]
pub struct DeliveryConfig {
    pub sinks: Vec<SinkConfig>,
    /// Spool folder; `None`: the mode's default (`auditwatch-spool`, or
    /// `STATE_DIR/spool` in live mode).
    pub spool_dir: Option<PathBuf>,
    pub drain_timeout: Option<Duration>,
}

impl DeliveryConfig {
    /// Reads `[delivery]` and `[[sink]]` from a config file (other sections are ignored here).
    pub fn load(path: &Path, detectors: &[&str]) -> Result<Self, SinkConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| SinkConfigError::Io { path: path.into(), source })?;
        Self::parse(path, &text, detectors, &std::env::vars().collect())
    }

    /// Parses a config file's text; `env` is the environment secrets are read from.
    pub fn parse(
        path: &Path,
        text: &str,
        detectors: &[&str],
        env: &BTreeMap<String, String>,
    ) -> Result<Self, SinkConfigError> {
        let file: File =
            toml::from_str(text).map_err(|e| SinkConfigError::Parse { path: path.into(), message: e.to_string() })?;
        let mut errors = Vec::new();
        let mut sinks = Vec::new();
        for (i, spec) in file.sink.into_iter().enumerate() {
            match validate(spec, i, detectors, env) {
                Ok(s) => sinks.push(s),
                Err(mut e) => errors.append(&mut e),
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &sinks {
            if !names.insert(s.name.clone()) {
                errors.push(format!("sink `{}`: the name is used twice; names must be unique", s.name));
            }
        }
        let drain_timeout = match file.delivery.drain_timeout_seconds {
            Some(s) if !(s.is_finite() && s >= 0.0) => {
                errors.push(format!("[delivery] drain_timeout_seconds: {s} is not a non-negative number"));
                None
            }
            s => s.map(Duration::from_secs_f64),
        };
        if !errors.is_empty() {
            return Err(SinkConfigError::Invalid(
                errors.into_iter().map(|e| format!("{}: {e}", path.display())).collect(),
            ));
        }
        Ok(DeliveryConfig { sinks, spool_dir: file.delivery.spool_dir, drain_timeout })
    }
}

/// The generic webhook `--webhook URL` stands for. Its name derives from
/// the URL, so a restart with the same flag finds the same spool.
pub fn webhook_shortcut(url: &str, secret: Option<Secret>) -> Result<SinkConfig, SinkConfigError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SinkConfigError::Invalid(vec![format!("--webhook {url}: not an http:// or https:// URL")]));
    }
    use sha2::Digest;
    let name = format!("webhook-{}", &hex::encode(sha2::Sha256::digest(url.as_bytes()))[..8]);
    Ok(SinkConfig {
        name,
        kind: SinkKind::Webhook { url: Secret::new(url), format: Format::Alert, secret },
        filter: Filter { min_severity: Severity::Info, detectors: Vec::new() },
        mask: Mask::default(),
        delivery: default_delivery(1),
        headers: BTreeMap::new(),
    })
}

fn default_delivery(batch_max: usize) -> Delivery {
    Delivery {
        batch_max,
        timeout: Duration::from_secs(10),
        retry_initial: Duration::from_millis(500),
        retry_max: Duration::from_secs(60),
        queue_max: 100_000,
    }
}

/// Which keys each type takes, beyond the ones every sink takes.
fn keys_of(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "webhook" => &["url", "url_env", "url_file", "format", "secret_env", "secret_file", "@http"],
        "splunk_hec" => {
            &["url", "token_env", "token_file", "format", "index", "source", "sourcetype", "host", "batch_max", "@http"]
        }
        "elastic" => &[
            "url",
            "index",
            "api_key_env",
            "api_key_file",
            "username",
            "password_env",
            "password_file",
            "batch_max",
            "@http",
        ],
        "slack" => &["url", "url_env", "url_file", "@http"],
        "pagerduty" => &["url", "routing_key_env", "routing_key_file", "@http"],
        "file" => &["path", "format"],
        "stdout" => &["format"],
        _ => return None,
    })
}

fn validate(
    spec: SinkSpec,
    i: usize,
    detectors: &[&str],
    env: &BTreeMap<String, String>,
) -> Result<SinkConfig, Vec<String>> {
    let mut errors = Vec::new();
    let name = spec.name.clone().unwrap_or_default();
    let who = if name.is_empty() { format!("[[sink]] #{}", i + 1) } else { format!("sink `{name}`") };
    if name.is_empty() {
        errors.push(format!("{who}: `name` is required"));
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        errors.push(format!("{who}: `name` may hold only letters, digits, `-` and `_` (it names a folder)"));
    }
    let kind = spec.kind.clone().unwrap_or_default();
    let Some(allowed) = keys_of(&kind) else {
        errors.push(format!(
            "{who}: `type` is `{kind}`; allowed: webhook, splunk_hec, elastic, slack, pagerduty, file, stdout"
        ));
        return Err(errors);
    };
    let http = allowed.contains(&"@http");
    for (key, set) in present_keys(&spec) {
        let common = matches!(key, "name" | "type" | "min_severity" | "detectors" | "mask");
        let http_key = matches!(key, "headers" | "timeout_seconds" | "retry_initial_ms" | "retry_max_ms" | "queue_max");
        let applies = !set || common || allowed.contains(&key) || (http && http_key);
        if !applies {
            errors.push(format!("{who}: key `{key}` does not apply to a {kind} sink"));
        }
    }

    let secret = |label: &str, from_env: &Option<String>, from_file: &Option<PathBuf>, errors: &mut Vec<String>| {
        read_secret(&who, label, from_env, from_file, env, errors)
    };

    let format = match spec.format.as_deref() {
        None => Format::Alert,
        Some(f) => match Format::parse(f) {
            Some(Format::Text) if kind != "stdout" => {
                errors.push(format!("{who}: `format = \"text\"` is for stdout only"));
                Format::Alert
            }
            Some(f) => f,
            None => {
                errors.push(format!("{who}: `format` is `{f}`; allowed: alert, ocsf, ecs (and text for stdout)"));
                Format::Alert
            }
        },
    };
    // A URL given inline, or (when it carries a key, as Slack's does) from the environment or a file.
    let url_secret = |errors: &mut Vec<String>| {
        let from_secret = read_secret(&who, "url", &spec.url_env, &spec.url_file, env, errors);
        match (spec.url.as_ref(), from_secret) {
            (Some(_), Some(_)) => {
                errors.push(format!("{who}: set one of `url`, `url_env`, `url_file`"));
                None
            }
            (Some(u), None) => Some(Secret::new(u.clone())),
            (None, Some(u)) => Some(u),
            (None, None) => {
                // An unreadable `url_env`/`url_file` has said so already.
                if spec.url_env.is_none() && spec.url_file.is_none() {
                    errors.push(format!("{who}: a URL is required (`url`, `url_env` or `url_file`)"));
                }
                None
            }
        }
    };
    let check_url = |u: &str, errors: &mut Vec<String>| {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            // The value may be secret (Slack): do not echo it.
            errors.push(format!("{who}: the URL must start with http:// or https://"));
        }
    };
    let plain_url = |errors: &mut Vec<String>, default: Option<&str>| -> String {
        match (spec.url.as_deref(), default) {
            (Some(u), _) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    errors.push(format!("{who}: `url` must start with http:// or https://, got `{u}`"));
                }
                u.trim_end_matches('/').to_owned()
            }
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                errors.push(format!("{who}: `url` is required"));
                String::new()
            }
        }
    };

    let mut batch_default = 1;
    let kind = match kind.as_str() {
        "webhook" => {
            let url = url_secret(&mut errors);
            if let Some(u) = &url {
                check_url(u.expose(), &mut errors);
            }
            let key = secret("secret", &spec.secret_env, &spec.secret_file, &mut errors);
            url.map(|url| SinkKind::Webhook { url, format, secret: key })
        }
        "splunk_hec" => {
            batch_default = 100;
            let url = plain_url(&mut errors, None);
            let token = secret("token", &spec.token_env, &spec.token_file, &mut errors);
            if token.is_none() && spec.token_env.is_none() && spec.token_file.is_none() {
                errors.push(format!("{who}: a HEC token is required (`token_env` or `token_file`)"));
            }
            token.map(|token| SinkKind::SplunkHec {
                url,
                token,
                format,
                index: spec.index.clone(),
                source: spec.source.clone().unwrap_or_else(|| "auditwatch".into()),
                sourcetype: spec.sourcetype.clone().unwrap_or_else(|| "auditwatch:alert".into()),
                host: spec.host.clone().unwrap_or_else(hostname),
            })
        }
        "elastic" => {
            batch_default = 500;
            let url = plain_url(&mut errors, None);
            let api_key = secret("api_key", &spec.api_key_env, &spec.api_key_file, &mut errors);
            let password = secret("password", &spec.password_env, &spec.password_file, &mut errors);
            let auth = match (api_key, spec.username.as_ref(), password) {
                (Some(k), None, None) => Some(Secret::new(format!("ApiKey {}", k.expose()))),
                (None, Some(user), Some(pw)) => {
                    use base64::Engine;
                    let pair = format!("{user}:{}", pw.expose());
                    Some(Secret::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))))
                }
                (None, None, None) => None,
                _ => {
                    errors.push(format!("{who}: authenticate with `api_key_*`, or with `username` and `password_*`"));
                    None
                }
            };
            Some(SinkKind::Elastic {
                url,
                index: spec.index.clone().unwrap_or_else(|| "auditwatch-alerts".into()),
                auth,
            })
        }
        "slack" => {
            let url = url_secret(&mut errors);
            if let Some(u) = &url {
                check_url(u.expose(), &mut errors);
            }
            url.map(|url| SinkKind::Slack { url })
        }
        "pagerduty" => {
            let url = plain_url(&mut errors, Some("https://events.pagerduty.com/v2/enqueue"));
            let key = secret("routing_key", &spec.routing_key_env, &spec.routing_key_file, &mut errors);
            if key.is_none() && spec.routing_key_env.is_none() && spec.routing_key_file.is_none() {
                errors.push(format!("{who}: a routing key is required (`routing_key_env` or `routing_key_file`)"));
            }
            key.map(|routing_key| SinkKind::PagerDuty { url, routing_key })
        }
        "file" => match &spec.path {
            Some(path) => {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
                let ok = matches!(ext.as_str(), "jsonl" | "json" | "ndjson")
                    || (ext == "parquet" && format == Format::Alert);
                if !ok {
                    errors.push(format!(
                        "{who}: `path` {}: use .jsonl (any format) or .parquet (format alert)",
                        path.display()
                    ));
                }
                Some(SinkKind::File { path: path.clone(), format })
            }
            None => {
                errors.push(format!("{who}: `path` is required"));
                None
            }
        },
        _ => Some(SinkKind::Stdout { format }),
    };

    for d in spec.detectors.iter().flatten() {
        if !detectors.contains(&d.as_str()) {
            errors.push(format!("{who}: `detectors`: no detector is named `{d}`; known: {}", detectors.join(", ")));
        }
    }
    let mut mask = Mask::default();
    for m in spec.mask.iter().flatten() {
        match m.as_str() {
            "emails" => mask.emails = true,
            "ips" => mask.ips = true,
            other => errors.push(format!("{who}: `mask`: `{other}`; allowed: emails, ips")),
        }
    }
    let mut delivery = default_delivery(batch_default);
    if let Some(b) = spec.batch_max {
        if b == 0 || b > 10_000 {
            errors.push(format!("{who}: `batch_max` must be 1..=10000"));
        } else {
            delivery.batch_max = b;
        }
    }
    if let Some(t) = spec.timeout_seconds {
        if t.is_finite() && t > 0.0 {
            delivery.timeout = Duration::from_secs_f64(t);
        } else {
            errors.push(format!("{who}: `timeout_seconds` must be positive"));
        }
    }
    if let Some(ms) = spec.retry_initial_ms {
        delivery.retry_initial = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = spec.retry_max_ms {
        delivery.retry_max = Duration::from_millis(ms.max(1));
    }
    if delivery.retry_max < delivery.retry_initial {
        errors.push(format!("{who}: `retry_max_ms` is below `retry_initial_ms`"));
    }
    if let Some(q) = spec.queue_max {
        if q == 0 {
            errors.push(format!("{who}: `queue_max` must be at least 1"));
        } else {
            delivery.queue_max = q;
        }
    }
    let default_min = if matches!(kind, Some(SinkKind::PagerDuty { .. })) { Severity::High } else { Severity::Info };
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(kind) = kind else { return Err(vec![format!("{who}: incomplete")]) };
    Ok(SinkConfig {
        name,
        kind,
        filter: Filter {
            min_severity: spec.min_severity.unwrap_or(default_min),
            detectors: spec.detectors.unwrap_or_default(),
        },
        mask,
        delivery,
        headers: spec.headers.unwrap_or_default(),
    })
}

/// A secret from the environment variable or the file a sink names.
fn read_secret(
    who: &str,
    label: &str,
    from_env: &Option<String>,
    from_file: &Option<PathBuf>,
    env: &BTreeMap<String, String>,
    errors: &mut Vec<String>,
) -> Option<Secret> {
    match (from_env, from_file) {
        (Some(_), Some(_)) => {
            errors.push(format!("{who}: set `{label}_env` or `{label}_file`, not both"));
            None
        }
        (Some(var), None) => match env.get(var) {
            Some(v) if !v.is_empty() => Some(Secret::new(v.clone())),
            _ => {
                errors.push(format!("{who}: `{label}_env`: the environment variable {var} is not set"));
                None
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim_end_matches(['\n', '\r']).to_owned())),
            Ok(_) => {
                errors.push(format!("{who}: `{label}_file`: {} is empty", path.display()));
                None
            }
            Err(e) => {
                errors.push(format!("{who}: `{label}_file`: {}: {e}", path.display()));
                None
            }
        },
        (None, None) => None,
    }
}

/// The keys a spec sets, for the "does not apply" check.
fn present_keys(s: &SinkSpec) -> Vec<(&'static str, bool)> {
    vec![
        ("url", s.url.is_some()),
        ("url_env", s.url_env.is_some()),
        ("url_file", s.url_file.is_some()),
        ("format", s.format.is_some()),
        ("secret_env", s.secret_env.is_some()),
        ("secret_file", s.secret_file.is_some()),
        ("token_env", s.token_env.is_some()),
        ("token_file", s.token_file.is_some()),
        ("api_key_env", s.api_key_env.is_some()),
        ("api_key_file", s.api_key_file.is_some()),
        ("username", s.username.is_some()),
        ("password_env", s.password_env.is_some()),
        ("password_file", s.password_file.is_some()),
        ("routing_key_env", s.routing_key_env.is_some()),
        ("routing_key_file", s.routing_key_file.is_some()),
        ("headers", s.headers.is_some()),
        ("index", s.index.is_some()),
        ("source", s.source.is_some()),
        ("sourcetype", s.sourcetype.is_some()),
        ("host", s.host.is_some()),
        ("path", s.path.is_some()),
        ("batch_max", s.batch_max.is_some()),
        ("timeout_seconds", s.timeout_seconds.is_some()),
        ("retry_initial_ms", s.retry_initial_ms.is_some()),
        ("retry_max_ms", s.retry_max_ms.is_some()),
        ("queue_max", s.queue_max.is_some()),
    ]
}

/// This machine's name, for Splunk's `host` field.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "auditwatch".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("HMAC".to_string(), "s3cret".to_string()), ("HEC".to_string(), "tok".to_string())].into_iter().collect()
    }

    fn parse(text: &str) -> Result<DeliveryConfig, SinkConfigError> {
        DeliveryConfig::parse(Path::new("c.toml"), text, &["query_frequency", "new_source"], &env())
    }

    #[test]
    fn every_type_parses_with_its_keys() {
        let c = parse(
            r#"
            [delivery]
            spool_dir = "/tmp/spool"
            drain_timeout_seconds = 5
            [[sink]]
            name = "hook"
            type = "webhook"
            url = "http://127.0.0.1:1/x"
            secret_env = "HMAC"
            headers = { "X-Team" = "sec" }
            min_severity = "medium"
            detectors = ["query_frequency"]
            mask = ["emails", "ips"]
            [[sink]]
            name = "splunk"
            type = "splunk_hec"
            url = "https://splunk:8088/"
            token_env = "HEC"
            index = "security"
            [[sink]]
            name = "es"
            type = "elastic"
            url = "http://es:9200"
            [[sink]]
            name = "lake"
            type = "file"
            path = "findings.jsonl"
            format = "ocsf"
            [[sink]]
            name = "out"
            type = "stdout"
            format = "text"
            "#,
        )
        .unwrap();
        assert_eq!(c.sinks.len(), 5);
        assert_eq!(c.drain_timeout, Some(Duration::from_secs(5)));
        let hook = &c.sinks[0];
        assert!(matches!(&hook.kind, SinkKind::Webhook { secret: Some(s), .. } if s.expose() == "s3cret"));
        assert_eq!(hook.filter.min_severity, Severity::Medium);
        assert_eq!(hook.mask, Mask { emails: true, ips: true });
        assert!(matches!(&c.sinks[1].kind, SinkKind::SplunkHec { url, .. } if url == "https://splunk:8088"));
        assert_eq!(c.sinks[1].delivery.batch_max, 100);
        // Secrets never show in Debug output.
        assert!(!format!("{:?}", c.sinks).contains("s3cret"));
    }

    #[test]
    fn all_errors_are_reported_at_once_without_secret_values() {
        let err = parse(
            r#"
            [[sink]]
            name = "a b"
            type = "webhook"
            url = "ftp://x"
            index = "nope"
            [[sink]]
            name = "s"
            type = "splunk_hec"
            url = "http://s"
            token_env = "MISSING"
            [[sink]]
            name = "p"
            type = "pigeon"
            [[sink]]
            name = "f"
            type = "file"
            path = "x.parquet"
            format = "ocsf"
            detectors = ["nope"]
            mask = ["names"]
            "#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "may hold only letters",
            "must start with http",
            "key `index` does not apply to a webhook sink",
            "environment variable MISSING is not set",
            "`type` is `pigeon`",
            "use .jsonl (any format) or .parquet (format alert)",
            "no detector is named `nope`",
            "`mask`: `names`",
        ] {
            assert!(err.contains(needle), "{needle} missing from:\n{err}");
        }
        assert!(!err.contains("ftp://x"), "a URL that may be secret is not echoed");
    }

    #[test]
    fn a_missing_secret_url_is_one_error() {
        let err = parse("[[sink]]\nname = \"s\"\ntype = \"slack\"\nurl_env = \"NOPE\"\n").unwrap_err().to_string();
        assert_eq!(err.matches("sink `s`").count(), 1, "{err}");
        assert!(err.contains("environment variable NOPE is not set"), "{err}");
        let err = parse("[[sink]]\nname = \"s\"\ntype = \"slack\"\n").unwrap_err().to_string();
        assert!(err.contains("a URL is required"), "{err}");
    }

    #[test]
    fn pagerduty_defaults_to_high_severity_and_the_public_endpoint() {
        let c = parse("[[sink]]\nname = \"pd\"\ntype = \"pagerduty\"\nrouting_key_env = \"HEC\"\n").unwrap();
        assert_eq!(c.sinks[0].filter.min_severity, Severity::High);
        assert!(
            matches!(&c.sinks[0].kind, SinkKind::PagerDuty { url, .. } if url == "https://events.pagerduty.com/v2/enqueue")
        );
    }

    #[test]
    fn the_webhook_shortcut_names_its_spool_by_url() {
        let a = webhook_shortcut("http://127.0.0.1:9/a", None).unwrap();
        let b = webhook_shortcut("http://127.0.0.1:9/a", None).unwrap();
        let c = webhook_shortcut("http://127.0.0.1:9/b", None).unwrap();
        assert_eq!(a.name, b.name);
        assert_ne!(a.name, c.name);
        assert!(webhook_shortcut("127.0.0.1:9", None).is_err());
    }
}
