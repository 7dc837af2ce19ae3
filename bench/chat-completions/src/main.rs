//! Benchmark: what the OpenAI-compatible endpoint adds to a chat completion, next to a
//! LiteLLM proxy doing the same job, in one run on one machine.
//!
//! Three targets in front of the same `mock-llm` process (release build, no latency):
//! `direct` (mock-llm itself, the baseline), `assay` (`assay serve`, release, SQLite, the
//! full AI pipeline behind `POST /v1/chat/completions`: API-key auth, per-key limits,
//! budget, input and output safety, gateway, usage ledger and audit) and `litellm`
//! (`litellm --config` proxy, PyPI `litellm[proxy]`, an `openai/` model pointing at the
//! mock, one worker, a master key). Assay (and LiteLLM) run on one CPU (`taskset -c 0`);
//! this load generator re-executes itself on the other (`taskset -c 1`), and mock-llm, which
//! stands for a remote provider, runs beside the generator unless `--mock-cpu 0` puts it on
//! the server's core. In the concurrency-1 rounds a `SCHED_IDLE` busy loop keeps the
//! generator's core from halting between requests ([`keep_core_awake`]). The two servers
//! take turns on their core: the one not being measured is stopped (SIGSTOP, resumed with
//! SIGCONT for its turn), so an idle LiteLLM's Python housekeeping never runs inside Assay's
//! measurement, nor Assay's bookkeeping inside LiteLLM's; before it is stopped a server is
//! let settle (finish deferred work such as Assay's bookkeeping after a saturated closed
//! loop). Each closed-loop round also prints the CPU time each server process used per
//! answered request (`/proc/<pid>/stat`), the figure that decides capacity. Beside every
//! round and step it prints what may explain a slow one: the time the host took each CPU
//! away (steal) and, for Assay (whose Prometheus listener is on), how many requests its
//! bookkeeping held and its longest bookkeeping write ([`Disturbances`]).
//!
//! 1. Latency: closed loop at each `--concurrency`, `--requests` per target (bounded by
//!    `--max-secs`), targets interleaved in `--rounds`; prints p50/p99 per target, the
//!    added p99 over direct and LiteLLM's added p99 divided by Assay's.
//! 2. Capacity: open loop against Assay at each of `--rates` for `--step-secs` (after
//!    `--step-warmup-secs` at that rate, unmeasured), latency measured from each
//!    request's scheduled send time (no coordinated omission); the highest rate with every
//!    request answered and p99 <= `--p99-ms` is reported. The same steps against `direct`
//!    show how much of the ceiling is the generator and the mock.
//!
//! Every response is checked (200 and the mock's answer text); a failed request counts and
//! is reported, never timed as a success.

use assay_bench_harness::{LatencyStats, ms};
use clap::Parser;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PINNED_ENV: &str = "ASSAY_BENCH_CHAT_PINNED";
/// Set on the child that keeps the load generator's core awake (see [`keep_core_awake`]).
const KEEP_AWAKE_ENV: &str = "ASSAY_BENCH_CHAT_KEEP_AWAKE";
const QUESTION: &str = "What does ISO 27001 clause 9.2 ask for?";

#[derive(Parser, Clone, Debug)]
#[command(about = "chat completions: direct vs Assay vs LiteLLM")]
struct Args {
    /// Requests per target per round in the latency phase.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Closed-loop concurrencies for the latency phase (comma-separated).
    #[arg(long, default_value = "1,8", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Rounds per concurrency (targets interleaved within a round).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Upper bound on one target's round, in seconds.
    #[arg(long, default_value_t = 30)]
    max_secs: u64,
    /// Unmeasured requests per target first.
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// Open-loop request rates for the capacity search (requests per second).
    #[arg(
        long,
        default_value = "1000,2000,3000,4000,5000,6000,8000",
        value_delimiter = ','
    )]
    rates: Vec<u64>,
    /// Seconds per capacity step.
    #[arg(long, default_value_t = 5)]
    step_secs: u64,
    /// Unmeasured seconds at each step's rate before the step (per target): a step measures
    /// the steady state, not the first second after the target's turn began.
    #[arg(long, default_value_t = 1)]
    step_warmup_secs: u64,
    /// Run every rate of `--rates` even after one is not sustained (to compare steps at the
    /// same rate, or to see how far past its capacity a server degrades).
    #[arg(long)]
    keep_going: bool,
    /// The p99 a step must stay within to count as sustained (milliseconds).
    #[arg(long, default_value_t = 5.0)]
    p99_ms: f64,
    /// Release binaries (default: target/release/ of this workspace).
    #[arg(long)]
    assay_bin: Option<PathBuf>,
    #[arg(long)]
    mock_bin: Option<PathBuf>,
    /// The `litellm` executable from a venv with `litellm[proxy]`.
    #[arg(long, default_value = "target/bench-venv/litellm-1.108.10/bin/litellm")]
    litellm: PathBuf,
    /// Leave LiteLLM out.
    #[arg(long)]
    no_litellm: bool,
    /// The CPU Assay (and LiteLLM) run on.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// The CPU this load generator runs on.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Let the load generator's core go idle between requests in the concurrency-1 rounds
    /// too (by default a `SCHED_IDLE` busy loop keeps it awake there; see
    /// [`keep_core_awake`]).
    #[arg(long)]
    let_client_core_idle: bool,
    /// The CPU mock-llm runs on (default: the generator's; it stands for a remote provider,
    /// so it does not take the server's core). Give the server's CPU to share it instead.
    #[arg(long)]
    mock_cpu: Option<usize>,
    /// Ask every target for a streamed answer (`"stream": true`, Server-Sent Events); the
    /// generator reads the whole stream and checks the answer put together from its deltas.
    #[arg(long)]
    stream: bool,
}

/// A server process, stopped (and reaped) when dropped.
struct Server {
    name: &'static str,
    child: Child,
}

/// The servers sharing the server CPU take turns: `active` (a target's name) runs, every
/// other one is stopped with SIGSTOP until its own turn (SIGCONT). `direct` stops them all.
/// A server is first let settle — finish what it deferred, such as Assay's bookkeeping
/// after a saturated closed loop — so its next turn does not start with that backlog.
async fn take_turn(servers: &[(&str, u32)], active: &str) {
    for &(name, pid) in servers {
        if name != active {
            settle(pid).await;
        }
        let signal = if name == active { "-CONT" } else { "-STOP" };
        let sent = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill {signal} {pid} ({name}) failed");
    }
}

/// Wait (up to 10 s) until `pid` uses at most one clock tick of CPU in 250 ms. A stopped
/// process is settled at once.
async fn settle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = cpu_time(pid);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = cpu_time(pid);
        match (last, now) {
            (Some(a), Some(b)) if b.saturating_sub(a) > Duration::from_millis(10) => last = now,
            _ => return,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("stopped {}", self.name);
    }
}

#[derive(Clone)]
struct Target {
    name: &'static str,
    url: String,
    auth: String,
    body: Arc<Vec<u8>>,
    /// The body asks for a streamed answer.
    stream: bool,
}

impl Target {
    fn new(name: &'static str, url: String, auth: String, model: &str, stream: bool) -> Self {
        let body = serde_json::to_vec(&serde_json::json!({
            "model": model,
            "messages": [{ "role": "user", "content": QUESTION }],
            "max_tokens": 64,
            "stream": stream,
        }))
        .expect("static JSON");
        Self {
            name,
            url,
            auth,
            body: Arc::new(body),
            stream,
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pinned(cpu: usize, program: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(cpu.to_string()).arg(program);
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Re-run this benchmark under `taskset -c <client_cpu>` unless it already is.
fn pin_self(args: &Args) -> Option<std::process::ExitCode> {
    if std::env::var_os(PINNED_ENV).is_some() {
        return None;
    }
    let exe = std::env::current_exe().expect("own path");
    let status = pinned(args.client_cpu, &exe)
        .args(std::env::args_os().skip(1))
        .env(PINNED_ENV, "1")
        .status()
        .expect("taskset runs (util-linux)");
    Some(std::process::ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    ))
}

/// The body of the child started by [`start_keep_awake`]: a busy loop at `SCHED_IDLE`,
/// which any runnable thread on the core preempts at once, so it takes no CPU from the
/// load generator or mock-llm — it only keeps the core from going idle.
///
/// Why: on a virtual machine an idle vCPU halts, and waking it (the interrupt a response
/// sends) goes through the host. That costs ~0.03 ms normally and 0.2–0.4 ms while the
/// host is busy (bursts of 10–50 ms, several a second on the 2026-12-07 VM; `perf sched
/// timehist` showed the generator's and the mock's wake-up delay growing while their core
/// was idle). At concurrency 1 the client core idles during every request. `direct` never
/// pays for it — its client and mock share the core, which does not halt between the two
/// — but a proxy's request crosses to the other core and back twice, so the client core's
/// wake-ups were measured as the proxy's added latency (Assay's c=1 p99 swung 0.36–1.0 ms
/// between rounds with its p50 steady; with the loop, 0.31–0.43 ms).
///
/// Only for the concurrency-1 rounds: with more requests in flight the core is busy, and
/// the loop would turn wake-ups that need no interrupt (the core runs another task that
/// need not be preempted) into preemptions, each an interrupt through the host — Assay's
/// c=8 throughput fell ~30% with it. The server's own core is left alone throughout: its
/// wake-ups are the server's to pay.
///
/// No `spin_loop` hint: PAUSE in a tight loop makes the hypervisor deschedule the vCPU
/// (pause-loop exiting), which is the halt this avoids.
fn keep_core_awake() -> std::process::ExitCode {
    if !assay_infra::background::lower_this_thread() {
        // At normal priority the loop would take the core's time: better not run at all.
        eprintln!("keep-awake: SCHED_IDLE refused; the client core may idle");
        return std::process::ExitCode::FAILURE;
    }
    // Ends with the benchmark even when that is killed without cleaning up: a loop left
    // behind would skew every later run on the machine.
    let parent = std::os::unix::process::parent_id();
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
        if n.is_multiple_of(1 << 22) && std::os::unix::process::parent_id() != parent {
            return std::process::ExitCode::SUCCESS;
        }
    }
}

/// Start [`keep_core_awake`] on the load generator's core (this binary re-executed).
fn start_keep_awake(args: &Args) -> Option<Server> {
    if args.let_client_core_idle {
        return None;
    }
    let exe = std::env::current_exe().expect("own path");
    let child = pinned(args.client_cpu, &exe)
        .env(KEEP_AWAKE_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("keep-awake child starts");
    Some(Server {
        name: "keep-awake",
        child,
    })
}

fn start_mock(args: &Args, bin: &Path) -> (Server, String) {
    let mut child = pinned(args.mock_cpu.unwrap_or(args.client_cpu), bin)
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mock-llm starts");
    let mut line = String::new();
    BufReader::new(child.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("mock-llm prints its address");
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("unexpected mock-llm output: {line:?}"))
        .to_owned();
    (
        Server {
            name: "mock-llm",
            child,
        },
        base,
    )
}

async fn wait_http(client: &reqwest::Client, url: &str, server: &mut Server, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            eprintln!("{} exited early: {status}", server.name);
            return false;
        }
        if let Ok(res) = client.get(url).send().await
            && res.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let value: serde_json::Value = res.json().await.expect("JSON");
    assert!(status.is_success(), "{url}: {status} {value}");
    value
}

/// `assay serve` on SQLite in `dir` with the mock as its one provider and limits out of the
/// way (the benchmark measures the path, not the refusal); an API key with scope `ai`.
async fn start_assay(
    args: &Args,
    bin: &Path,
    dir: &Path,
    mock_base: &str,
    client: &reqwest::Client,
) -> (Server, Target, AssayProbe) {
    let (port, metrics_port) = (free_port(), free_port());
    let cfg = dir.join("assay.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
addr = "127.0.0.1:{port}"
metrics_addr = "127.0.0.1:{metrics_port}"

[database]
url = "sqlite://{db}"

[log]
level = "warn"

[rate_limits]
auth_per_minute = 1000
api_per_minute = 100000000

[ai_limits]
chat_per_minute = 100000000
burst = 100000000
tokens_per_minute = 2000000000
default_monthly_budget_usd = 1000000000.0

[[ai.providers]]
name = "mock"
kind = "openai"
base_url = "{mock_base}/v1"
api_key = "sk-mock-key"

[[ai.models]]
provider = "mock"
model = "mock-fast"
tier = "fast"
"#,
            db = dir.join("assay.db").display(),
            metrics_port = metrics_port,
        ),
    )
    .expect("config written");
    let log = std::fs::File::create(dir.join("assay.log")).expect("log file");
    let child = pinned(args.server_cpu, bin)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("assay starts");
    let mut server = Server {
        name: "assay",
        child,
    };
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_http(client, &format!("{base}/health/ready"), &mut server, 120).await,
        "assay did not become ready; see {}",
        dir.join("assay.log").display()
    );
    let reg = post_json(
        client,
        &format!("{base}/api/v1/auth/register"),
        None,
        serde_json::json!({ "email": "bench@example.com", "password": "correct-horse-battery-staple-42", "name": "Bench", "org_name": "Bench" }),
    )
    .await;
    let org = reg["org"]["id"].as_str().expect("org id");
    let access = reg["access_token"].as_str().expect("token");
    let key = post_json(
        client,
        &format!("{base}/api/v1/orgs/{org}/api-keys"),
        Some(access),
        serde_json::json!({ "name": "bench", "scopes": ["ai"] }),
    )
    .await;
    let probe = AssayProbe {
        metrics_url: format!("http://127.0.0.1:{metrics_port}/metrics"),
    };
    let target = Target::new(
        "assay",
        format!("{base}/v1/chat/completions"),
        format!("Bearer {}", key["key"].as_str().expect("key")),
        "assay-auto",
        args.stream,
    );
    (server, target, probe)
}

/// A LiteLLM proxy with one `openai/` model at the mock; `None` (with the reason printed)
/// when it cannot be started.
async fn start_litellm(
    args: &Args,
    dir: &Path,
    mock_base: &str,
    client: &reqwest::Client,
) -> Option<(Server, Target)> {
    if !args.litellm.exists() {
        eprintln!(
            "LiteLLM: not measured — {} does not exist (pip install 'litellm[proxy]' into a venv there)",
            args.litellm.display()
        );
        return None;
    }
    let port = free_port();
    let cfg = dir.join("litellm.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model_list:\n  - model_name: mock-fast\n    litellm_params:\n      model: openai/mock-fast\n      api_base: {mock_base}/v1\n      api_key: sk-mock-key\nlitellm_settings:\n  drop_params: true\n  telemetry: false\ngeneral_settings:\n  master_key: sk-litellm-bench\n"
        ),
    )
    .expect("litellm config");
    let log = std::fs::File::create(dir.join("litellm.log")).expect("log file");
    let child = pinned(args.server_cpu, &args.litellm)
        .arg("--config")
        .arg(&cfg)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--num_workers",
            "1",
        ])
        // Offline: the bundled model price map, no telemetry, quiet logs.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False")
        .env_remove("DATABASE_URL")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("LiteLLM: not measured — could not start: {e}");
            return None;
        }
    };
    let mut server = Server {
        name: "litellm",
        child,
    };
    let base = format!("http://127.0.0.1:{port}");
    if !wait_http(
        client,
        &format!("{base}/health/liveliness"),
        &mut server,
        180,
    )
    .await
    {
        eprintln!(
            "LiteLLM: not measured — not ready in 180 s; see {}",
            dir.join("litellm.log").display()
        );
        return None;
    }
    Some((
        server,
        Target::new(
            "litellm",
            format!("{base}/v1/chat/completions"),
            "Bearer sk-litellm-bench".into(),
            "mock-fast",
            args.stream,
        ),
    ))
}

/// An error with its chain of causes: reqwest's own text ("error sending request") does
/// not say whether the connection was refused (the server is gone), reset or timed out.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// One request: its latency when the answer is right.
async fn call(client: &reqwest::Client, t: &Target) -> Result<(), String> {
    let res = client
        .post(&t.url)
        .header("authorization", &t.auth)
        .header("content-type", "application/json")
        .body(t.body.as_ref().clone())
        .send()
        .await
        .map_err(|e| with_causes(&e))?;
    let status = res.status();
    let bytes = res.bytes().await.map_err(|e| with_causes(&e))?;
    let answer = if t.stream {
        streamed_answer(&bytes).into_bytes().into()
    } else {
        bytes.clone()
    };
    if status != 200 || !answer.windows(11).any(|w| w == b"Mock answer") {
        return Err(format!(
            "{status} {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ));
    }
    Ok(())
}

/// The answer put together from a `chat.completion.chunk` stream's deltas; empty unless the
/// stream ended with `[DONE]`.
fn streamed_answer(sse: &[u8]) -> String {
    let mut text = String::new();
    for line in sse.split(|&b| b == b'\n') {
        let Some(data) = line.strip_prefix(b"data: ") else {
            continue;
        };
        if data == b"[DONE]" {
            return text;
        }
        if let Ok(chunk) = serde_json::from_slice::<serde_json::Value>(data)
            && let Some(t) = chunk
                .pointer("/choices/0/delta/content")
                .and_then(|v| v.as_str())
        {
            text.push_str(t);
        }
    }
    String::new()
}

/// CPU time (user + system, all threads) a process has used so far, from
/// `/proc/<pid>/stat`; `None` where that is not readable.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // In USER_HZ, which Linux fixes at 100 for /proc whatever the kernel's own tick.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU used by the given processes while `f` ran, per answered request, as `name=µs`.
async fn cpu_per_request<F: std::future::Future<Output = Run>>(
    procs: &[(&str, u32)],
    f: F,
) -> (Run, String) {
    let before: Vec<Option<Duration>> = procs.iter().map(|(_, p)| cpu_time(*p)).collect();
    let run = f.await;
    let n = run.samples.len().max(1) as f64;
    let line = procs
        .iter()
        .zip(before)
        .filter_map(|((name, pid), b)| {
            let used = cpu_time(*pid)?.checked_sub(b?)?;
            Some(format!("{name} {:.0} µs", used.as_secs_f64() * 1e6 / n))
        })
        .collect::<Vec<_>>()
        .join(", ");
    (run, line)
}

struct Run {
    samples: Vec<Duration>,
    failures: usize,
    first_failure: Option<String>,
    elapsed: Duration,
}

async fn closed_loop(
    client: &reqwest::Client,
    t: &Target,
    requests: usize,
    concurrency: usize,
    max: Duration,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + max;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, t, next) = (client.clone(), t.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut out = (Vec::new(), 0usize, None);
            while next.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
                let at = Instant::now();
                match call(&client, &t).await {
                    Ok(()) => out.0.push(at.elapsed()),
                    Err(e) => {
                        out.1 += 1;
                        out.2.get_or_insert(e);
                    }
                }
            }
            out
        }));
    }
    let mut run = Run {
        samples: Vec::with_capacity(requests),
        failures: 0,
        first_failure: None,
        elapsed: Duration::ZERO,
    };
    for w in workers {
        let (s, f, e) = w.await.expect("worker");
        run.samples.extend(s);
        run.failures += f;
        if run.first_failure.is_none() {
            run.first_failure = e;
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// The send times of an open loop, paced by a thread of its own: it sleeps until each
/// request is due (`nanosleep`, accurate to tens of microseconds, where Tokio's timer ticks
/// in whole milliseconds) and hands the due time to the runtime. Spinning for accuracy
/// instead would take the CPU that mock-llm shares with this generator.
fn paced(rate: u64, total: usize) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.send(due).is_err() {
                return;
            }
        }
    });
    rx
}

/// Open loop at `rate` for `secs`: request i is due at start + i/rate; its latency counts
/// from then. More than `max_in_flight` outstanding requests count as failures.
async fn open_loop(client: &reqwest::Client, t: &Target, rate: u64, secs: u64) -> Run {
    let total = (rate * secs) as usize;
    let max_in_flight = 2_000;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total);
    let mut refused = 0;
    let mut due_times = paced(rate, total);
    while let Some(due) = due_times.recv().await {
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            refused += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, t, in_flight) = (client.clone(), t.clone(), in_flight.clone());
        handles.push(tokio::spawn(async move {
            let r = call(&client, &t).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            r.map(|()| due.elapsed())
        }));
    }
    let mut run = Run {
        samples: Vec::with_capacity(total),
        failures: refused,
        first_failure: (refused > 0)
            .then(|| format!("{refused} requests over {max_in_flight} in flight")),
        elapsed: Duration::ZERO,
    };
    for h in handles {
        match h.await.expect("request task") {
            Ok(d) => run.samples.push(d),
            Err(e) => {
                run.failures += 1;
                run.first_failure.get_or_insert(e);
            }
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// Where Assay's Prometheus metrics are served, for what the bench prints beside a step.
struct AssayProbe {
    metrics_url: String,
}

/// What may explain a slow step that is not the server's doing, or is its bookkeeping's:
/// the time the host took each CPU away (steal, `/proc/stat`), and — for Assay — how many
/// requests were held because its bookkeeping queues were half full and the longest
/// bookkeeping write of the last minute or so (its metrics).
struct Disturbances {
    steal: Vec<u64>,
    held: Option<f64>,
}

/// Steal time of each CPU so far, in milliseconds (`/proc/stat`, USER_HZ = 100).
fn steal_ms() -> Vec<u64> {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .nth(8)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 10
        })
        .collect()
}

/// A sample's value from Prometheus text: the line starting with `series` (name and
/// labels as rendered).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

async fn scrape(client: &reqwest::Client, probe: Option<&AssayProbe>) -> Option<String> {
    let res = client.get(&probe?.metrics_url).send().await.ok()?;
    res.text().await.ok()
}

impl Disturbances {
    async fn begin(client: &reqwest::Client, probe: Option<&AssayProbe>) -> Self {
        let held = scrape(client, probe)
            .await
            .map(|t| metric(&t, "assay_ai_bookkeeping_waits_total").unwrap_or(0.0));
        Self {
            steal: steal_ms(),
            held,
        }
    }

    /// One line: steal per CPU since `begin`, and Assay's bookkeeping figures.
    async fn line(&self, client: &reqwest::Client, probe: Option<&AssayProbe>) -> String {
        let steal = steal_ms()
            .iter()
            .zip(&self.steal)
            .enumerate()
            .map(|(cpu, (now, then))| format!("CPU {cpu} {} ms", now.saturating_sub(*then)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut line = format!("host steal: {steal}");
        if let (Some(before), Some(text)) = (self.held, scrape(client, probe).await) {
            let held = metric(&text, "assay_ai_bookkeeping_waits_total").unwrap_or(0.0) - before;
            let longest = |queue: &str| {
                metric(
                    &text,
                    &format!("assay_bookkeeping_write_seconds{{queue=\"{queue}\",quantile=\"1\"}}"),
                )
                .map_or("-".to_owned(), |s| format!("{:.1} ms", s * 1e3))
            };
            line.push_str(&format!(
                "; assay bookkeeping: {held:.0} requests held, longest write (last minute) audit {}, usage {}",
                longest("ai_audit"),
                longest("ai_usage")
            ));
        }
        line
    }
}

/// After failed requests in a closed loop (never expected there), the end of the target's
/// log: the temporary directory holding it is gone when the bench ends.
fn print_log_tail(dir: &Path, name: &str) {
    let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.log"))) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    println!("    last lines of {name}.log:");
    for line in &lines[lines.len().saturating_sub(20)..] {
        println!("      {line}");
    }
}

fn report(label: &str, run: &Run) -> Option<LatencyStats> {
    let rate = run.samples.len() as f64 / run.elapsed.as_secs_f64().max(1e-9);
    if run.failures > 0 {
        println!(
            "  {label}: {} failures (first: {})",
            run.failures,
            run.first_failure.as_deref().unwrap_or("-")
        );
    }
    if run.samples.is_empty() {
        return None;
    }
    let s = LatencyStats::from_samples(&run.samples);
    println!("  {}  {rate:>8.0} req/s", s.line(label));
    Some(s)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    if std::env::var_os(KEEP_AWAKE_ENV).is_some() {
        return keep_core_awake();
    }
    let args = Args::parse();
    if let Some(code) = pin_self(&args) {
        return code;
    }
    let root = workspace_root();
    let assay_bin = args
        .assay_bin
        .clone()
        .unwrap_or_else(|| root.join("target/release/assay"));
    let mock_bin = args
        .mock_bin
        .clone()
        .unwrap_or_else(|| root.join("target/release/mock-llm"));
    for b in [&assay_bin, &mock_bin] {
        assert!(
            b.exists(),
            "{} missing: cargo build --release -p assay -p mock-llm",
            b.display()
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4_096)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let (_mock, mock_base) = start_mock(&args, &mock_bin);
    let direct = Target::new(
        "direct",
        format!("{mock_base}/v1/chat/completions"),
        "Bearer sk-mock-key".into(),
        "mock-fast",
        args.stream,
    );
    let (_assay, assay, probe) =
        start_assay(&args, &assay_bin, dir.path(), &mock_base, &client).await;
    let probe_of = |name: &str| (name == "assay").then_some(&probe);
    let litellm = if args.no_litellm {
        None
    } else {
        start_litellm(&args, dir.path(), &mock_base, &client).await
    };
    // Whose CPU each target's requests use (assay and LiteLLM also make the mock work).
    let (mock_pid, assay_pid) = (_mock.child.id(), _assay.child.id());
    let litellm_pid = litellm.as_ref().map(|(s, _)| s.child.id());
    let processes_of = |name: &str| -> Vec<(&'static str, u32)> {
        let mut p = match name {
            "assay" => vec![("assay", assay_pid)],
            "litellm" => litellm_pid.map(|p| ("litellm", p)).into_iter().collect(),
            _ => Vec::new(),
        };
        p.push(("mock-llm", mock_pid));
        // The load generator shares its core with mock-llm: when `direct` itself misses a
        // rate, this line shows whether that core, not the server under test, was full.
        p.push(("load generator", std::process::id()));
        p
    };
    let mut servers = vec![("assay", assay_pid)];
    servers.extend(litellm_pid.map(|p| ("litellm", p)));
    let mut targets = vec![direct.clone(), assay.clone()];
    if let Some((_, t)) = &litellm {
        targets.push(t.clone());
    }
    println!(
        "assay{} on CPU {}, mock-llm on CPU {}, load generator on CPU {} ({} in the concurrency-1 rounds); question: {QUESTION:?}",
        if litellm.is_some() {
            " and litellm"
        } else {
            ""
        },
        args.server_cpu,
        args.mock_cpu.unwrap_or(args.client_cpu),
        args.client_cpu,
        if args.let_client_core_idle {
            "let idle"
        } else {
            "kept awake by a SCHED_IDLE busy loop"
        }
    );
    for t in &targets {
        take_turn(&servers, t.name).await;
        let warm = closed_loop(&client, t, args.warmup, 4, Duration::from_secs(60)).await;
        if warm.failures > 0 {
            println!(
                "{}: {} failures in warm-up (first: {})",
                t.name,
                warm.failures,
                warm.first_failure.as_deref().unwrap_or("-")
            );
            return std::process::ExitCode::FAILURE;
        }
    }

    // 1. Added latency at fixed concurrency.
    let max = Duration::from_secs(args.max_secs);
    for &c in &args.concurrency {
        println!(
            "\n== latency, closed loop, concurrency {c}, {} requests per target per round",
            args.requests
        );
        let _keep_awake = if c == 1 {
            start_keep_awake(&args)
        } else {
            None
        };
        let mut all: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
        for round in 1..=args.rounds {
            println!(" round {round}");
            for (i, t) in targets.iter().enumerate() {
                take_turn(&servers, t.name).await;
                let procs = processes_of(t.name);
                let seen = Disturbances::begin(&client, probe_of(t.name)).await;
                let (run, cpu) =
                    cpu_per_request(&procs, closed_loop(&client, t, args.requests, c, max)).await;
                report(t.name, &run);
                if run.failures > 0 {
                    print_log_tail(dir.path(), t.name);
                }
                if !cpu.is_empty() {
                    println!("    CPU per request: {cpu}");
                }
                println!("    {}", seen.line(&client, probe_of(t.name)).await);
                all[i].extend(run.samples);
            }
        }
        let stats: Vec<LatencyStats> = all.iter().map(|s| LatencyStats::from_samples(s)).collect();
        println!(" all rounds:");
        for (t, s) in targets.iter().zip(&stats) {
            println!("  {}", s.line(t.name));
        }
        let base = &stats[0];
        let added: Vec<(f64, f64)> = stats
            .iter()
            .map(|s| (ms(s.p50) - ms(base.p50), ms(s.p99) - ms(base.p99)))
            .collect();
        for (t, (a50, a99)) in targets.iter().zip(&added).skip(1) {
            println!(
                "  added over direct: {:<8} p50 {a50:+.3} ms  p99 {a99:+.3} ms",
                t.name
            );
        }
        if added.len() == 3 {
            println!(
                "  LiteLLM added p99 / Assay added p99 = {:.1}x (target >= 25x)",
                added[2].1 / added[1].1.max(0.001)
            );
        }
    }

    // 2. Highest rate Assay sustains with p99 within the target; direct alongside.
    println!(
        "\n== capacity, open loop, {} s per step after {} s unmeasured, sustained = all answered and p99 <= {} ms",
        args.step_secs, args.step_warmup_secs, args.p99_ms
    );
    // One step against `t`: its turn on the server core, the unmeasured warm-up, then the
    // measured open loop with the CPU each process used per answered request.
    // Returns the run, the CPU line and the disturbances line.
    let step = |t: &Target, rate: u64| {
        let (client, servers, t) = (&client, &servers, t.clone());
        let (procs, probe) = (processes_of(t.name), probe_of(t.name));
        async move {
            take_turn(servers, t.name).await;
            open_loop(client, &t, rate, args.step_warmup_secs).await;
            let seen = Disturbances::begin(client, probe).await;
            let (run, cpu) =
                cpu_per_request(&procs, open_loop(client, &t, rate, args.step_secs)).await;
            (run, cpu, seen.line(client, probe).await)
        }
    };
    // The answer is the highest rate before the first step not sustained; with
    // `--keep-going` the later steps are run and counted, never reported as the capacity.
    let (mut best, mut failed, mut sustained) = (None, false, 0);
    for &rate in &args.rates {
        println!(" {rate} req/s");
        let (d, cpu, seen) = step(&direct, rate).await;
        report("direct", &d);
        println!("    direct CPU per request: {cpu}; {seen}");
        let (a, cpu, seen) = step(&assay, rate).await;
        let ok = report("assay", &a).is_some_and(|s| a.failures == 0 && ms(s.p99) <= args.p99_ms);
        println!(
            "  assay at {rate} req/s: {} (CPU per request: {cpu})\n    {seen}",
            if ok { "sustained" } else { "NOT sustained" }
        );
        sustained += usize::from(ok);
        if ok && !failed {
            best = Some(rate);
        }
        failed |= !ok;
        if failed && !args.keep_going {
            break;
        }
    }
    if args.keep_going {
        println!(
            "\n{sustained} of {} steps sustained (p99 <= {} ms)",
            args.rates.len(),
            args.p99_ms
        );
    }
    match best {
        Some(r) => println!(
            "\nAssay sustains {r} req/s with p99 <= {} ms (target >= 4000)",
            args.p99_ms
        ),
        None => println!(
            "\nAssay sustained none of the rates with p99 <= {} ms",
            args.p99_ms
        ),
    }
    std::process::ExitCode::SUCCESS
}
