//! The daemon's own figures, from its `/metrics` page: what each stage handled and how long
//! a message took on average — where the time went.

use std::collections::BTreeMap;

/// One stage's figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StageFigures {
    pub stage: String,
    /// `encaisse_stage_processed_total`.
    pub processed: u64,
    /// `encaisse_stage_duplicates_total`: redeliveries recognised.
    pub duplicates: u64,
    /// `encaisse_stage_retried_total`, every kind.
    pub retried: u64,
    /// `encaisse_stage_parked_total`, every class and kind.
    pub parked: u64,
    /// Mean of `encaisse_stage_duration_seconds` (delivery to ack), in milliseconds.
    pub mean_ms: Option<f64>,
}

/// The value of label `name` in `{a="x",name="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(&labels[start..end])
}

/// Parses the Prometheus text of `/metrics` into per-stage figures, by stage name.
pub fn stage_figures(text: &str) -> Vec<StageFigures> {
    let mut stages: BTreeMap<String, StageFigures> = BTreeMap::new();
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let Some(stage) = label(labels, "stage") else {
            continue;
        };
        let entry = stages
            .entry(stage.to_string())
            .or_insert_with(|| StageFigures {
                stage: stage.to_string(),
                ..StageFigures::default()
            });
        let count = value as u64;
        match name {
            "encaisse_stage_processed_total" => entry.processed += count,
            "encaisse_stage_duplicates_total" => entry.duplicates += count,
            "encaisse_stage_retried_total" => entry.retried += count,
            "encaisse_stage_parked_total" => entry.parked += count,
            "encaisse_stage_duration_seconds_sum" => {
                sums.entry(stage.to_string()).or_default().0 += value
            }
            "encaisse_stage_duration_seconds_count" => {
                sums.entry(stage.to_string()).or_default().1 += value
            }
            _ => {}
        }
    }
    for (stage, (sum, count)) in sums {
        if count > 0.0
            && let Some(entry) = stages.get_mut(&stage)
        {
            entry.mean_ms = Some(sum / count * 1000.0);
        }
    }
    stages.into_values().collect()
}

/// The daemon's `/metrics` page, as text.
pub async fn fetch_text(http: &reqwest::Client, base_url: &str) -> Result<String, reqwest::Error> {
    http.get(format!("{base_url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// Fetches and parses the daemon's `/metrics`.
pub async fn fetch(
    http: &reqwest::Client,
    base_url: &str,
) -> Result<Vec<StageFigures>, reqwest::Error> {
    Ok(stage_figures(&fetch_text(http, base_url).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_series_are_summed_by_stage() {
        let text = r#"# TYPE encaisse_stage_processed_total counter
encaisse_stage_processed_total{stage="helios.titres"} 1000
encaisse_stage_processed_total{stage="payfip.register"} 998
encaisse_stage_retried_total{stage="helios.titres",kind="ledger"} 2
encaisse_stage_retried_total{stage="helios.titres",kind="busy"} 1
encaisse_stage_parked_total{stage="payfip.register",class="permanent",kind="x"} 1
encaisse_stage_duplicates_total{stage="helios.titres"} 5
encaisse_stage_duration_seconds_bucket{stage="helios.titres",le="0.005"} 900
encaisse_stage_duration_seconds_sum{stage="helios.titres"} 4.5
encaisse_stage_duration_seconds_count{stage="helios.titres"} 1000
encaisse_broker_connected 1
"#;
        let figures = stage_figures(text);
        assert_eq!(figures.len(), 2);
        let helios = &figures[0];
        assert_eq!(helios.stage, "helios.titres");
        assert_eq!(
            (
                helios.processed,
                helios.retried,
                helios.duplicates,
                helios.parked
            ),
            (1000, 3, 5, 0)
        );
        assert!((helios.mean_ms.unwrap() - 4.5).abs() < 1e-9);
        assert_eq!(figures[1].parked, 1);
        assert_eq!(figures[1].mean_ms, None);
    }
}
