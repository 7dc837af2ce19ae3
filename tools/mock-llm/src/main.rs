//! `mock-llm --addr 127.0.0.1:8089`: the mock OpenAI + Gemini server as a process, for
//! benchmarks and manual runs. Faults are queued by in-process tests; a process takes the
//! few a prompt asks for (`mock_llm::PROMPT_DIRECTIVES`).

use clap::Parser;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Mock OpenAI Chat Completions + Gemini server")]
struct Args {
    /// Address to listen on (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:8089")]
    addr: std::net::SocketAddr,
    /// Delay before the response or the first streamed chunk, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Content chunks per streamed answer.
    #[arg(long, default_value_t = 4)]
    chunks: usize,
    /// Pause between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_interval_ms: u64,
    /// Prompt tokens reported as cached.
    #[arg(long, default_value_t = 0)]
    cached_prompt_tokens: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let listener = tokio::net::TcpListener::bind(a.addr).await?;
    eprintln!("mock-llm listening on http://{}", listener.local_addr()?);
    mock_llm::serve(
        listener,
        mock_llm::MockConfig {
            latency: Duration::from_millis(a.latency_ms),
            chunks: a.chunks,
            chunk_interval: Duration::from_millis(a.chunk_interval_ms),
            cached_prompt_tokens: a.cached_prompt_tokens,
        },
    )
    .await
}
