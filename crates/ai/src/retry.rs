//! When to try again: exponential backoff with jitter, or the provider's own Retry-After.

use crate::config::RetryConfig;
use rand::Rng;
use std::time::Duration;

/// The wait before attempt `attempt + 1` (attempt counts from 1), or `None` to stop
/// retrying this model: out of attempts, or the provider asks for a longer wait than we
/// honour (then the next model is the better bet).
pub fn backoff(cfg: &RetryConfig, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if attempt >= cfg.max_attempts {
        return None;
    }
    if let Some(wait) = retry_after {
        return (wait <= Duration::from_millis(cfg.max_retry_after_ms)).then_some(wait);
    }
    let exp = cfg
        .base_delay_ms
        .saturating_mul(1u64 << (attempt - 1).min(20))
        .min(cfg.max_delay_ms);
    // "Equal jitter": at least half the step, so retries from many callers spread out
    // without collapsing to zero.
    let half = exp / 2;
    let jitter = if exp > half {
        rand::rng().random_range(0..=exp - half)
    } else {
        0
    };
    Some(Duration::from_millis(half + jitter))
}

/// Parse `retry-after-ms` (OpenAI), then `Retry-After` as seconds or an HTTP date.
pub fn retry_after_from_headers(h: &http::HeaderMap) -> Option<Duration> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_micros((ms * 1000.0) as u64));
    }
    let v = text("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderMap, HeaderValue};

    const CFG: RetryConfig = RetryConfig {
        max_attempts: 4,
        base_delay_ms: 100,
        max_delay_ms: 1_000,
        max_retry_after_ms: 60_000,
    };

    #[test]
    fn exponential_with_bounded_jitter() {
        for _ in 0..200 {
            let d1 = backoff(&CFG, 1, None).unwrap().as_millis();
            let d2 = backoff(&CFG, 2, None).unwrap().as_millis();
            let d3 = backoff(&CFG, 3, None).unwrap().as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            assert!((100..=200).contains(&d2), "{d2}");
            assert!((200..=400).contains(&d3), "{d3}");
        }
        assert_eq!(backoff(&CFG, 4, None), None, "attempts are bounded");
        let capped = RetryConfig {
            max_attempts: 40,
            ..CFG
        };
        assert!(backoff(&capped, 30, None).unwrap() <= Duration::from_millis(1_000));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        assert_eq!(
            backoff(&CFG, 1, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(backoff(&CFG, 1, Some(Duration::from_secs(61))), None);
    }

    #[test]
    fn header_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(1500)),
            "ms form wins"
        );
        let mut h = HeaderMap::new();
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after_from_headers(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new()), None);
    }
}
