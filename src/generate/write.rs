//! Renders the simulated world in the real Databricks shapes and writes the
//! output tree. Every value written is generated here and free of quotes
//! and backslashes (checked in debug builds), so lines are formatted
//! directly instead of through a JSON tree: a million events take seconds.

use super::{
    ACCESS_SNAPSHOT, ACCOUNT_ID, Act, GenerateError, GenerateSummary, HARD_NEGATIVES, LABELS, LOGS_DIR, PRINCIPALS,
    Rec, RunSlice, Sim, Usage, WORKSPACE_A, WORKSPACE_B, World, rfc3339, uuid,
};
use crate::time::{EventTime, MS_PER_DAY};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written, plain or gzip, counting bytes and lines.
struct Out {
    path: PathBuf,
    w: Box<dyn Write>,
    bytes: u64,
    lines: u64,
}

impl Out {
    fn create(path: PathBuf, gzip: bool) -> Result<Out, GenerateError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| GenerateError::Io { path: dir.into(), source })?;
        }
        let f = File::create(&path).map_err(|source| GenerateError::Io { path: path.clone(), source })?;
        let w: Box<dyn Write> = if gzip {
            Box::new(flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::fast()))
        } else {
            Box::new(BufWriter::new(f))
        };
        Ok(Out { path, w, bytes: 0, lines: 0 })
    }

    fn line(&mut self, s: &str) -> Result<(), GenerateError> {
        debug_assert!(!s.contains('\n'));
        self.bytes += s.len() as u64 + 1;
        self.lines += 1;
        self.w
            .write_all(s.as_bytes())
            .and_then(|_| self.w.write_all(b"\n"))
            .map_err(|source| GenerateError::Io { path: self.path.clone(), source })
    }

    fn finish(mut self) -> Result<(u64, u64), GenerateError> {
        self.w.flush().map_err(|source| GenerateError::Io { path: self.path.clone(), source })?;
        Ok((self.lines, self.bytes))
    }
}

/// The rendered parts of an action.
struct Parts {
    service: &'static str,
    action: &'static str,
    /// Request parameters as `"k":"v"` pairs, without braces.
    params: String,
    status: u16,
    /// Whether the actor is authenticated (failed logins are not).
    authenticated: bool,
    account_level: bool,
}

fn parts(w: &World, r: &Rec) -> Parts {
    let who = &w.people[r.who];
    let (service, action, params, status, authenticated, account_level) = match &r.act {
        Act::Query { warehouse, command } => (
            "databrickssql",
            "commandSubmit",
            format!(
                r#""warehouseId":"wh-{warehouse:04}","commandId":"cmd-{command:x}","commandText":"SELECT region, sum(amount) FROM main.sales.orders WHERE day >= current_date() - {} GROUP BY region""#,
                command % 30
            ),
            200,
            true,
            false,
        ),
        Act::QueryFinish { warehouse, command } => (
            "databrickssql",
            "commandFinish",
            format!(r#""warehouseId":"wh-{warehouse:04}","commandId":"cmd-{command:x}""#),
            200,
            true,
            false,
        ),
        Act::Notebook { notebook, command } => (
            "notebook",
            "runCommand",
            format!(
                r#""notebookId":"{notebook}","commandId":"{command}","executionTime":"1.42","status":"finished","commandText":"display(spark.table('main.ml.features').limit(100))""#
            ),
            200,
            true,
            false,
        ),
        Act::ReadTable { table } => {
            ("unityCatalog", "getTable", format!(r#""full_name_arg":"{table}""#), 200, true, false)
        }
        Act::Login { method, failed, user } => {
            let m = if *method == "samlLogin" { "SAML" } else { "password" };
            let name = &w.people[*user].name;
            (
                "accounts",
                if *method == "samlLogin" { "samlLogin" } else { "login" },
                format!(r#""user":"{name}","authenticationMethod":"{m}""#),
                if *failed { 401 } else { 200 },
                !*failed,
                false,
            )
        }
        Act::RemoveUser { user } => (
            "accounts",
            "delete",
            format!(r#""targetUserName":"{}","endpoint":"/users""#, w.people[*user].name),
            200,
            true,
            true,
        ),
        Act::RevokeToken { token } => {
            ("accounts", "revokeDbToken", format!(r#""tokenId":"{token:x}""#), 200, true, false)
        }
        Act::TokenLogin { token, failed } => (
            "accounts",
            "tokenLogin",
            format!(r#""tokenId":"{token:x}","user":"{}","authenticationMethod":"API_INT_PAT_TOKEN""#, who.name),
            if *failed { 401 } else { 200 },
            !*failed,
            false,
        ),
        Act::Token { lifetime_days } => (
            "accounts",
            "generateDbToken",
            format!(
                r#""tokenExpirationTime":"{}","lifetimeSeconds":"{}","comment":"automation""#,
                r.time + *lifetime_days as i64 * MS_PER_DAY,
                *lifetime_days as i64 * 86_400
            ),
            200,
            true,
            false,
        ),
        Act::Secret { scope, key } => {
            ("secrets", "getSecret", format!(r#""scope":"{scope}","key":"{key}""#), 200, true, false)
        }
        Act::Grant { table, grantee } => (
            "unityCatalog",
            "updatePermissions",
            format!(
                r#""securable_type":"table","securable_full_name":"{table}","changes":"[{{\"principal\":\"{}\",\"add\":[\"SELECT\"]}}]""#,
                w.people[*grantee].name
            ),
            200,
            true,
            false,
        ),
        Act::GroupAdd { member, group } => (
            "accounts",
            "addPrincipalToGroup",
            format!(r#""targetUserName":"{}","targetGroupName":"{group}""#, w.people[*member].name),
            200,
            true,
            true,
        ),
        Act::Download => (
            "databrickssql",
            "downloadQueryResult",
            format!(r#""queryResultId":"qr-{}""#, r.time % 1_000_000),
            200,
            true,
            false,
        ),
        Act::ClusterStart { cluster } => {
            ("clusters", "start", format!(r#""cluster_id":"0101-{cluster:06}-abcd{cluster}""#), 200, true, false)
        }
        Act::RunStart { job, run } => (
            "jobs",
            "runStart",
            format!(r#""jobId":"{job}","runId":"{run}","jobClusterType":"job_cluster","jobTaskType":"NOTEBOOK_TASK""#),
            200,
            true,
            false,
        ),
        Act::RunEnd { job, run, failed } => (
            "jobs",
            if *failed { "runFailed" } else { "runSucceeded" },
            format!(
                r#""jobId":"{job}","runId":"{run}","jobClusterType":"job_cluster","jobTaskType":"NOTEBOOK_TASK","jobTerminalState":"{}""#,
                if *failed { "Failed" } else { "Succeeded" }
            ),
            200,
            true,
            false,
        ),
    };
    debug_assert!(!who.name.contains('"'));
    Parts { service, action, params, status, authenticated, account_level }
}

fn delivered(line: &mut String, w: &World, r: &Rec, p: &Parts, request_id: &str) {
    let who = &w.people[r.who];
    let (level, org, ws, shard) = if p.account_level {
        ("ACCOUNT_LEVEL", 0, "0".to_owned(), "null".to_owned())
    } else {
        ("WORKSPACE_LEVEL", who.workspace, who.workspace.to_string(), "\"oregon\"".to_owned())
    };
    let email = if p.authenticated { who.name.as_str() } else { "" };
    let response = if p.status >= 400 {
        format!(r#"{{"statusCode":{},"errorMessage":"Invalid credentials","result":null}}"#, p.status)
    } else {
        format!(r#"{{"statusCode":{},"errorMessage":null,"result":null}}"#, p.status)
    };
    line.clear();
    let _ = write!(
        line,
        r#"{{"version":"2.0","auditLevel":"{level}","timestamp":{},"orgId":{org},"workspaceId":"{ws}","shardName":{shard},"accountId":"{ACCOUNT_ID}","sourceIPAddress":"{}","userAgent":"{}","sessionId":null,"userIdentity":{{"email":"{email}","subjectName":null}},"serviceName":"{}","actionName":"{}","requestId":"{request_id}","requestParams":{{{}}},"response":{response}}}"#,
        r.time, w.sources[r.source as usize].0, w.sources[r.source as usize].1, p.service, p.action, p.params,
    );
}

fn system_row(line: &mut String, w: &World, r: &Rec, p: &Parts, request_id: &str, event_id: &str) {
    let who = &w.people[r.who];
    let email = if p.authenticated { who.name.as_str() } else { "" };
    let t = EventTime(r.time).to_string();
    let run_as = if who.human { "null".to_owned() } else { format!("\"{}\"", who.name) };
    line.clear();
    let _ = write!(
        line,
        r#"{{"account_id":"{ACCOUNT_ID}","workspace_id":"{}","version":"2.0","event_time":"{t}","event_date":"{}","source_ip_address":"{}","user_agent":"{}","session_id":null,"user_identity":{{"email":"{email}","subject_name":null}},"service_name":"{}","action_name":"{}","request_id":"{request_id}","request_params":{{{}}},"response":{{"status_code":{},"error_message":{},"result":null}},"audit_level":"WORKSPACE_LEVEL","event_id":"{event_id}","identity_metadata":{{"run_by":"{email}","run_as":{run_as},"acting_as":null}}}}"#,
        who.workspace,
        &t[..10],
        w.sources[r.source as usize].0,
        w.sources[r.source as usize].1,
        p.service,
        p.action,
        p.params,
        p.status,
        if p.status >= 400 { "\"Invalid credentials\"" } else { "null" },
    );
}

fn usage_row(line: &mut String, w: &mut World, u: &Usage) {
    let record_id = uuid(&mut w.rng);
    let opt = |v: Option<String>| v.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "null".to_owned());
    let run_as = opt(u.run_as.map(|i| w.people[i].name.clone()));
    let (job, run) = match u.job {
        Some((j, r)) => (opt(Some(j.to_string())), opt(Some(r.to_string()))),
        None => ("null".to_owned(), "null".to_owned()),
    };
    let warehouse = opt(u.warehouse.map(|n| format!("wh-{n:04}")));
    let product = if u.job.is_some() {
        "JOBS"
    } else if u.warehouse.is_some() {
        "SQL"
    } else {
        "INTERACTIVE"
    };
    let end = rfc3339(u.end);
    line.clear();
    let _ = write!(
        line,
        r#"{{"record_id":"{record_id}","account_id":"{ACCOUNT_ID}","workspace_id":"{}","sku_name":"{}","cloud":"AWS","usage_start_time":"{}","usage_end_time":"{end}","usage_date":"{}","custom_tags":{{}},"usage_unit":"DBU","usage_quantity":{:.6},"usage_metadata":{{"cluster_id":null,"job_id":{job},"warehouse_id":{warehouse},"notebook_id":null,"job_run_id":{run},"dlt_pipeline_id":null,"endpoint_name":null,"instance_pool_id":null,"node_type":null}},"identity_metadata":{{"run_as":{run_as},"owned_by":null,"created_by":null}},"record_type":"ORIGINAL","ingestion_date":"{}","billing_origin_product":"{product}","product_features":{{"is_serverless":{}}},"usage_type":"COMPUTE_TIME"}}"#,
        u.workspace,
        u.sku,
        rfc3339(u.start),
        &rfc3339(u.start)[..10],
        u.dbus,
        &end[..10],
        u.sku.contains("SERVERLESS"),
    );
}

fn price_rows(w: &World) -> Vec<String> {
    let mid = w.cfg.start.0 + (w.cfg.days as i64 / 2) * MS_PER_DAY;
    let since = "2023-01-01T00:00:00.000Z";
    let row = |sku: &str, start: &str, end: Option<String>, price: &str| {
        format!(
            r#"{{"price_start_time":"{start}","price_end_time":{},"account_id":"{ACCOUNT_ID}","sku_name":"{sku}","cloud":"AWS","currency_code":"USD","usage_unit":"DBU","pricing":{{"default":"{price}","promotional":{{"default":"{price}"}},"effective_list":{{"default":"{price}"}}}}}}"#,
            end.map(|e| format!("\"{e}\"")).unwrap_or_else(|| "null".to_owned())
        )
    };
    vec![
        // A price change halfway through the period.
        row("PREMIUM_JOBS_COMPUTE", since, Some(rfc3339(mid)), "0.150000000000000000"),
        row("PREMIUM_JOBS_COMPUTE", &rfc3339(mid), None, "0.180000000000000000"),
        row("PREMIUM_SQL_PRO_COMPUTE", since, None, "0.550000000000000000"),
        row("PREMIUM_SERVERLESS_NOTEBOOKS", since, None, "0.950000000000000000"),
    ]
}

fn timeline_row(line: &mut String, s: &RunSlice) {
    let result = match s.result {
        None => ("null", "null"),
        Some(true) => ("\"SUCCEEDED\"", "\"SUCCESS\""),
        Some(false) => ("\"FAILED\"", "\"RUN_EXECUTION_ERROR\""),
    };
    line.clear();
    let _ = write!(
        line,
        r#"{{"account_id":"{ACCOUNT_ID}","workspace_id":"{WORKSPACE_B}","job_id":"{}","run_id":"{}","period_start_time":"{}","period_end_time":"{}","trigger_type":"CRON","run_type":"JOB_RUN","run_name":"job-{}","compute_ids":["0101-000000-job{}"],"result_state":{},"termination_code":{},"job_parameters":{{}}}}"#,
        s.job,
        s.run,
        rfc3339(s.start),
        rfc3339(s.end),
        s.job,
        s.job,
        result.0,
        result.1,
    );
}

/// Writes every file of the data set.
pub(super) fn all(w: &mut World, sim: &mut Sim, out: &Path) -> Result<GenerateSummary, GenerateError> {
    let (recs, usage, slices) = (&mut sim.recs, &mut sim.usage, &mut sim.slices);
    // Ids come from a stream of their own, so adding an event kind later
    // does not reshuffle every id.
    w.rng = rand::SeedableRng::seed_from_u64(w.cfg.seed ^ 0x05ee_d1d5);
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut bytes = 0;
    let mut line = String::with_capacity(1024);
    let logs = out.join(LOGS_DIR);
    let out = logs.as_path();
    let mut system = Out::create(out.join(format!("system/access_audit/workspace_{WORKSPACE_B}.jsonl")), false)?;
    let ext = if w.cfg.gzip { "json.gz" } else { "json" };
    let (mut n_delivered, mut n_system) = (0, 0);
    for (day, list) in recs.iter_mut().enumerate() {
        list.sort_by_key(|r| (r.order, r.who));
        let date = &rfc3339(w.cfg.start.0 + day as i64 * MS_PER_DAY)[..10];
        let compact = date.replace('-', "");
        let mut files: Vec<(u64, Out)> = Vec::new();
        for r in list.iter() {
            let p = parts(w, r);
            let request_id = uuid(&mut w.rng);
            let who_ws = w.people[r.who].workspace;
            if who_ws == WORKSPACE_B && !p.account_level {
                let event_id = uuid(&mut w.rng);
                system_row(&mut line, w, r, &p, &request_id, &event_id);
                system.line(&line)?;
                n_system += 1;
                continue;
            }
            let ws = if p.account_level { 0 } else { WORKSPACE_A };
            let idx = match files.iter().position(|(k, _)| *k == ws) {
                Some(i) => i,
                None => {
                    let path =
                        out.join(format!("audit-logs/workspaceId={ws}/date={date}/auditlogs_{ws}_{compact}.{ext}"));
                    files.push((ws, Out::create(path, w.cfg.gzip)?));
                    files.len() - 1
                }
            };
            delivered(&mut line, w, r, &p, &request_id);
            files[idx].1.line(&line)?;
            n_delivered += 1;
        }
        for (_, f) in files {
            bytes += f.finish()?.1;
        }
    }
    bytes += system.finish()?.1;
    counts.push(("audit_delivery".into(), n_delivered));
    counts.push(("system_access_audit".into(), n_system));

    usage.sort_by(|a, b| (a.end, a.workspace, a.sku, a.start).cmp(&(b.end, b.workspace, b.sku, b.start)));
    let mut f = Out::create(out.join("system/billing_usage/usage.jsonl"), false)?;
    for u in usage.iter() {
        usage_row(&mut line, w, u);
        f.line(&line)?;
    }
    let (n, b) = f.finish()?;
    counts.push(("system_billing_usage".into(), n));
    bytes += b;

    let mut f = Out::create(out.join("system/list_prices/list_prices.jsonl"), false)?;
    for row in price_rows(w) {
        f.line(&row)?;
    }
    let (n, b) = f.finish()?;
    counts.push(("system_billing_list_prices".into(), n));
    bytes += b;

    slices.sort_by_key(|s| (s.end, s.run));
    let mut f = Out::create(out.join("system/job_run_timeline/job_run_timeline.jsonl"), false)?;
    for s in slices.iter() {
        timeline_row(&mut line, s);
        f.line(&line)?;
    }
    let (n, b) = f.finish()?;
    counts.push(("system_lakeflow_job_run_timeline".into(), n));
    bytes += b;

    w.lineage.sort();
    let mut f = Out::create(out.join("system/table_lineage/table_lineage.jsonl"), false)?;
    for (i, (t, who, source, target)) in w.lineage.iter().enumerate() {
        let p = &w.people[*who];
        f.line(&format!(
            r#"{{"account_id":"{ACCOUNT_ID}","metastore_id":"ms-1","workspace_id":"{}","entity_type":"NOTEBOOK","source_table_full_name":"{source}","source_type":"TABLE","target_table_full_name":"{target}","target_type":"TABLE","created_by":"{}","event_time":"{}","event_date":"{}","record_id":"lineage-{i:06}"}}"#,
            p.workspace,
            p.name,
            EventTime(*t),
            &EventTime(*t).to_string()[..10],
        ))?;
    }
    let (n, b) = f.finish()?;
    counts.push(("system_access_table_lineage".into(), n));
    bytes += b;

    // Labels and notes sit beside the logs, not among them: replaying the
    // logs folder reads only data.
    let out = out.parent().unwrap_or(out);
    let mut f = Out::create(out.join(ACCESS_SNAPSHOT), false)?;
    for fact in super::access_snapshot(w) {
        f.line(&fact)?;
    }
    f.finish()?;
    let hard_negatives = w.hard_negatives();
    let principals = w.principal_records();
    jsonl(&out.join(LABELS), &w.labels)?;
    jsonl(&out.join(HARD_NEGATIVES), &hard_negatives)?;
    jsonl(&out.join(PRINCIPALS), &principals)?;
    let mut f = Out::create(out.join("README.txt"), false)?;
    f.line(&format!(
        "Synthetic Databricks activity written by `auditwatch generate --days {} --principals {} --seed {}`: no row is real.",
        w.cfg.days, w.cfg.principals, w.cfg.seed
    ))?;
    f.line("labels.jsonl lists the injected incidents.")?;
    f.line("hard_negatives.jsonl lists windows of ordinary work that look unusual (weekend and night work, on-call sessions, travel, month-end close, long backfills): they are not incidents.")?;
    f.line("principals.jsonl gives every principal's kind and behaviour archetype.")?;
    f.line("Monday reports, late joiners, a holiday, growing workloads, roaming users, browser updates and SQL connectors are ordinary too, and listed nowhere.")?;
    f.finish()?;

    let total_events = counts.iter().map(|(_, n)| n).sum();
    Ok(GenerateSummary {
        events_by_file_kind: counts,
        incidents: w.labels.clone(),
        hard_negatives,
        principals,
        total_events,
        bytes,
    })
}

/// Writes `items` as JSON lines.
fn jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> Result<(), GenerateError> {
    let mut f = Out::create(path.to_path_buf(), false)?;
    for item in items {
        let text =
            serde_json::to_string(item).map_err(|e| GenerateError::Io { path: path.into(), source: e.into() })?;
        f.line(&text)?;
    }
    f.finish().map(|_| ())
}
