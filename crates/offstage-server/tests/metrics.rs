//! `GET /metrics` of a real server after tasks ran: the timing histograms (queue wait, run time,
//! end to end) per task type, their buckets and counts.

mod common;

use std::collections::HashMap;

use common::{Api, Server};
use serde_json::json;

/// The samples of the exposition text: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The cumulative buckets of one series, in order of their bounds.
fn buckets(samples: &HashMap<String, f64>, metric: &str, labels: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{metric}_bucket{{{labels},le=\"");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(key, value)| {
            let bound = key.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().unwrap()
            };
            Some((bound, *value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

#[tokio::test]
async fn metrics_has_histograms_of_wait_run_and_end_to_end_per_task_type() {
    use offstage::testing::conformance::Backend;
    let db = offstage::testing::conformance::SqliteBackend.new_database();
    let server = Server::start(&db, &[]);
    let api = Api::new(&server, None);
    let mut ids = Vec::new();
    for value in 0..3 {
        ids.push(
            api.launch(json!({ "name": "demo.echo", "args": { "value": value } }))
                .await,
        );
    }
    ids.push(
        api.launch(json!({ "name": "demo.fail", "args": { "message": "no" } }))
            .await,
    );
    ids.push(
        api.launch(json!({ "name": "demo.sleep", "args": { "seconds": 0.3 } }))
            .await,
    );
    for id in &ids {
        api.finished(id).await;
    }
    let text = api
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "offstage_task_queue_wait_seconds",
        "offstage_task_run_seconds",
        "offstage_task_end_to_end_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {metric} histogram")),
            "{text}"
        );
    }
    let samples = samples(&text);
    let count = |key: &str| {
        samples
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("{key}\n{text}"))
    };

    assert_eq!(
        count(r#"offstage_task_queue_wait_seconds_count{name="demo.echo"}"#),
        3.0
    );
    assert_eq!(
        count(r#"offstage_task_run_seconds_count{name="demo.echo",status="completed"}"#),
        3.0
    );
    assert_eq!(
        count(r#"offstage_task_end_to_end_seconds_count{name="demo.echo",status="completed"}"#),
        3.0
    );
    assert_eq!(
        count(r#"offstage_task_run_seconds_count{name="demo.fail",status="failed"}"#),
        1.0
    );
    assert_eq!(
        count(r#"offstage_task_end_to_end_seconds_count{name="demo.fail",status="failed"}"#),
        1.0
    );
    assert!(!samples
        .contains_key(r#"offstage_task_run_seconds_count{name="demo.fail",status="completed"}"#));

    // The 0.3 s sleep: above the 0.25 s bound, within the 0.5 s one; from launch to end too.
    for metric in [
        "offstage_task_run_seconds",
        "offstage_task_end_to_end_seconds",
    ] {
        let buckets = buckets(&samples, metric, r#"name="demo.sleep",status="completed""#);
        assert_eq!(
            buckets.len(),
            offstage::TIMING_BUCKETS.len() + 1,
            "{metric}"
        );
        let at = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.25), 0.0, "{metric}: {buckets:?}");
        assert_eq!(at(0.5), 1.0, "{metric}: {buckets:?}");
        assert_eq!(at(f64::INFINITY), 1.0);
        let sum = count(&format!(
            r#"{metric}_sum{{name="demo.sleep",status="completed"}}"#
        ));
        assert!((0.3..0.5).contains(&sum), "{metric} sum {sum}");
    }
    // Every metric the Grafana dashboard in docs/ queries is one this server serves.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/grafana/offstage.json")).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(metric) = word.strip_prefix("offstage_") {
                    let family = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|suffix| metric.strip_suffix(suffix))
                        .unwrap_or(metric);
                    assert!(
                        text.contains(&format!("# TYPE offstage_{family} ")),
                        "{expr}"
                    );
                    queried += 1;
                }
            }
        }
    }
    assert!(queried >= 6, "the dashboard queries the timing histograms");
    // Cumulative: never decreasing, and `+Inf` is the count.
    for (labels, n) in [(r#"name="demo.echo""#, 3.0), (r#"name="demo.sleep""#, 1.0)] {
        let buckets = buckets(&samples, "offstage_task_queue_wait_seconds", labels);
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, n));
    }
}
