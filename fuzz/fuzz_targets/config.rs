//! The configuration loader, `Config::from_toml`, on any text.
//!
//! The directory the configuration is read from holds a secret file, and an environment
//! variable holds another secret; seeds reference both (`{ file = "secret.txt" }`,
//! `{ env = "MCP_LP_FUZZ_SECRET" }`). Whatever the text: no panic, a refusal names the file and
//! never carries a secret's value, and an accepted configuration's `Debug` shows no secret.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_lp::Config;

const FILE_SECRET: &str = "file-secret-5c0ffee-d1e7";
const ENV_SECRET: &str = "env-secret-0ddba11-f00d";

fn config_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        std::fs::write(dir.join("secret.txt"), format!("{FILE_SECRET}\n")).expect("written");
        // Set once, before any configuration is read.
        unsafe { std::env::set_var("MCP_LP_FUZZ_SECRET", ENV_SECRET) };
        dir.join("mcp-lp.toml")
    })
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [FILE_SECRET, ENV_SECRET] {
        assert!(!text.contains(secret), "{what} carries a secret: {text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = config_path();
    // Text that holds a secret's value may be echoed by an error about that text.
    let echoes = [FILE_SECRET, ENV_SECRET].iter().any(|s| text.contains(s));
    match Config::from_toml(text, path) {
        Ok(config) => {
            if !echoes {
                assert_no_secret("the configuration's Debug", &format!("{config:?}"));
            }
        }
        Err(error) => {
            let shown = error.to_string();
            assert!(
                shown.contains("mcp-lp.toml"),
                "the error does not name the file: {shown}"
            );
            if !echoes {
                assert_no_secret("the error", &shown);
                assert_no_secret("the error's Debug", &format!("{error:?}"));
            }
        }
    }
});
