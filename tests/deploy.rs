//! The deployment files stay true to the program: the configs they ship
//! are accepted by auditwatch, the ports and probe paths match what it
//! serves, every file a Dockerfile, compose file or provisioning file names
//! exists, the rules pass promtool, and the systemd unit passes
//! `systemd-analyze verify`. (No Docker engine or cluster here: the images
//! and manifests are checked, not run.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// YAML documents as JSON, through Python's PyYAML (scripts/test.sh installs it).
fn yaml(path: &Path) -> Option<Vec<serde_json::Value>> {
    let script = "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let out = Command::new("python3").args(["-c", script]).arg(path).output().ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No module named 'yaml'"), "{}: {err}", path.display());
        assert!(std::env::var_os("AUDITWATCH_REQUIRE_PYARROW").is_none(), "PyYAML is required");
        eprintln!("skipped: PyYAML is not installed");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// A config file as auditwatch reads it: live settings and sinks, with
/// every `*_env` secret it names present.
fn check_config(name: &str, text: &str) {
    let path = Path::new(name);
    let live = auditwatch::live::LiveConfig::parse(path, text).unwrap_or_else(|e| panic!("{name}: {e}"));
    live.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    let env: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once("_env = ").map(|(_, v)| (v.trim().trim_matches('"').to_owned(), "x".to_owned())))
        .collect();
    let names: Vec<String> = auditwatch::detect::definition::built_in().unwrap().into_iter().map(|d| d.name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    auditwatch::sink::config::DeliveryConfig::parse(path, text, &names, &env).unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[test]
fn shipped_configs_are_accepted() {
    let compose = std::fs::read_to_string(repo().join("deploy/compose/auditwatch.toml")).unwrap();
    check_config("deploy/compose/auditwatch.toml", &compose);
    if let Some(docs) = yaml(&repo().join("deploy/k8s/configmap.yaml")) {
        let text = docs[0]["data"]["auditwatch.toml"].as_str().unwrap();
        check_config("deploy/k8s/configmap.yaml", text);
        // Every secret the config names is in the Secret the pod loads.
        let secret = &yaml(&repo().join("deploy/k8s/secret.yaml")).unwrap()[0]["stringData"];
        for line in text.lines().filter(|l| l.contains("_env = ")) {
            let var = line.split_once("_env = ").unwrap().1.trim().trim_matches('"');
            assert!(secret.get(var).is_some(), "secret.yaml lacks {var}");
        }
    }
}

#[test]
fn kubernetes_probes_and_ports_match_what_auditwatch_serves() {
    let Some(docs) = yaml(&repo().join("deploy/k8s/deployment.yaml")) else { return };
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Deployment", "Service", "ServiceMonitor", "PodDisruptionBudget"]);
    let pod = &docs[0]["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let serve = args[args.iter().position(|a| *a == "--serve").unwrap() + 1];
    assert_eq!(serve, "0.0.0.0:9464");
    assert_eq!(c["ports"][0]["containerPort"], 9464);
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "9464");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The config the pod reads is the ConfigMap's file, at the path in its args.
    let config = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "config").unwrap();
    assert_eq!(Path::new(config).parent().unwrap(), Path::new(mount["mountPath"].as_str().unwrap()));
    // The flags parse.
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch")).arg("run").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--") && !["--log-format", "--log"].contains(a)) {
        assert!(help.contains(flag), "`auditwatch run` has no {flag}");
    }
}

#[test]
fn compose_and_dockerfile_name_files_that_exist() {
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(repo().join(src).exists(), "Dockerfile copies {src}, which is not in the repository");
        }
    }
    let Some(docs) = yaml(&repo().join("deploy/compose/docker-compose.yml")) else { return };
    let services = docs[0]["services"].as_object().unwrap();
    for name in ["kafka", "auditwatch", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "compose lacks {name}");
    }
    let dir = repo().join("deploy/compose");
    for service in services.values() {
        for v in service["volumes"].as_array().into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(dir.join(source).exists(), "compose mounts {source}, which does not exist");
            }
        }
    }
    // Grafana's provisioning points where compose mounts the dashboards.
    let provider = yaml(&repo().join("grafana/provisioning/dashboards/auditwatch.yaml")).unwrap();
    let path = provider[0]["providers"][0]["options"]["path"].as_str().unwrap();
    let grafana_volumes = services["grafana"]["volumes"].as_array().unwrap();
    assert!(grafana_volumes.iter().any(|v| v.as_str().unwrap().contains(&format!(":{path}:"))), "{path}");
}

#[test]
fn rules_pass_promtool_and_the_unit_passes_systemd_analyze() {
    match Command::new("promtool").args(["check", "rules"]).arg(repo().join("deploy/prometheus/rules.yml")).output() {
        Ok(out) => assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => assert!(std::env::var_os("AUDITWATCH_REQUIRE_PROMETHEUS").is_none(), "promtool is required"),
    }
    // The unit is checked wherever the tests run: scripts/test.sh installs
    // systemd-analyze, and only an explicit opt-out skips the check.
    let out = match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("AUDITWATCH_SKIP_SYSTEMD_ANALYZE").is_some() {
                eprintln!("skipped: no systemd-analyze, and AUDITWATCH_SKIP_SYSTEMD_ANALYZE is set");
                return;
            }
            panic!(
                "systemd-analyze is required to verify deploy/systemd/auditwatch.service: \
                 install Debian's `systemd` package (apt-get install -y systemd; scripts/test.sh does), \
                 or set AUDITWATCH_SKIP_SYSTEMD_ANALYZE=1 to skip this check"
            );
        }
        Err(e) => panic!("systemd-analyze cannot be run: {e}"),
    };
    assert!(out.status.success(), "systemd-analyze --version: {}", String::from_utf8_lossy(&out.stderr));
    // The unit as installed, with the binary where ExecStart expects it.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/auditwatch.service"))
        .unwrap()
        .replace("/usr/local/bin/auditwatch", env!("CARGO_BIN_EXE_auditwatch"));
    let path = dir.path().join("auditwatch.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = err.lines().filter(|l| l.contains("auditwatch.service")).collect();
    assert!(out.status.success() && problems.is_empty(), "{err}");
}

#[test]
fn dashboards_are_well_formed_for_grafana() {
    let mut uids = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(uids.insert(d["uid"].as_str().unwrap().to_owned()), "{name}: uid used twice");
        assert!(d["title"].as_str().is_some_and(|t| t.starts_with("auditwatch")), "{name}");
        let vars: Vec<&str> =
            d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        let mut ids = std::collections::BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{name}: panel id used twice");
            let g = &p["gridPos"];
            assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "{name}/{title}: wider than the grid");
            assert!(["timeseries", "stat"].contains(&p["type"].as_str().unwrap()), "{name}/{title}");
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}/{title}: not on the datasource variable");
            let mut refs = std::collections::BTreeSet::new();
            for t in p["targets"].as_array().unwrap() {
                assert!(refs.insert(t["refId"].as_str().unwrap().to_owned()), "{name}/{title}: refId twice");
                let expr = t["expr"].as_str().unwrap();
                for var in ["instance", "datasource"] {
                    if expr.contains(&format!("${var}")) {
                        assert!(vars.contains(&var), "{name}/{title}: ${var} is not a variable");
                    }
                }
                assert!(expr.contains("$instance"), "{name}/{title}: `{expr}` ignores the instance filter");
            }
        }
    }
    assert_eq!(uids.len(), 4);
}
