//! The Helm chart, validated offline: `helm lint --strict` for four sets of values, every
//! rendered core manifest strictly against the Kubernetes schemas, every KEDA object
//! against KEDA's, and what the chart promises (drain-safe scale-down, probes, non-root
//! read-only containers, scale to zero, the dashboard ConfigMap, no PodDisruptionBudget that
//! forbids every eviction with one or two coordinator replicas). See tests/chart/validate.py.

use std::path::Path;
use std::process::Command;

#[test]
fn the_chart_lints_renders_and_validates_for_default_and_other_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("python3").arg(root.join("tests/chart/validate.py")).output().expect("python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("4 value sets") && text.trim_end().ends_with("OK"), "{text}");
    for kind in ["ScaledObject", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "PrometheusRule", "NetworkPolicy"] {
        assert!(text.contains(&format!("'{kind}'")), "{kind} never rendered: {text}");
    }
}
