//! Bare axum reference server for sufast's benchmark: the same endpoints and
//! byte-identical bodies as bench/apps/*, on the same axum/hyper/tokio
//! versions as rust-core, with no Python anywhere.
//!
//! Environment:
//! - `BENCH_PORT`   port to bind on 127.0.0.1 (default 8000)
//! - `BENCH_ROUTES` total routes in the table (default 10); routes beyond
//!   the five endpoints are padding, alternately `/pad/{i}` (static) and
//!   `/pad/{i}/items/{id}` (path parameter)
//! - `BENCH_CORS=1` wrap everything in tower-http's CorsLayer and add
//!   `x-powered-by: bench` to every response

use std::{env, net::SocketAddr, process::ExitCode, time::Duration};

use axum::{
    body::Bytes,
    extract::{rejection::PathRejection, Path},
    http::{header, HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use tower_http::{cors::CorsLayer, set_header::SetResponseHeaderLayer};

/// The five endpoints every server in the benchmark has.
const BASE_ROUTES: usize = 5;

const HELLO: &str = r#"{"message":"hello"}"#;

/// A stored JSON body, sent as is: what sufast does for `/` (static tier).
fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{id:int}` in sufast answers 404 for a non-integer; do the same instead
/// of axum's default 400.
fn user(id: Result<Path<u64>, PathRejection>) -> Response {
    match id {
        Ok(Path(id)) => Json(json!({ "id": id })).into_response(),
        Err(_) => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "Not found"}))).into_response()
}

fn env_number(name: &str, default: usize) -> Result<usize, String> {
    match env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a non-negative integer, got {v:?}")),
        Err(_) => Ok(default),
    }
}

fn router(total_routes: usize, cors: bool) -> Router {
    let hello = Bytes::from_static(HELLO.as_bytes());
    let cached = hello.clone();
    let mut app = Router::new()
        .route("/", get(move || async move { json_bytes(hello) }))
        .route("/users/{id}", get(|id| async move { user(id) }))
        // Same handler: in Rust there is no sync/async distinction to measure.
        .route("/async/users/{id}", get(|id| async move { user(id) }))
        // Peers have no response cache: a plain handler serving stored bytes.
        .route("/cached", get(move || async move { json_bytes(cached) }))
        .route(
            "/echo",
            post(|Json(body): Json<Value>| async move { Json(body) }),
        );

    for k in 0..total_routes.saturating_sub(BASE_ROUTES) {
        let i = k / 2;
        if k % 2 == 0 {
            let body = Bytes::from(format!(r#"{{"pad":{i}}}"#));
            app = app.route(
                &format!("/pad/{i}"),
                get(move || async move { json_bytes(body) }),
            );
        } else {
            app = app.route(
                &format!("/pad/{i}/items/{{id}}"),
                get(move |id: Result<Path<u64>, PathRejection>| async move {
                    match id {
                        Ok(Path(id)) => Json(json!({ "pad": i, "id": id })).into_response(),
                        Err(_) => not_found(),
                    }
                }),
            );
        }
    }

    if cors {
        app = app
            .layer(
                CorsLayer::new()
                    .allow_origin(HeaderValue::from_static("https://example.com"))
                    .allow_methods([Method::GET, Method::POST])
                    .allow_headers([header::CONTENT_TYPE])
                    .max_age(Duration::from_secs(600)),
            )
            .layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static("x-powered-by"),
                HeaderValue::from_static("bench"),
            ));
    }
    app
}

/// Resolves on SIGINT or SIGTERM, starting the graceful shutdown.
async fn stop_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

// Default multi-thread runtime: one worker per CPU this process may run on
// (tokio sizes it with available_parallelism, which honours the affinity
// mask), as sufast's own runtime does.
#[tokio::main]
async fn main() -> ExitCode {
    let config = env_number("BENCH_PORT", 8000).and_then(|port| {
        let port = u16::try_from(port).map_err(|_| format!("BENCH_PORT out of range: {port}"))?;
        Ok((port, env_number("BENCH_ROUTES", 10)?))
    });
    let (port, routes) = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("axum-ref: {e}");
            return ExitCode::from(2);
        }
    };
    let cors = env::var("BENCH_CORS").is_ok_and(|v| v == "1");

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("axum-ref: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "axum-ref listening on http://{addr} ({} routes, cors {})",
        routes.max(BASE_ROUTES),
        if cors { "on" } else { "off" }
    );
    // Same serve call as sufast's server (no extra TCP options).
    match axum::serve(listener, router(routes, cors))
        .with_graceful_shutdown(stop_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-ref: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
