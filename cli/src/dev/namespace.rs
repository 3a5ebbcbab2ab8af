//! DynamoDB Local binds every interface and has no option to change that, so
//! it runs inside a private network namespace (`unshare -n`, or `unshare -rn`
//! without root) where nothing outside can reach it. Clients reach it through
//! a loopback-only port this process forwards over a Unix socket into the
//! namespace (Unix sockets live in the file system, not the network
//! namespace).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::process::Command;

/// Port DynamoDB Local listens on inside its namespace (nothing else is there).
const INNER_PORT: u16 = 8000;

/// `unshare` running `beacon dev ns-child` in a new network namespace
/// (stdin piped: the child exits when this process dies).
pub fn command(socket: &Path, jar_dir: &Path) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the beacon binary")?;
    let mut unshare = Command::new("unshare");
    if !is_root() {
        unshare.arg("-r");
    }
    unshare
        .arg("-n")
        .arg(&exe)
        .arg("dev")
        .arg("ns-child")
        .arg("--socket")
        .arg(socket)
        .arg("--jar-dir")
        .arg(jar_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    Ok(unshare)
}

/// Whether the effective uid is 0: root may `unshare -n` directly; anyone
/// else needs a user namespace too (`unshare -rn`).
fn is_root() -> bool {
    // `Uid:` lists real, effective, saved and file-system ids.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

pub async fn forward_tcp_to_unix(listener: TcpListener, socket: PathBuf) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else { continue };
        let socket = socket.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            if let Ok(mut unix) = UnixStream::connect(&socket).await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
            }
        });
    }
}

/// Inside the namespace: loopback up, DynamoDB Local started, and a Unix
/// socket that forwards to it. Exits when stdin closes (the parent died),
/// on SIGTERM/SIGINT, or when java exits.
pub async fn ns_child(socket: &Path, jar_dir: &Path) -> Result<()> {
    let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().await.context("running ip")?;
    if !status.success() {
        bail!("could not bring up loopback in the private namespace");
    }
    let mut java = Command::new("java")
        .arg(format!("-Djava.library.path={}", jar_dir.join("DynamoDBLocal_lib").display()))
        .arg("-jar")
        .arg(jar_dir.join("DynamoDBLocal.jar"))
        .args(["-inMemory", "-port", &INNER_PORT.to_string(), "-disableTelemetry"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting java (DynamoDB Local needs Java 17+)")?;
    let listener = UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    let accept = async {
        loop {
            let Ok((mut unix, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", INNER_PORT)).await {
                    let _ = tcp.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut unix, &mut tcp).await;
                }
            });
        }
    };
    let parent_gone = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = accept => {}
        _ = parent_gone => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = java.wait() => {}
    }
    let _ = java.kill().await;
    let _ = std::fs::remove_file(socket);
    Ok(())
}
