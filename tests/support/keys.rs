//! The task key of test farms: coordinator and workers read it from the same file, and
//! tests that publish tasks themselves sign with it.

use std::path::PathBuf;

use farm_contract::signature::TaskKey;

/// Test-only key (never a production secret: it is in the source).
const TEST_TASK_KEY: &str = "farm-test-task-key-0123456789abcdef0123456789";

/// The key file's path (written once per checkout, under the build folder; once per test
/// process, so that tests starting farms at once do not race on the file).
pub fn task_key_file() -> PathBuf {
    static WRITTEN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WRITTEN
        .get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
            let path = root.join("target/test-task-key");
            if std::fs::read_to_string(&path).ok().as_deref() != Some(TEST_TASK_KEY) {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let tmp = path.with_extension(format!("{}", std::process::id()));
                std::fs::write(&tmp, TEST_TASK_KEY).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            }
            path
        })
        .clone()
}

/// `FARM_TASK_KEY_FILE` for a farm process.
pub fn task_key_env() -> (&'static str, String) {
    ("FARM_TASK_KEY_FILE", task_key_file().display().to_string())
}

pub fn task_key() -> TaskKey {
    TaskKey::new(TEST_TASK_KEY).unwrap()
}
