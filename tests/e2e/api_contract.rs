//! The API against its own OpenAPI document: the document validates (PyPI
//! `openapi-spec-validator`), and a property-based `schemathesis` run against the running
//! coordinator finds no 5xx and no answer the document does not describe (status, content
//! type, body schema, headers), with and without the token.

use std::process::Command;

use farm_tests::farm::{Farm, TOKEN};

#[test]
fn the_api_matches_its_openapi_document_under_property_based_testing() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["ingest", "review"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let farm = Farm::embedded_with(
        &dir.path().join("data"),
        1,
        60.0,
        &[
            ("FARM_API_TOKEN", TOKEN.to_string()),
            ("FARM_ALLOWED_SOURCES", dir.path().join("ingest").display().to_string()),
            ("FARM_ALLOWED_OUTPUTS", dir.path().join("review").display().to_string()),
        ],
    );
    let document = farm.http.get(format!("{}/openapi.json", farm.base)).send().unwrap().text().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &document).unwrap();
    let validated = Command::new("openapi-spec-validator").arg(&file).output().expect("openapi-spec-validator (scripts/setup.sh installs it)");
    let said = String::from_utf8_lossy(&validated.stdout).to_string() + &String::from_utf8_lossy(&validated.stderr);
    assert!(validated.status.success() && said.contains("OK"), "{said}\n{document}");

    // Every check but positive_data_acceptance: a schema-valid job still needs a source that
    // exists inside the allowed locations, which generated data cannot know.
    let run = Command::new("schemathesis")
        .args(["run", &format!("{}/openapi.json", farm.base)])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--exclude-checks", "positive_data_acceptance", "-n", "30", "--generation-deterministic", "--request-timeout", "30"])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis (scripts/setup.sh installs it)");
    let report = String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    let tail: String = report.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(run.status.success(), "schemathesis found problems:\n{tail}\ncoordinator: {}", farm.coordinator.log());
    assert!(report.contains("passed") && !report.contains("failed,"), "{tail}");
}
