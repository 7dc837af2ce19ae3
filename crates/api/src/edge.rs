//! The outermost middleware, run on every request: the request id (accepted or assigned,
//! echoed on the response), errors from anywhere inside in the one JSON shape with that id —
//! in OpenAI's shape under `/v1/` — and the security headers.
//!
//! One layer doing these in order rather than one `from_fn` layer each: every such layer
//! boxes its future and clones the service beneath it on each request. (Less work per call
//! by design; the chat benchmark could not resolve the difference on a noisy VM,
//! bench/RESULTS.md 2026-12-07.)

use crate::routes::openai_compat::UnderV1;
use crate::security_headers::SecurityHeaders;
use crate::{error, request_id};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

pub async fn edge(
    State(headers): State<SecurityHeaders>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = request_id::accept_or_assign(&mut req);
    let under_v1 = UnderV1::of(&req);
    let mut res = next.run(req).await;
    if let Some(v1) = under_v1 {
        res = v1.shape(res);
    }
    let mut res = error::render_errors(res, id.to_str().ok()).await;
    res.headers_mut().insert(request_id::HEADER.clone(), id);
    headers.add_to(&mut res);
    res
}
