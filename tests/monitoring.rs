//! The monitoring files (deploy/prometheus/encaisse.rules.yml, deploy/grafana/encaisse.json)
//! name only metrics the daemon exports, and the counters the alerts read with `increase()`
//! are on `/metrics` from the start (a series born at 1 shows no increase, so its first
//! event would never alert). `promtool check rules` checks the syntax in CI.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{BROKER_URL, Daemon, Topology, get, unique_prefix, wait_for_status, write_config};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `encaisse_…` metric name in `text`, histogram series reduced to their metric.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("encaisse_") {
        let start = at + found;
        let preceded = start > 0 && is_name_byte(bytes[start - 1]);
        let end = start
            + text[start..]
                .bytes()
                .take_while(|b| is_name_byte(*b))
                .count();
        if !preceded {
            let name = &text[start..end];
            let metric = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(metric.to_string());
        }
        at = end;
    }
    names
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// The metric names the sources register: the first argument of `counter!`, `gauge!`,
/// `histogram!` (and their `describe_` forms) when it is a literal, and the `&str`
/// constants holding a metric name (`pub const ERRORS: &str = "encaisse_…"`) that the
/// macros are given instead.
fn exported_by_sources() -> BTreeSet<String> {
    let root = root();
    let mut dirs = vec![root.join("src"), root.join("pipelines/src")];
    for adapter in std::fs::read_dir(root.join("adapters")).unwrap() {
        dirs.push(adapter.unwrap().path().join("src"));
    }
    let mut names = BTreeSet::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                names.extend(registered_in(&std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    names
}

fn registered_in(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for macro_name in ["counter!(", "gauge!(", "histogram!(", ": &str ="] {
        for (at, _) in source.match_indices(macro_name) {
            let rest = source[at + macro_name.len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"')
                && let Some(end) = literal.find('"')
                && literal[..end].starts_with("encaisse_")
            {
                names.push(literal[..end].to_string());
            }
        }
    }
    names
}

fn rules() -> String {
    std::fs::read_to_string(root().join("deploy/prometheus/encaisse.rules.yml")).unwrap()
}

fn dashboard_expressions() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/encaisse.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    let mut rows = vec![];
    for panel in dashboard["panels"].as_array().unwrap() {
        rows.push(panel["title"].as_str().unwrap_or_default().to_string());
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for area in ["Flow", "Parked", "Inboxes", "Gateway", "Files"] {
        assert!(
            rows.iter().any(|r| r == area),
            "no row {area} in the dashboard"
        );
    }
    exprs
}

/// The metrics inside `increase(…)` in `rules`.
fn read_with_increase(rules: &str) -> BTreeSet<String> {
    rules
        .match_indices("increase(")
        .flat_map(|(at, _)| {
            let inner = &rules[at + "increase(".len()..];
            let end = inner.find(')').unwrap_or(inner.len());
            metric_names(&inner[..end])
        })
        .collect()
}

#[test]
fn every_metric_of_the_rules_and_the_dashboard_is_exported() {
    let exported = exported_by_sources();
    assert!(
        exported.contains("encaisse_broker_connected"),
        "{exported:?}"
    );
    let mut named = metric_names(&rules());
    assert!(named.len() >= 10, "the rules name metrics: {named:?}");
    for expr in dashboard_expressions() {
        named.extend(metric_names(&expr));
    }
    let unknown: Vec<_> = named.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "named by deploy/prometheus or deploy/grafana but not exported by the daemon: {unknown:?}"
    );
}

#[test]
fn the_scan_finds_names_in_expressions_and_literals() {
    assert_eq!(
        metric_names(
            "sum by (stage, le) (rate(encaisse_stage_duration_seconds_bucket[5m])) + x_encaisse_no"
        ),
        BTreeSet::from(["encaisse_stage_duration_seconds".to_string()])
    );
    assert_eq!(
        registered_in("metrics::counter!(\n  \"encaisse_a_total\", \"t\" => x); gauge!(name)"),
        ["encaisse_a_total"]
    );
    assert_eq!(
        registered_in("pub const ERRORS: &str = \"encaisse_b_total\";"),
        ["encaisse_b_total"]
    );
    assert_eq!(
        read_with_increase("sum(increase(encaisse_a_total[1d])) > 0 or rate(encaisse_b_total[5m])"),
        BTreeSet::from(["encaisse_a_total".to_string()])
    );
}

#[tokio::test]
async fn counters_read_with_increase_are_on_metrics_from_the_start() {
    let wanted = read_with_increase(&rules());
    assert!(
        wanted.contains("encaisse_helios_unmatched_total"),
        "{wanted:?}"
    );
    let prefix = unique_prefix("monitoring");
    let _topology = Topology(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prefix, BROKER_URL);
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, Duration::from_secs(30)).await;
    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for name in &wanted {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) && l.ends_with(" 0")),
            "{name} is not registered at 0 at start:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("encaisse_drain_failures_total{drain=\"ops.parking\"} 0"),
        "{metrics}"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(30)).code(), Some(0));
}
