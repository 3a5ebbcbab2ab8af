//! `beacon dev` in the foreground, and `up` / `down`: the same runner in
//! the background, started with exactly the options it was given, and
//! stopped by its pid file.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::process::Command;

use super::DevOpts;
use super::engines::{log_file, start_stack};
use super::runner::serve;

/// Runs the stack and everything on it until Ctrl-C or SIGTERM.
pub async fn foreground(opts: DevOpts) -> Result<()> {
    let stack = start_stack(&opts).await?;
    let result = serve(&opts, &stack).await;
    let _ = std::fs::remove_file(opts.state_dir.join("dev.env"));
    let _ = std::fs::remove_file(opts.state_dir.join("dev.pid"));
    stack.stop().await;
    result
}

pub async fn up(opts: DevOpts) -> Result<()> {
    std::fs::create_dir_all(&opts.state_dir)?;
    let env_path = opts.state_dir.join("dev.env");
    if let Ok(pid) = std::fs::read_to_string(opts.state_dir.join("dev.pid"))
        && Path::new(&format!("/proc/{}", pid.trim())).exists()
    {
        bail!("a stack is already running (pid {}); `beacon dev down` stops it", pid.trim());
    }
    let _ = std::fs::remove_file(&env_path);
    // The runner gets exactly the options `up` was given, as one JSON
    // argument: nothing is re-typed flag by flag, so no flag can be dropped.
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("dev").arg("run").arg("--options").arg(serde_json::to_string(&opts)?);
    let log = log_file(&opts.state_dir, "dev.log")?;
    let mut child = cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0).spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        if env_path.exists() {
            println!("{}", env_path.display());
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("beacon dev exited ({status}) before it was ready; see {}", opts.state_dir.join("dev.log").display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    bail!("beacon dev was not ready within 90 s; see {}", opts.state_dir.join("dev.log").display())
}

pub async fn down(state_dir: &Path) -> Result<()> {
    let pid_path = state_dir.join("dev.pid");
    let Ok(pid) = std::fs::read_to_string(&pid_path) else {
        eprintln!("beacon dev down: nothing is running ({} is absent)", pid_path.display());
        return Ok(());
    };
    let pid = pid.trim().to_owned();
    let _ = Command::new("kill").arg("-TERM").arg(&pid).status().await;
    let proc_path = format!("/proc/{pid}");
    for _ in 0..100 {
        if !Path::new(&proc_path).exists() || is_zombie(&pid) {
            let _ = std::fs::remove_file(&pid_path);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").arg("-KILL").arg(&pid).status().await;
    let _ = std::fs::remove_file(&pid_path);
    Ok(())
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}
