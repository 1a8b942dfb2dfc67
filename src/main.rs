//! The `auditwatch` command: parses flags and calls the library. Nothing
//! else lives here.

use anyhow::{Context, Result, bail};
use auditwatch::detect::allowlist::Allowlist;
use auditwatch::detect::definition;
use auditwatch::live::{LiveConfig, RunOptions};
use auditwatch::pipeline::{PipelineConfig, ReplayOptions, replay_to};
use auditwatch::sink::config::{DeliveryConfig, Secret};
use auditwatch::sink::{DeliveryReport, FanOut, Mode};
use auditwatch::telemetry::metrics::Metrics;
use auditwatch::time::{EventTime, MS_PER_HOUR};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Streaming anomaly detection for Databricks audit and billing logs.
///
/// Start with `auditwatch demo`: it generates a synthetic workspace with
/// injected incidents, runs the whole pipeline and prints the alerts.
#[derive(Debug, Parser)]
#[command(name = "auditwatch", version, about, long_about)]
struct Cli {
    /// Log format on stderr: `human` or `json`.
    #[arg(long, global = true, default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
    /// Log level filter (tracing `EnvFilter` syntax, e.g. `info`, `auditwatch=debug`).
    /// `RUST_LOG` overrides it.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay historical logs through the whole pipeline, in event time.
    ///
    /// PATH may be files or directories (walked recursively, as audit log
    /// delivery lays them out). Each file may be JSON lines, gzip JSON lines
    /// or Parquet, holding any mix of delivered audit logs,
    /// system.access.audit, system.billing.usage, system.billing.list_prices
    /// and system.lakeflow.job_run_timeline rows.
    Replay {
        /// Input files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only alerts whose window starts at or after T (RFC 3339, `YYYY-MM-DD[ HH:MM:SS]` UTC,
        /// or epoch seconds/ms). Events up to --warmup-hours before T still train the baselines.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        from: Option<EventTime>,
        /// Skip events at or after T.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        to: Option<EventTime>,
        /// Hours of history before --from used only to warm the baselines up.
        #[arg(long, default_value_t = 14 * 24)]
        warmup_hours: i64,
        /// Only alerts about principal P (email or service principal
        /// application id). Every event is still read: a new principal is
        /// judged against its peers, so P's alerts are those a full replay raises.
        #[arg(long, value_name = "P")]
        principal: Option<String>,
        /// Write alerts here: `.jsonl` (JSON lines) or `.parquet`.
        #[arg(long, value_name = "FILE")]
        alerts_out: Option<PathBuf>,
        /// Write refused records here (JSON lines: reason, origin, record number, raw record).
        #[arg(long, value_name = "FILE")]
        quarantine: Option<PathBuf>,
        /// Largest record accepted, in bytes; longer lines are quarantined as `too_large`.
        #[arg(long, default_value_t = auditwatch::decode::DEFAULT_MAX_RECORD_BYTES)]
        max_record_bytes: usize,
        #[command(flatten)]
        detectors: DetectorArgs,
        /// Print every alert with its explanation after the summary.
        #[arg(long)]
        print_alerts: bool,
        /// Hide the progress bar (it is also hidden when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
        /// Threads that decode each input stream (default: the cores
        /// available). 1 decodes on the scoring thread itself and starts no
        /// other. Decoded records leave in file order whatever N is, so
        /// the alerts (and the alert file, byte for byte) are the same for
        /// every N; only the time differs.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
        /// The same as `--threads 1` (kept for scripts written before `--threads`).
        #[arg(long)]
        inline_decode: bool,
        /// Score records in the order the files hold them (streams merged
        /// by event time as read), as live mode would see them delivered:
        /// records out of order beyond the allowed lateness are late.
        /// By default any row order gives the alerts of the sorted rows:
        /// records in order within the smallest lateness are scored as
        /// read; otherwise the input is read again through a sort.
        #[arg(long)]
        as_delivered: bool,
        /// Memory for sorting, in MiB (default 1024); past it sorted runs
        /// are spilled to --spill-dir, about the input's decoded size.
        #[arg(long, value_name = "MIB", default_value_t = 1024)]
        sort_memory_mib: usize,
        /// Directory for sort runs (default: the system temporary
        /// directory); a fresh folder inside it is removed at the end.
        #[arg(long, value_name = "DIR")]
        spill_dir: Option<PathBuf>,
        /// Configuration file: its [[sink]] tables and [delivery] section
        /// send the alerts to SIEMs, chat and files (README, "Sinks").
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        sinks: SinkArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Live mode: consume Kafka topics in a consumer group and raise alerts
    /// as the records arrive, with checkpointed state and at-least-once
    /// delivery (no alert lost, no `alert_id` written twice).
    ///
    /// Each assigned partition has its own baselines: key the input by
    /// principal, or pass --repartition-topic. Flags override the config
    /// file; see README, "Live mode on Kafka", for every key.
    Run {
        /// Configuration file (TOML: [kafka], [kafka.client], [state], [output], [delivery], [[sink]]).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Bootstrap servers, HOST:PORT[,HOST:PORT...] [default: 127.0.0.1:9092].
        #[arg(long, value_name = "HOST:PORT,...")]
        brokers: Option<String>,
        /// Input topic (repeatable); any mix of the input shapes, one record
        /// (or several JSON lines) per message.
        #[arg(long = "topic", value_name = "T")]
        topics: Vec<String>,
        /// Consumer group [default: auditwatch].
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Where partition checkpoints are kept [default: auditwatch-state].
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Append alerts here (JSON lines). Across restarts nothing it holds
        /// is lost or rewritten, and no alert_id is written twice.
        #[arg(long, value_name = "FILE")]
        alerts_out: Option<PathBuf>,
        /// Append refused records here (JSON lines with reason and origin topic/partition@offset).
        #[arg(long, value_name = "FILE")]
        quarantine: Option<PathBuf>,
        /// Produce refused records to this topic (header `reason`).
        #[arg(long, value_name = "T")]
        quarantine_topic: Option<String>,
        /// Re-key the input topics by principal into this topic and detect on it
        /// (for input not keyed by principal).
        #[arg(long, value_name = "T")]
        repartition_topic: Option<String>,
        /// Also publish partition checkpoints to this compacted topic, so that
        /// an instance on another machine can take a partition over.
        #[arg(long, value_name = "T")]
        changelog_topic: Option<String>,
        /// Seconds between checkpoints (and offset commits) [default: 10].
        #[arg(long, value_name = "S")]
        checkpoint_seconds: Option<u64>,
        /// Stop once no record has arrived for S seconds (backfills, tests, benchmarks).
        #[arg(long, value_name = "S")]
        exit_when_idle: Option<f64>,
        /// Print each new alert as a JSON line on stdout.
        #[arg(long)]
        print_alerts: bool,
        /// Serve /metrics (Prometheus), /healthz and /readyz on ADDR (e.g. 0.0.0.0:9464).
        #[arg(long, value_name = "ADDR")]
        serve: Option<String>,
        /// With --serve and --exit-when-idle: keep serving S seconds after stopping.
        #[arg(long, value_name = "S", default_value_t = 0.0)]
        linger: f64,
        #[command(flatten)]
        detectors: DetectorArgs,
        #[command(flatten)]
        sinks: SinkArgs,
    },
    /// Deliver the alerts that earlier runs left in the sinks' spools (a
    /// receiver was down), then exit. Exits 75 if some are still undelivered
    /// at the drain timeout.
    Deliver {
        /// Configuration file with the [[sink]] tables of the run that spooled them.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The state directory of `auditwatch run` (its spool is STATE_DIR/spool);
        /// without it, --spool-dir or [delivery] spool_dir, else `auditwatch-spool`.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// First put the alerts of each sink's dead-letter file back into its
        /// spool (once the receiver is fixed); the file is renamed
        /// dead-letter-requeued-<unix ms>.jsonl.
        #[arg(long)]
        requeue_dead_letters: bool,
        #[command(flatten)]
        sinks: SinkArgs,
    },
    /// Write realistic synthetic Databricks activity with labelled incidents.
    ///
    /// Every principal follows a behaviour archetype with parameters drawn
    /// per seed (office, weekend worker, shift worker, on-call, traveller,
    /// end-of-quarter analyst, business seasons; service principals running
    /// scheduled jobs, nightly backfills, bursty API clients), with
    /// overdispersed hourly counts. Writes DIR/logs (what to replay),
    /// DIR/labels.jsonl (the incidents), DIR/hard_negatives.jsonl (ordinary
    /// work that looks unusual: not incidents), DIR/principals.jsonl (who
    /// follows which archetype) and DIR/access_snapshot.jsonl.
    Generate {
        /// Days of activity (from Monday 2024-01-15).
        #[arg(long, default_value_t = 21)]
        days: u32,
        /// Number of principals (users and service principals).
        #[arg(long, default_value_t = 60)]
        principals: u32,
        /// Random seed: the same seed gives byte-identical output.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Gzip the delivered audit log files.
        #[arg(long)]
        gzip: bool,
        /// Output directory (created if missing; a `logs/` folder already in it is replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replay generated data and score the alerts against its labels:
    /// precision, recall and time to detect per signal and per archetype,
    /// and the alerts on hard negatives by severity.
    ///
    /// Give DIR (written by `auditwatch generate`) or --seeds A-B: each seed
    /// is then generated into a temporary directory with --days and
    /// --principals, evaluated, and the figures added up. The default tests
    /// (tests/eval.rs) use seeds 1-4 at 21 days × 60 principals; judge the
    /// detectors on other seeds (e.g. --seeds 2001-2010), which no one tuned on.
    ///
    /// Alerts are those of severity medium and above. Low and info alerts
    /// are findings, counted apart (how many, how many point at incidents or
    /// at hard negatives) and counted neither in precision nor in recall;
    /// precision over all alerts and recall with findings are printed too.
    /// Run the `[[test]]` cases inside detector definitions and print a
    /// table: each case's events go through the replay pipeline with only
    /// its own definition loaded. Exits 1 when a case fails (or, with
    /// --require-cases, when a definition lacks a case that alerts or one
    /// that stays quiet). models/README.md, "Test cases", has the format.
    TestModels {
        /// Definition files, or directories walked for `*.toml` (default: the built-in models).
        paths: Vec<PathBuf>,
        /// Fail unless every definition has a case that alerts and one that stays quiet.
        #[arg(long)]
        require_cases: bool,
        /// List every case's alerts, not only those of failed cases.
        #[arg(long, short)]
        verbose: bool,
    },
    Eval {
        /// Directory written by `auditwatch generate` (holds `logs/` and `labels.jsonl`).
        #[arg(required_unless_present = "seeds", conflicts_with = "seeds")]
        dir: Option<PathBuf>,
        /// Generate and evaluate each seed of A-B (or one seed A) instead of DIR.
        #[arg(long, value_name = "A-B")]
        seeds: Option<auditwatch::eval::Seeds>,
        /// Days of each generated data set (with --seeds).
        #[arg(long, default_value_t = 21, requires = "seeds")]
        days: u32,
        /// Principals of each generated data set (with --seeds).
        #[arg(long, default_value_t = 60, requires = "seeds")]
        principals: u32,
        /// Print the figures as JSON instead of a report.
        #[arg(long)]
        json: bool,
        /// Detector definition files (TOML) to use instead of the built-in ones.
        #[arg(long = "model", value_name = "FILE")]
        models: Vec<PathBuf>,
    },
    /// Score any metric series (CSV: a timestamp and a value per row) with
    /// the detectors' models and write `timestamp,value,score`.
    ///
    /// Counts (every value written as a non-negative integer) use the seasonal
    /// negative binomial model (dispersion learnt from the series), other
    /// values the hourly Student-t model on an asinh scale (zeros and
    /// negatives allowed). Each row is scored against what the model learnt from the rows
    /// before it (in time order: the file is sorted first). Score 0–100 is
    /// -10·log10(p); 60 means p = 1e-6. Timestamps: RFC 3339,
    /// `YYYY-MM-DD HH:MM:SS` (UTC), or epoch seconds/milliseconds. Rows that
    /// cannot be scored are written with an empty score and counted on stderr.
    ScoreSeries {
        /// Input CSV with a header row.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Output CSV: the time and value columns as in the input, then `score`.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Time column [default: `timestamp`, else the first column].
        #[arg(long, value_name = "C")]
        time_column: Option<String>,
        /// Value column [default: `value`, else the second column].
        #[arg(long, value_name = "C")]
        value_column: Option<String>,
        /// `count`, `value`, or `auto`: counts when every value is written as a
        /// non-negative integer (`46`, not `46.0`).
        #[arg(long, default_value = "auto", value_parser = ["auto", "count", "value"])]
        model: String,
        /// Weight the past keeps per day of event time [default: 0.95].
        #[arg(long, value_name = "F")]
        forgetting: Option<f64>,
        /// Score drops as well as rises: p = 2·min(P(X ≥ x), P(X ≤ x)).
        #[arg(long)]
        two_sided: bool,
        /// Add `expected,low,high` columns: the prediction and its 95% interval.
        #[arg(long)]
        explain: bool,
        /// Hours after the first row that are learnt but not scored.
        #[arg(long, default_value_t = 24)]
        warmup_hours: i64,
    },
    /// Generate a workspace with incidents, replay it, and print the alerts.
    /// Needs no services and no input.
    Demo {
        /// Random seed of the generated workspace.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Days of activity.
        #[arg(long, default_value_t = 21)]
        days: u32,
        /// Number of principals.
        #[arg(long, default_value_t = 60)]
        principals: u32,
        /// Keep the generated data here instead of a temporary directory.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Configuration file with [[sink]] tables: the demo's alerts go there too.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        sinks: SinkArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

/// Where alerts go besides the alerts file, shared by `replay`, `run`,
/// `demo` and `deliver`. Other sinks come from the config file.
#[derive(Debug, clap::Args)]
struct SinkArgs {
    /// POST each alert as JSON to URL (repeatable): a generic webhook sink,
    /// retried with backoff, spooled on disk until delivered.
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    /// Sign webhook bodies with HMAC-SHA256 (header `X-Auditwatch-Signature:
    /// sha256=HEX`) using the key in environment variable NAME.
    #[arg(long, value_name = "NAME")]
    webhook_secret_env: Option<String>,
    /// Seconds to wait at the end for sinks to deliver what they hold;
    /// the rest stays in the spool [default: 30, or [delivery] drain_timeout_seconds].
    #[arg(long, value_name = "S")]
    drain_timeout: Option<f64>,
    /// Folder of the sinks' spools and dead-letter files [default: [delivery]
    /// spool_dir, else `auditwatch-spool`, or STATE_DIR/spool for `run`].
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
}

impl SinkArgs {
    /// The sinks of the config file plus the `--webhook` shortcuts.
    fn delivery(&self, config: Option<&std::path::Path>, detectors: &[&str]) -> Result<DeliveryConfig> {
        let mut delivery = match config {
            Some(path) => DeliveryConfig::load(path, detectors)?,
            None => DeliveryConfig::default(),
        };
        let secret = match &self.webhook_secret_env {
            Some(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => bail!("--webhook-secret-env {name}: the environment variable is not set"),
            },
            None => None,
        };
        for url in &self.webhooks {
            delivery.sinks.push(auditwatch::sink::config::webhook_shortcut(url, secret.clone())?);
        }
        if let Some(s) = self.drain_timeout {
            if !(s.is_finite() && s >= 0.0) {
                bail!("--drain-timeout {s}: not a non-negative number of seconds");
            }
            delivery.drain_timeout = Some(std::time::Duration::from_secs_f64(s));
        }
        if let Some(dir) = &self.spool_dir {
            delivery.spool_dir = Some(dir.clone());
        }
        Ok(delivery)
    }

    /// Opens the sinks of a batch run (`replay`, `demo`, `deliver`).
    fn open(
        &self,
        config: Option<&std::path::Path>,
        detectors: &[&str],
        default_spool: PathBuf,
        registry: &prometheus::Registry,
    ) -> Result<(FanOut, std::time::Duration)> {
        let delivery = self.delivery(config, detectors)?;
        let spool = delivery.spool_dir.clone().unwrap_or(default_spool);
        let fanout = FanOut::open(&delivery, &spool, Mode::Batch, registry)?;
        Ok((fanout, delivery.drain_timeout.unwrap_or(DEFAULT_DRAIN)))
    }
}

/// Metrics served by `replay` and `demo` while they work.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Serve /metrics (Prometheus), /healthz and /readyz on ADDR (e.g. 127.0.0.1:9464) while working.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    /// Keep serving for S seconds after the work is done, so that a scrape reads the final values.
    #[arg(long, value_name = "S", default_value_t = 0.0)]
    linger: f64,
}

impl ServeArgs {
    /// The metrics and, with --serve, the server (ready at once: a replay has no state to restore).
    fn start(&self) -> Result<(Metrics, Option<auditwatch::telemetry::serve::Server>)> {
        let metrics = Metrics::new()?;
        let server = match &self.serve {
            Some(addr) => Some(auditwatch::telemetry::serve::Server::start(
                addr,
                metrics.registry.clone(),
                std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            )?),
            None => None,
        };
        Ok((metrics, server))
    }

    /// Waits --linger seconds when serving.
    fn linger(&self) {
        if self.serve.is_some() && self.linger > 0.0 && self.linger.is_finite() {
            eprintln!("serving metrics for {} s more (--linger)", self.linger);
            std::thread::sleep(std::time::Duration::from_secs_f64(self.linger));
        }
    }
}

/// How long a run waits at its end for sinks to deliver.
const DEFAULT_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Exit status when alerts stay in a spool past the drain timeout
/// (EX_TEMPFAIL: nothing is lost; run again, or `auditwatch deliver`).
const EXIT_UNDELIVERED: i32 = 75;

fn exit_if_undelivered(report: &DeliveryReport) {
    if report.remaining() > 0 {
        eprintln!(
            "{} alerts are not delivered yet and stay in the spool; `auditwatch deliver` (or the next run) sends them",
            report.remaining()
        );
        std::process::exit(EXIT_UNDELIVERED);
    }
}

fn detector_names(config: &PipelineConfig) -> Vec<&str> {
    config.definitions.iter().map(|d| d.name.as_str()).collect()
}

/// What the detectors are told, shared by `replay` and `run`.
#[derive(Debug, clap::Args)]
struct DetectorArgs {
    /// Minutes an audit event (both audit shapes) may arrive after the
    /// newest event and still be counted. Shorthand for
    /// `--lateness audit=MINUTES`.
    #[arg(long, value_name = "MINUTES")]
    allowed_lateness_minutes: Option<u32>,
    /// Allowed lateness of one input shape, as SHAPE=MINUTES (repeatable).
    /// SHAPE is `audit` (both audit shapes), `billing`, or a shape name:
    /// audit_delivery, system_access_audit (default 15 each),
    /// system_billing_usage (default 1440: usage rows are typically
    /// available within 12 hours), system_lakeflow_job_run_timeline and
    /// system_access_table_lineage (default 60). A detector waits for the
    /// longest lateness of the shapes that feed it (or its own
    /// `lateness_minutes`). Overrides the config file's `[time]` section.
    #[arg(long = "lateness", value_name = "SHAPE=MINUTES")]
    lateness: Vec<String>,
    /// Hours of event time over which a record id delivered again is a
    /// duplicate (default 72; never less than the longest lateness + 2).
    #[arg(long, value_name = "HOURS")]
    dedup_hours: Option<i64>,
    /// Most record ids the duplicate filter holds per pipeline (default
    /// 8388608, about 128 MiB); past it the oldest hour is forgotten early
    /// and counted.
    #[arg(long, value_name = "N")]
    dedup_max_ids: Option<usize>,
    /// Detector definition files (TOML) to use instead of the built-in ones.
    #[arg(long = "model", value_name = "FILE")]
    models: Vec<PathBuf>,
    /// Allowlist file (TOML): alerts not to emit, each entry with owner,
    /// reason and expiry (see README, "Allowlist").
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// Access snapshot (JSON lines of group members, admins, grants,
    /// owners, personal-data tags and column masks exported before the
    /// input begins; see README, "Access snapshots"). Repeatable.
    #[arg(long = "access-snapshot", value_name = "FILE")]
    access_snapshots: Vec<PathBuf>,
}

impl DetectorArgs {
    /// Detector definitions, allowlist, access snapshots and lateness.
    fn pipeline_config(&self) -> Result<PipelineConfig> {
        self.pipeline_config_with(&auditwatch::live::config::TimeSection::default())
    }

    /// [`DetectorArgs::pipeline_config`] with a config file's `[time]`.
    fn pipeline_config_with(&self, time: &auditwatch::live::config::TimeSection) -> Result<PipelineConfig> {
        let mut config = PipelineConfig::new(load_definitions(&self.models)?);
        if let Some(path) = &self.allowlist {
            config.allowlist = load_allowlist(path, &config.definitions)?;
        }
        for path in &self.access_snapshots {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            config.access_snapshot.extend(auditwatch::access::parse_snapshot(&path.display().to_string(), &text)?);
        }
        self.apply_time(&mut config, time)?;
        Ok(config)
    }

    /// Lateness and deduplication: the config file's `[time]` first, then
    /// the flags.
    fn apply_time(&self, config: &mut PipelineConfig, file: &auditwatch::live::config::TimeSection) -> Result<()> {
        for (shape, minutes) in &file.lateness_minutes {
            config
                .lateness
                .set_minutes(shape, *minutes)
                .map_err(|e| anyhow::anyhow!("[time] lateness_minutes.{shape}: {e}"))?;
        }
        if let Some(m) = self.allowed_lateness_minutes {
            config.lateness.set_minutes("audit", m).map_err(|e| anyhow::anyhow!("--allowed-lateness-minutes: {e}"))?;
        }
        for a in &self.lateness {
            config.lateness.apply(a).map_err(|e| anyhow::anyhow!("--lateness {e}"))?;
        }
        if let Some(h) = self.dedup_hours.or(file.dedup_hours) {
            config.dedup_hours = h.clamp(1, 24 * 30);
        }
        if let Some(n) = self.dedup_max_ids.or(file.dedup_max_ids) {
            config.dedup_max_ids = n.max(1);
        }
        Ok(())
    }
}

fn parse_time(s: &str) -> Result<EventTime, String> {
    EventTime::parse(s)
        .map_err(|e| format!("{e}: `{s}`; use RFC 3339, `YYYY-MM-DD[ HH:MM:SS]` (UTC) or epoch seconds/ms"))
}

fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_definitions(files: &[PathBuf]) -> Result<Vec<definition::Definition>> {
    if files.is_empty() {
        return Ok(definition::built_in()?);
    }
    let mut defs = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        match definition::parse(&f.display().to_string(), &text) {
            Ok(d) => defs.push(d),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("invalid detector definitions:\n  {}", errors.join("\n  "));
    }
    Ok(defs)
}

fn load_allowlist(path: &std::path::Path, defs: &[definition::Definition]) -> Result<Allowlist> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    Ok(Allowlist::parse(&path.display().to_string(), &text, &names)?)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format, &cli.log);
    match cli.command {
        Command::Run {
            config,
            brokers,
            topics,
            group,
            state_dir,
            alerts_out,
            quarantine,
            quarantine_topic,
            repartition_topic,
            changelog_topic,
            checkpoint_seconds,
            exit_when_idle,
            print_alerts,
            serve,
            linger,
            detectors,
            sinks,
        } => {
            let mut live = match &config {
                Some(path) => LiveConfig::load(path)?,
                None => LiveConfig::default(),
            };
            if let Some(v) = brokers {
                live.brokers = v;
            }
            if !topics.is_empty() {
                live.topics = topics;
            }
            if let Some(v) = group {
                live.group = v;
            }
            if let Some(v) = state_dir {
                live.state_dir = v;
            }
            live.alerts_out = alerts_out.or(live.alerts_out);
            live.quarantine_file = quarantine.or(live.quarantine_file);
            live.quarantine_topic = quarantine_topic.or(live.quarantine_topic);
            live.repartition_topic = repartition_topic.or(live.repartition_topic);
            live.changelog_topic = changelog_topic.or(live.changelog_topic);
            if let Some(s) = checkpoint_seconds {
                live.checkpoint_interval = std::time::Duration::from_secs(s);
            }
            live.validate()?;
            let pipeline = detectors.pipeline_config_with(&live.time)?;
            let mut delivery = sinks.delivery(config.as_deref(), &detector_names(&pipeline))?;
            delivery.spool_dir.get_or_insert_with(|| live.state_dir.join("spool"));
            delivery.drain_timeout.get_or_insert(DEFAULT_DRAIN);
            let opts = RunOptions {
                live,
                exit_when_idle: exit_when_idle.map(std::time::Duration::from_secs_f64),
                print_alerts,
                serve,
                delivery,
                linger: std::time::Duration::from_secs_f64(if linger.is_finite() { linger.max(0.0) } else { 0.0 }),
            };
            let (stats, report) = auditwatch::live::run(&opts, pipeline)?;
            eprint!("{stats}{report}");
            if report.remaining() > 0 {
                eprintln!("{} alerts stay in the spool; the next start delivers them", report.remaining());
            }
        }
        Command::Replay {
            paths,
            from,
            to,
            warmup_hours,
            principal,
            alerts_out,
            quarantine,
            max_record_bytes,
            detectors,
            print_alerts,
            no_progress,
            threads,
            inline_decode,
            as_delivered,
            sort_memory_mib,
            spill_dir,
            config: config_file,
            sinks,
            serve,
        } => {
            let mut config = detectors.pipeline_config()?;
            let (mut metrics, _server) = serve.start()?;
            let (mut fanout, drain) = sinks.open(
                config_file.as_deref(),
                &detector_names(&config),
                PathBuf::from("auditwatch-spool"),
                &metrics.registry,
            )?;
            config.from = from;
            config.to = to;
            config.warmup_ms = warmup_hours * MS_PER_HOUR;
            config.principal = principal;
            let opts = ReplayOptions {
                inputs: paths,
                alerts_out,
                quarantine,
                max_record_bytes,
                progress: !no_progress,
                threads: if inline_decode {
                    1
                } else {
                    threads.map_or_else(auditwatch::pipeline::available_threads, usize::from)
                },
                sort: (!as_delivered).then(|| auditwatch::pipeline::SortOptions {
                    memory_bytes: sort_memory_mib.saturating_mul(1 << 20),
                    spill_dir: spill_dir.unwrap_or_else(std::env::temp_dir),
                }),
            };
            let report = replay_to(&opts, config, &mut fanout, Some(&mut metrics))?;
            let delivery = fanout.finish(drain)?;
            if print_alerts {
                for a in &report.alerts {
                    println!("{}", auditwatch::sink::render_alert(a));
                }
            }
            print!("{}", report.stats.render(report.seconds));
            match report.spilled_bytes {
                0 => println!("order    {}", report.order),
                n => println!("order    {} ({:.0} MB spilled to disk)", report.order, n as f64 / 1e6),
            }
            print!("{delivery}");
            serve.linger();
            exit_if_undelivered(&delivery);
        }
        Command::Generate { days, principals, seed, gzip, out } => {
            let cfg = auditwatch::generate::GenerateConfig { days, principals, seed, gzip, ..Default::default() };
            let summary = auditwatch::generate::generate(&cfg, &out)?;
            println!("wrote {} events ({} bytes) to {}", summary.total_events, summary.bytes, out.display());
            for (kind, n) in &summary.events_by_file_kind {
                println!("  {kind:<28} {n}");
            }
            println!(
                "{} labelled incidents in {}",
                summary.incidents.len(),
                out.join(auditwatch::generate::LABELS).display()
            );
            println!(
                "{} hard negatives (ordinary work that looks unusual) in {}",
                summary.hard_negatives.len(),
                out.join(auditwatch::generate::HARD_NEGATIVES).display()
            );
            println!(
                "{} principals and their archetypes in {}",
                summary.principals.len(),
                out.join(auditwatch::generate::PRINCIPALS).display()
            );
            println!("replay with: auditwatch replay {}", out.join(auditwatch::generate::LOGS_DIR).display());
        }
        Command::TestModels { paths, require_cases, verbose } => {
            let files = match auditwatch::detect::cases::load(&paths) {
                Ok(files) => files,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            };
            let report = auditwatch::detect::cases::run_all(&files, verbose);
            print!("{}", report.table);
            for missing in &report.incomplete {
                println!("{} {missing}", if require_cases { "FAIL  " } else { "note  " });
            }
            println!(
                "{} cases passed, {} failed, {} definitions; {} without both kinds of case",
                report.passed,
                report.failed,
                files.len(),
                report.incomplete.len()
            );
            if !report.ok(require_cases) {
                std::process::exit(1);
            }
        }
        Command::Eval { dir, seeds, days, principals, json, models } => {
            let config = PipelineConfig::new(load_definitions(&models)?);
            let evaluation = match (dir, seeds) {
                (Some(dir), _) => auditwatch::eval::run(&dir, config)?,
                (None, Some(seeds)) => {
                    let template = auditwatch::generate::GenerateConfig { days, principals, ..Default::default() };
                    auditwatch::eval::run_seeds(seeds, &template, &config, |seed, e| {
                        eprintln!(
                            "seed {seed}: {} incidents, {} detected, {} alerts, {} true",
                            e.overall.incidents, e.overall.detected, e.overall.alerts, e.overall.true_alerts
                        )
                    })?
                }
                (None, None) => bail!("give a data set directory or --seeds A-B"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&evaluation)?);
            } else {
                print!("{}", evaluation.render());
            }
        }
        Command::ScoreSeries {
            input,
            out,
            time_column,
            value_column,
            model,
            forgetting,
            two_sided,
            explain,
            warmup_hours,
        } => {
            use auditwatch::score_series::{ScoreOptions, SeriesModel, score_series};
            let model = match model.as_str() {
                "count" => Some(SeriesModel::Count),
                "value" => Some(SeriesModel::Value),
                _ => None,
            };
            let opts = ScoreOptions {
                time_column,
                value_column,
                model,
                forgetting_per_day: forgetting,
                two_sided,
                explain,
                warmup_ms: warmup_hours.max(0) * MS_PER_HOUR,
            };
            let report = score_series(&input, &out, &opts)?;
            eprint!("{}", report.render());
        }
        Command::Demo { seed, days, principals, keep, config, sinks, serve } => {
            let names: Vec<String> = load_definitions(&[])?.into_iter().map(|d| d.name).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let (mut metrics, _server) = serve.start()?;
            let (fanout, drain) =
                sinks.open(config.as_deref(), &names, PathBuf::from("auditwatch-spool"), &metrics.registry)?;
            let delivery =
                auditwatch::demo::run(seed, days, principals, keep.as_deref(), fanout, drain, Some(&mut metrics))?;
            serve.linger();
            exit_if_undelivered(&delivery);
        }
        Command::Deliver { config, state_dir, requeue_dead_letters, sinks } => {
            let names: Vec<String> = load_definitions(&[])?.into_iter().map(|d| d.name).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let default_spool = match &state_dir {
                Some(d) => d.join("spool"),
                None => PathBuf::from("auditwatch-spool"),
            };
            // Only the remote sinks have spools; files and stdout are left alone.
            let mut delivery = sinks.delivery(config.as_deref(), &names)?;
            delivery.sinks.retain(|s| s.kind.is_remote());
            if delivery.sinks.is_empty() {
                bail!("no remote sinks: pass --config FILE (with [[sink]] tables) or --webhook URL");
            }
            let spool = delivery.spool_dir.clone().unwrap_or(default_spool);
            let mut fanout = FanOut::open(&delivery, &spool, Mode::Batch, &prometheus::Registry::new())?;
            if requeue_dead_letters {
                println!("{} dead-lettered alerts put back into the spools", fanout.requeue_dead_letters()?);
            }
            let report = fanout.finish(delivery.drain_timeout.unwrap_or(DEFAULT_DRAIN))?;
            print!("{report}");
            exit_if_undelivered(&report);
        }
    }
    Ok(())
}
