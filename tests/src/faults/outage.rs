//! The real fault: a stoppable loopback hop in front of an engine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

/// A loopback hop in front of a TCP server that can be stopped and started
/// again on the same port. Stopped, the port refuses connections and every
/// open connection through it is cut, as if the server behind had died.
#[derive(Debug)]
pub struct Outage {
    addr: SocketAddr,
    target: String,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    stops: AtomicU64,
}

impl Outage {
    /// Starts forwarding a loopback port to `target` (`http://host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the outage hop");
        let addr = listener.local_addr().expect("the hop's address");
        let outage = Self {
            addr,
            target: target.trim_start_matches("http://").trim_end_matches('/').to_owned(),
            tasks: Arc::default(),
            stops: AtomicU64::new(0),
        };
        outage.serve(listener);
        outage
    }

    /// The URL clients use instead of the server's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many times the hop was stopped.
    pub fn stops(&self) -> u64 {
        self.stops.load(Ordering::Relaxed)
    }

    /// Stops the hop: the port closes and open connections are cut.
    pub fn stop(&self) {
        self.stops.fetch_add(1, Ordering::Relaxed);
        for h in self.tasks.lock().expect("outage tasks").drain(..) {
            h.abort();
        }
    }

    /// Starts the hop again on the same port.
    pub async fn restart(&self) {
        let start = Instant::now();
        loop {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket.set_reuseaddr(true).expect("SO_REUSEADDR");
            // The aborted listener is dropped on its task's next poll; retry
            // briefly until the port is free again.
            match socket.bind(self.addr).and_then(|()| socket.listen(128)) {
                Ok(listener) => return self.serve(listener),
                Err(_) if start.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("re-binding {}: {e}", self.addr),
            }
        }
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                tasks.lock().expect("outage tasks").push(h.abort_handle());
            }
        });
        self.tasks.lock().expect("outage tasks").push(accept.abort_handle());
    }
}
