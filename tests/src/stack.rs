//! A local stack of a test's own: `beacon dev up --no-pipeline` on free
//! ports in a state directory of its own, stopped when dropped. For a test
//! that needs engines nothing else has used: DynamoDB Local's TTL process
//! sweeps every table in turn, and on the suite's shared engine, with the
//! hundreds of tables the other tests leave, it can take minutes to reach
//! a given item (docs/reliability.md, "A live TTL delete").

use std::path::PathBuf;
use std::process::{Command, Stdio};

use beacon_local::pipeline::Clients;
use beacon_local::setup::LocalEndpoints;

/// A running stack and where its engines listen.
pub struct OwnStack {
    bin: PathBuf,
    state: PathBuf,
    /// Its engines.
    pub endpoints: LocalEndpoints,
}

impl OwnStack {
    /// Starts one (the `beacon` binary must be built: `cargo build
    /// --workspace`, as `./scripts/test` does).
    pub fn start() -> Self {
        // target/debug/deps/<test>-… → target/debug/beacon
        let exe = std::env::current_exe().expect("the test's own path");
        let bin = exe.parent().and_then(|d| d.parent()).map(|d| d.join("beacon")).expect("target/debug");
        assert!(bin.exists(), "{} is not built: run cargo build --workspace", bin.display());
        let state = std::env::temp_dir().join(crate::unique("own-stack"));
        // From the project root, where `.beacon/tools` holds DynamoDB Local.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let up = Command::new(&bin)
            .current_dir(&root)
            .args(["dev", "up", "--no-pipeline", "--dynamodb-port", "0", "--sns-port", "0", "--api-port", "0"])
            .arg("--state-dir")
            .arg(&state)
            .stdin(Stdio::null())
            .output()
            .expect("running beacon dev up");
        let stack = Self { bin, state, endpoints: LocalEndpoints { dynamodb: String::new(), sns_sqs: String::new() } };
        assert!(
            up.status.success(),
            "beacon dev up failed: {}\n{}",
            String::from_utf8_lossy(&up.stderr),
            std::fs::read_to_string(stack.state.join("dev.log")).unwrap_or_default()
        );
        let env = std::fs::read_to_string(stack.state.join("dev.env")).expect("dev.env");
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")).map(str::to_owned))
                .unwrap_or_else(|| panic!("{name} is not in dev.env"))
        };
        let mut stack = stack;
        stack.endpoints =
            LocalEndpoints { dynamodb: var("AWS_ENDPOINT_URL_DYNAMODB"), sns_sqs: var("AWS_ENDPOINT_URL_SNS") };
        stack
    }

    /// Clients for its engines.
    pub fn clients(&self) -> Clients {
        self.endpoints.clients()
    }
}

impl Drop for OwnStack {
    fn drop(&mut self) {
        let _ = Command::new(&self.bin).args(["dev", "down", "--state-dir"]).arg(&self.state).output();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
