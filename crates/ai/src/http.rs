//! The HTTP client the providers call through: one POST with a JSON body, the response's
//! status and headers, then its body whole or as a stream of chunks.
//!
//! Direct connections go through hyper-util's pooled client over rustls — what reqwest runs
//! underneath, with the same TLS (aws-lc-rs, the platform's certificate verifier, HTTP/2 by
//! ALPN) — without reqwest's per-request layers: reqwest 0.13 turns every request's URI back
//! into a `Url` twice (its redirect policy, then its response), runs redirect and retry
//! layers and matches the request against the proxy settings. In the chat benchmark's
//! profile that was ~9% of the request worker's CPU per AI call (bench/RESULTS.md,
//! 2026-12-07). A provider whose base URL the environment sends through an egress proxy
//! (`HTTPS_PROXY`, `ALL_PROXY`... minus `NO_PROXY`, decided once per provider) keeps
//! reqwest, which implements proxies.

use crate::AiError;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connections to providers, shared by all of them (cheap to clone).
#[derive(Clone)]
pub struct HttpClient {
    direct: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Built on first use: only providers behind an egress proxy need it.
    proxied: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    proxies: Arc<hyper_util::client::proxy::matcher::Matcher>,
    /// Whether `proxies` were given ([`HttpClient::with_proxies`]) rather than the system's.
    custom_proxies: bool,
}

/// How one provider reaches its base URL (chosen once, when the provider is built).
#[derive(Clone)]
pub struct Route {
    client: HttpClient,
    proxied: bool,
}

/// A provider's answer: status and headers, the body still to read.
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: BoxBody<Bytes, BoxError>,
}

impl HttpClient {
    /// Idle connections are kept 90 s; no timeouts here (the gateway times each phase) and
    /// no redirects (a provider API answers where it is configured: a redirect would carry
    /// the prompt, and the key, somewhere else).
    pub fn new() -> Result<Self, AiError> {
        Self::build(
            hyper_util::client::proxy::matcher::Matcher::from_system(),
            false,
        )
    }

    /// [`HttpClient::new`] with the proxy rules given instead of the system's (tests; proxy
    /// credentials are not carried over from these rules).
    pub fn with_proxies(
        proxies: hyper_util::client::proxy::matcher::Matcher,
    ) -> Result<Self, AiError> {
        Self::build(proxies, true)
    }

    fn build(
        proxies: hyper_util::client::proxy::matcher::Matcher,
        custom_proxies: bool,
    ) -> Result<Self, AiError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                use rustls_platform_verifier::BuilderVerifierExt;
                b.with_platform_verifier()
            })
            .map_err(|e| AiError::Config(format!("ai: TLS: {e}")))?
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        let direct = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            direct,
            proxied: Arc::default(),
            proxies: Arc::new(proxies),
            custom_proxies,
        })
    }

    /// The route to `base_url`: through the proxy the environment names for it, if any.
    pub fn route_to(&self, base_url: &str) -> Route {
        let proxied = base_url
            .parse::<Uri>()
            .is_ok_and(|uri| self.proxies.intercept(&uri).is_some());
        Route {
            client: self.clone(),
            proxied,
        }
    }

    /// reqwest's client for proxied routes (built once). By default it reads the system's
    /// proxy settings itself — the same rules (hyper-util's `Matcher::from_system`) that
    /// chose the route, and it sends the credentials a proxy URL carries; rules given to
    /// [`HttpClient::with_proxies`] are applied as they are.
    fn proxied_client(&self) -> Result<&reqwest::Client, AiError> {
        self.proxied
            .get_or_init(|| {
                let mut builder = reqwest::Client::builder();
                if self.custom_proxies {
                    let proxies = self.proxies.clone();
                    builder = builder.proxy(reqwest::Proxy::custom(move |url| {
                        let uri = url.as_str().parse::<Uri>().ok()?;
                        let to = proxies.intercept(&uri)?;
                        reqwest::Url::parse(&to.uri().to_string()).ok()
                    }));
                }
                builder
                    .pool_idle_timeout(Duration::from_secs(90))
                    .tcp_nodelay(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("ai: HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|e| AiError::Config(e.clone()))
    }
}

impl Route {
    /// Whether requests go through an egress proxy.
    pub fn is_proxied(&self) -> bool {
        self.proxied
    }

    /// POST `body` as JSON to `uri` with `headers` (credentials among them).
    pub async fn post_json(
        &self,
        uri: Uri,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> Result<HttpResponse, AiError> {
        if self.proxied {
            let mut rb = self
                .client
                .proxied_client()?
                .post(uri.to_string())
                .header(CONTENT_TYPE, "application/json");
            for (name, value) in headers {
                rb = rb.header(name, value);
            }
            let resp = rb.body(body).send().await.map_err(reqwest_error)?;
            return Ok(HttpResponse::from_http(http::Response::from(resp)));
        }
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(h) = req.headers_mut() {
            h.extend(headers);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AiError::Unavailable {
                detail: format!("request error: {e}"),
            })?;
        let resp = self.client.direct.request(req).await.map_err(|e| {
            let what = if e.is_connect() { "connect" } else { "request" };
            transport(what, &e)
        })?;
        Ok(HttpResponse::from_http(resp))
    }
}

impl HttpResponse {
    /// Either client's response, its body boxed.
    fn from_http<B>(resp: http::Response<B>) -> Self
    where
        B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = resp.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: body.map_err(Into::into).boxed(),
        }
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, AiError> {
        self.body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| transport("body", &*e))
    }

    /// The whole body as text (lossy: for error details).
    pub async fn text(self) -> String {
        self.bytes()
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The body chunk by chunk, as it arrives.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes, AiError>> {
        BodyDataStream::new(self.body)
            .map_err(|e| transport("body", &*e))
            .boxed()
    }
}

/// A transport failure: nothing in the response can be trusted, the provider may be down.
/// The error's sources are included (hyper's own message is only "client error").
fn transport(what: &str, e: &(dyn std::error::Error + 'static)) -> AiError {
    let mut detail = format!("{what} error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    AiError::Unavailable { detail }
}

fn reqwest_error(e: reqwest::Error) -> AiError {
    let what = if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    transport(what, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_and_says_connect() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let route = HttpClient::new().expect("client").route_to(&base);
        assert!(!route.is_proxied());
        let err = route
            .post_json(base.parse().expect("uri"), [], b"{}".to_vec())
            .await
            .err()
            .expect("refused");
        let AiError::Unavailable { detail } = err else {
            panic!("not unavailable: {err:?}");
        };
        assert!(detail.starts_with("connect error"), "{detail}");
    }

    /// A provider the proxy rules send through a proxy reaches it there (absolute-form
    /// request line, as HTTP proxies take plain-HTTP requests); others go direct.
    #[tokio::test]
    async fn a_provider_behind_an_egress_proxy_is_called_through_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
        let seen = tokio::spawn(async move {
            let (mut sock, _) = proxy.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n{}") {
                let n = sock.read(&mut buf).await.expect("read");
                assert!(n > 0, "proxy connection closed early");
                got.extend_from_slice(&buf[..n]);
            }
            let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
            sock.write_all(reply.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&got).into_owned()
        });
        let rules = hyper_util::client::proxy::matcher::Matcher::builder()
            .http(proxy_url)
            .no("direct.test")
            .build();
        let client = HttpClient::with_proxies(rules).expect("client");
        assert!(!client.route_to("http://direct.test/v1").is_proxied());
        let route = client.route_to("http://llm.example.test/v1");
        assert!(route.is_proxied());
        let auth = (
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-x"),
        );
        let resp = route
            .post_json(
                "http://llm.example.test/v1/chat/completions"
                    .parse()
                    .expect("uri"),
                [auth],
                b"{}".to_vec(),
            )
            .await
            .expect("answered by the proxy");
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(&resp.bytes().await.expect("body")[..], b"{\"ok\":true}");
        let request = seen.await.expect("proxy task");
        assert!(
            request.starts_with("POST http://llm.example.test/v1/chat/completions HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: bearer sk-x")
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-type: application/json")
        );
    }
}
