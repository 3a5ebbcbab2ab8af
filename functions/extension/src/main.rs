//! The extension's executable (`extensions/beacon-extension` in the layer).
//! Registers under its own file name, as Lambda requires.

use std::sync::Arc;

use beacon_aws::DynamoTable;
use beacon_extension::endpoint::Endpoint;
use beacon_extension::{Config, Watcher};
use lambda_extension::{Error, Extension, LambdaEvent, NextEvent, service_fn};
use tokio::sync::{Mutex, mpsc, watch};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "beacon-extension".into());
    let watcher: Arc<Mutex<Option<Watcher<DynamoTable>>>> = Arc::default();
    let (shutdown_tx, mut shutdown_rx) = mpsc::channel::<()>(1);
    let processor = {
        let watcher = watcher.clone();
        service_fn(move |event: LambdaEvent| {
            let (watcher, shutdown) = (watcher.clone(), shutdown_tx.clone());
            async move {
                match event.next {
                    NextEvent::Invoke(_) => {
                        if let Some(w) = watcher.lock().await.as_mut() {
                            w.on_invoke().await;
                        }
                    }
                    NextEvent::Shutdown(e) => {
                        tracing::info!(reason = %e.shutdown_reason, "shutdown");
                        let _ = shutdown.send(()).await;
                    }
                }
                Ok::<(), Error>(())
            }
        })
    };
    let registered = Extension::new()
        .with_extension_name(&name)
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(processor)
        .register()
        .await?;

    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            // Reported through the Extensions API, so the function fails to
            // start with this message instead of running without its services.
            tracing::error!(error = %e, "invalid configuration");
            let body = lambda_extension::requests::ErrorRequest {
                error_message: &e.to_string(),
                error_type: "Extension.ConfigInvalid",
                stack_trace: Vec::new(),
            };
            let req = lambda_extension::requests::init_error(
                &registered.extension_id,
                "Extension.ConfigInvalid",
                Some(body),
            )?;
            let client = lambda_runtime_api_client::Client::builder().build()?;
            let _ = client.call(req).await;
            std::process::exit(1);
        }
    };
    let sdk = beacon_aws::config::sdk_config().await;
    let registry = beacon_aws::dynamo_table(&sdk, &config.table).scoped_to(config.replica_region.clone());
    let (http_port, refresh_timeout) = (config.http_port, config.refresh_timeout);
    let mut w = Watcher::new(registry, config);
    w.init().await;
    let view = w.view();
    *watcher.lock().await = Some(w);

    // The view on loopback, listening before the first INVOKE (Lambda
    // invokes only after every extension has finished init).
    let (stop_http, stop_rx) = watch::channel(false);
    if let Some(port) = http_port {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => {
                let refresher = watcher.clone();
                let endpoint = Endpoint {
                    view,
                    refresh: std::sync::Arc::new(move || {
                        let w = refresher.clone();
                        Box::pin(async move {
                            if let Some(w) = w.lock().await.as_mut() {
                                w.check_now().await;
                            }
                        })
                    }),
                    refresh_timeout,
                };
                tracing::info!(port, "serving the view on 127.0.0.1");
                tokio::spawn(endpoint.serve(listener, stop_rx));
            }
            // The file still works: a taken port costs the endpoint only.
            Err(e) => tracing::warn!(port, error = %e, "could not listen on 127.0.0.1; serving the file only"),
        }
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        result = registered.run() => result,
        _ = shutdown_rx.recv() => Ok(()),
        _ = term.recv() => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    let _ = stop_http.send(true);
    result
}
