//! Runs while they go, for the console and the CLI: `GET /api/v1/runs/{id}/output` and
//! `POST /api/v1/runs/{id}/kill`.
//!
//! The browser and the CLI only ever talk to a monitor; the monitor reads a running run's
//! output from the executor that holds it (its RPC, long-polled) and, once the run ended or
//! when that executor cannot be asked (gone, or draining after a reload with its RPC handed to
//! the next generation), from the store. Both address output by byte offset in the stream the
//! job wrote, so the SSE event id — `"<stdout offset>.<stderr offset>"` — lets a reader that
//! reconnects (`Last-Event-ID`) resume with no line lost and none repeated, across a reload of
//! either side.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::access::Caller;
use super::api::ApiState;
use crate::http::{ApiError, ErrorBody};
use crate::model::{Run, RunState};
use crate::output::{stored_slice_from, Piece, Reading};
use crate::store::KillAsk;

/// How long one RPC read waits at the executor for new output.
const LONG_POLL: Duration = Duration::from_secs(15);
/// Pause between looks at the store while no executor can be asked.
const STORE_POLL: Duration = Duration::from_millis(500);
/// Most bytes of one stream in one event.
const MAX_PIECE: usize = 64 * 1024;

/// Offsets into a run's two streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    pub stdout: u64,
    pub stderr: u64,
}

impl Offsets {
    /// `"12.0"`, as in an event id; None when it is not one.
    pub fn parse(text: &str) -> Option<Offsets> {
        let (o, e) = text.trim().split_once('.')?;
        Some(Offsets {
            stdout: o.parse().ok()?,
            stderr: e.parse().ok()?,
        })
    }

    fn id(&self) -> String {
        format!("{}.{}", self.stdout, self.stderr)
    }
}

/// What a reader of a run's output gets, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Chunk {
    /// Text of one stream; `skipped` bytes were cut before it.
    Output {
        stream: &'static str,
        text: String,
        skipped: u64,
    },
    /// The run moved on (scheduled, dispatched, running) before it ended.
    State { state: RunState },
    /// The run ended: its final record.
    End {
        state: RunState,
        exit_code: Option<i64>,
        error: Option<String>,
    },
}

/// Follows one run's output from `at` to its end.
struct Follower {
    api: ApiState,
    run_id: i64,
    at: Offsets,
    queue: VecDeque<(Chunk, Offsets)>,
    ended: bool,
    /// The executor's RPC URL, once looked up (None: it cannot be asked).
    executor: Option<Option<String>>,
    /// The last state told.
    told: Option<RunState>,
}

impl Follower {
    fn new(api: ApiState, run_id: i64, at: Offsets) -> Follower {
        Follower {
            api,
            run_id,
            at,
            queue: VecDeque::new(),
            ended: false,
            executor: None,
            told: None,
        }
    }

    /// The next chunk and the offsets after it; None after the end.
    async fn next(&mut self) -> Option<(Chunk, Offsets)> {
        loop {
            if let Some(c) = self.queue.pop_front() {
                return Some(c);
            }
            if self.ended {
                return None;
            }
            self.fill(true).await;
        }
    }

    /// Queues what there is past `at`; with `wait`, waits (bounded) for something new, and
    /// never answers empty-handed faster than [`STORE_POLL`] (no spinning on a quick "nothing").
    async fn fill(&mut self, wait: bool) {
        let began = tokio::time::Instant::now();
        self.look(wait).await;
        if wait && self.queue.is_empty() && !self.ended {
            let spent = began.elapsed();
            if spent < STORE_POLL {
                tokio::time::sleep(STORE_POLL - spent).await;
            }
        }
    }

    /// One look: the store's record, then the executor (long-polled with `wait`).
    async fn look(&mut self, wait: bool) {
        let run = match self.api.store.run(self.run_id).await {
            Ok(Some(run)) => run,
            Ok(None) => {
                self.ended = true;
                return;
            }
            Err(e) => {
                tracing::debug!(run = self.run_id, error = %e, "output: store read failed");
                return;
            }
        };
        if !run.state.is_final() && self.told != Some(run.state) {
            self.told = Some(run.state);
            self.queue
                .push_back((Chunk::State { state: run.state }, self.at));
        }
        if run.state.is_final() {
            if !self.queue_stored(&run) {
                self.queue.push_back((
                    Chunk::End {
                        state: run.state,
                        exit_code: run.exit_code,
                        error: run.error.clone(),
                    },
                    self.at,
                ));
                self.ended = true;
            }
            return;
        }
        match self.ask_executor(&run, wait).await {
            // Ended at the executor and not yet recorded, the next look reads the store.
            Some(reading) => self.take(reading.stdout, reading.stderr),
            // No executor to ask: what it checkpointed in the store.
            None => {
                self.queue_stored(&run);
            }
        }
    }

    /// Queues stored output past `at`; true when there was some.
    fn queue_stored(&mut self, run: &Run) -> bool {
        let piece = |text: &Option<String>, cut: i64, at: u64| {
            Piece::of(
                stored_slice_from(
                    text.as_deref().unwrap_or(""),
                    cut.max(0) as u64,
                    at,
                    MAX_PIECE,
                ),
                true,
            )
        };
        let out = piece(&run.stdout, run.stdout_cut, self.at.stdout);
        let err = piece(&run.stderr, run.stderr_cut, self.at.stderr);
        let before = self.queue.len();
        self.take(out, err);
        self.queue.len() > before
    }

    fn take(&mut self, out: Piece, err: Piece) {
        for (stream, piece) in [("stdout", out), ("stderr", err)] {
            if piece.text.is_empty() && piece.skipped == 0 {
                continue;
            }
            if stream == "stdout" {
                self.at.stdout = piece.next;
            } else {
                self.at.stderr = piece.next;
            }
            self.queue.push_back((
                Chunk::Output {
                    stream,
                    text: piece.text,
                    skipped: piece.skipped,
                },
                self.at,
            ));
        }
    }

    /// A read at the run's executor; None when it cannot be asked (not known, gone, not
    /// holding the run: it ended, or the executor is another generation).
    async fn ask_executor(&mut self, run: &Run, wait: bool) -> Option<Reading> {
        let instance = run.executor.as_deref()?;
        if self.executor.is_none() {
            self.executor = Some(self.api.store.executor_url(instance).await.ok().flatten());
        }
        let base = self.executor.clone().flatten()?;
        let url = format!(
            "{}/rpc/v1/runs/{}/output?stdout={}&stderr={}&wait_ms={}",
            base.trim_end_matches('/'),
            self.run_id,
            self.at.stdout,
            self.at.stderr,
            if wait { LONG_POLL.as_millis() } else { 0 }
        );
        let (api, run_id) = (self.api.clone(), self.run_id);
        let read = async move {
            let reply = api
                .rpc
                .send(Method::GET, &url, Some(&api.rpc_token), None)
                .await;
            match reply {
                Ok(r) if r.status.is_success() => serde_json::from_slice(&r.body).ok(),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(run = run_id, error = %e, "output: executor not reachable");
                    None
                }
            }
        };
        if !wait {
            return read.await;
        }
        // Viewers caught up wait at the same offsets: one long-poll for all of them.
        let key = (self.run_id, self.at.stdout, self.at.stderr);
        self.api.polls.read(key, read).await
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// Where to start, as an event id (`Last-Event-ID` wins).
    from: Option<String>,
}

/// The output as one JSON answer (what there is now).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct OutputNow {
    state: RunState,
    chunks: Vec<Chunk>,
    /// Where a next read starts (`from`).
    next: String,
}

/// `GET /api/v1/runs/{id}/output`: Server-Sent Events when asked for (`Accept:
/// text/event-stream`) — `state` and `output` events while the run goes, then one `end`
/// event — else the output there is now as JSON.
#[utoipa::path(get, path = "/api/v1/runs/{id}/output", tag = "runs", params(("id" = i64, Path, description = "The run's id"), OutputQuery),
    description = "The output there is now, as JSON; with `Accept: text/event-stream`, \
        Server-Sent Events (`state` and `output` while the run goes, then one `end`) that resume \
        from `Last-Event-ID`.",
    responses((status = 200, description = "The output", body = OutputNow), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 404, description = "No such run (or not in the caller's groups)", body = ErrorBody)))]
pub async fn output(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<OutputQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    api.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let run_id = super::api::run_id(&id)?;
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.from);
    let at = match from.as_deref().filter(|f| !f.is_empty()) {
        None => Offsets::default(),
        Some(f) => Offsets::parse(f).ok_or_else(|| {
            ApiError::field(
                "from",
                format!("`{f}` is not an output position such as `0.0`"),
            )
        })?,
    };
    let run = super::api::find_run(&api, &caller, run_id).await?;
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let mut follower = Follower::new(api.clone(), run.id, at);
    if !sse {
        follower.fill(false).await;
        let mut next = at;
        let mut chunks = Vec::new();
        while let Some((c, after)) = follower.queue.pop_front() {
            chunks.push(c);
            next = after;
        }
        return Ok(Json(OutputNow {
            state: run.state,
            chunks,
            next: next.id(),
        })
        .into_response());
    }
    let stop = api.shutdown.clone();
    let place = api.streams.enter(&caller.principal.name).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {STREAMS_PER_CALLER} live output streams at once per caller"),
        )
    })?;
    let revoked = watch_revocation(api.store.clone(), caller);
    let events = futures_util::stream::unfold(
        (follower, stop, true, revoked, place),
        |(mut f, mut stop, first, mut revoked, place)| async move {
            let next = tokio::select! {
                n = f.next() => n,
                // A monitor stopping (reload) ends its streams; readers reconnect to the next
                // generation from their last event id.
                _ = crate::runtime::stopped(stop.clone()) => None,
                // A caller revoked (token, session, user) is let go.
                _ = revoked.wait_for(|r| *r) => None,
            };
            let _ = stop.borrow_and_update();
            let (chunk, at) = next?;
            let name = match chunk {
                Chunk::Output { .. } => "output",
                Chunk::State { .. } => "state",
                Chunk::End { .. } => "end",
            };
            let mut event = Event::default()
                .event(name)
                .id(at.id())
                .json_data(&chunk)
                .unwrap_or_else(|_| Event::default().comment("unencodable chunk"));
            if first {
                event = event.retry(Duration::from_millis(1000));
            }
            Some((
                Ok::<Event, Infallible>(event),
                (f, stop, false, revoked, place),
            ))
        },
    );
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// Live output streams one caller may hold at once (a console tab holds one per run page).
pub const STREAMS_PER_CALLER: usize = 16;
/// How often a stream checks that its caller is still let in.
const REVALIDATE_EVERY: Duration = Duration::from_secs(10);

/// Live output streams open, by caller name; shared by the monitor's handlers.
#[derive(Clone, Debug, Default)]
pub struct Streams(Arc<Mutex<HashMap<String, usize>>>);

/// One stream's place among its caller's, given back when the stream ends.
pub struct StreamPlace {
    streams: Streams,
    name: String,
}

impl Streams {
    /// A place for one more stream of `name`, unless it holds [`STREAMS_PER_CALLER`].
    fn enter(&self, name: &str) -> Option<StreamPlace> {
        let mut open = self.0.lock().ok()?;
        let n = open.entry(name.to_string()).or_insert(0);
        if *n >= STREAMS_PER_CALLER {
            return None;
        }
        *n += 1;
        Some(StreamPlace {
            streams: self.clone(),
            name: name.to_string(),
        })
    }
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.0.lock() {
            if let Some(n) = open.get_mut(&self.name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.name);
                }
            }
        }
    }
}

/// Turns true once `caller` is no longer let in (checked every [`REVALIDATE_EVERY`]); the
/// checking task ends with the stream (when the receiver is dropped).
fn watch_revocation(store: crate::store::Store, caller: Caller) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REVALIDATE_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if !caller.still_valid(&store).await {
                        let _ = tx.send(true);
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

/// A kill asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct KillRequested {
    run_id: i64,
    /// `requested`: the run ends `killed` once its executor has stopped it.
    kill: &'static str,
}

/// `POST /api/v1/runs/{id}/kill`: the run ends `killed`. Asked of its executor at once and
/// flagged in the store for one the monitor cannot reach. 202 when asked, 409 when it ended.
#[utoipa::path(post, path = "/api/v1/runs/{id}/kill", tag = "runs", params(("id" = i64, Path, description = "The run's id")),
    responses((status = 202, description = "Asked of its executor", body = KillRequested), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody), (status = 404, description = "No such run (or not in the caller's groups)", body = ErrorBody), (status = 409, description = "The run has ended", body = ErrorBody)))]
pub async fn kill(
    State(api): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<KillRequested>), ApiError> {
    api.requests.inc();
    let run_id = super::api::run_id(&id)?;
    let run = super::api::find_run(&api, &caller, run_id).await?;
    caller.require_write()?;
    match api.store.request_kill(run_id).await? {
        KillAsk::Missing => Err(ApiError::not_found(format!("no run {run_id}"))),
        KillAsk::Ended(state) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {run_id} already ended ({})", state.as_str()),
        )),
        KillAsk::Requested { executor } => {
            let mut sent = false;
            if let Some(instance) = executor {
                if let Ok(Some(base)) = api.store.executor_url(&instance).await {
                    let url = format!(
                        "{}/rpc/v1/runs/{run_id}/kill?reason=operator",
                        base.trim_end_matches('/')
                    );
                    sent = matches!(
                        api.rpc.send(Method::POST, &url, Some(&api.rpc_token), None).await,
                        Ok(r) if r.status.is_success()
                    );
                }
            }
            tracing::info!(run = run_id, at_once = sent, by = %caller.principal.name, "kill requested");
            caller
                .audit(
                    &api.store,
                    "run.kill",
                    format!("run {run_id}"),
                    Some(run.job_id),
                    serde_json::json!({"job": run.job_name}),
                )
                .await;
            Ok((
                StatusCode::ACCEPTED,
                Json(KillRequested {
                    run_id,
                    kill: "requested",
                }),
            ))
        }
    }
}
