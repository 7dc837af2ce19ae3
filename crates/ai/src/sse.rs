//! Server-sent events decoding: bytes as they arrive -> the `data` of each event.
//!
//! Handles LF and CRLF line ends, multi-line `data`, comments, and chunk boundaries that
//! fall anywhere (inside a line or a UTF-8 character).

use bytes::Bytes;
use futures::{Stream, StreamExt};

#[derive(Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    data: Option<String>,
}

impl SseDecoder {
    /// Feed bytes; returns the data of every event completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.buf[start..start + pos];
            start += pos + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                if let Some(d) = self.data.take() {
                    out.push(d);
                }
                continue;
            }
            let line = String::from_utf8_lossy(line);
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            if field == "data" {
                match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
        }
        self.buf.drain(..start);
        out
    }

    /// At end of input: an event not closed by a blank line still counts.
    pub fn finish(&mut self) -> Option<String> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let mut tail = self.feed(&rest);
            tail.extend(self.feed(b"\n"));
            if let Some(d) = tail.pop() {
                return Some(d);
            }
        }
        self.data.take()
    }
}

/// Decode a byte stream into a stream of event data (or transport errors).
pub fn events<S, E>(body: S) -> impl Stream<Item = Result<String, E>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    futures::stream::unfold(
        (
            body,
            SseDecoder::default(),
            std::collections::VecDeque::new(),
            false,
        ),
        |(mut body, mut dec, mut pending, mut ended)| async move {
            loop {
                if let Some(ev) = pending.pop_front() {
                    return Some((Ok(ev), (body, dec, pending, ended)));
                }
                if ended {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => pending.extend(dec.feed(&chunk)),
                    Some(Err(e)) => {
                        ended = true;
                        return Some((Err(e), (body, dec, pending, ended)));
                    }
                    None => {
                        ended = true;
                        pending.extend(dec.finish());
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lf_crlf_comments_and_multiline() {
        let mut d = SseDecoder::default();
        let got = d.feed(
            b": keepalive\n\ndata: a\n\ndata: {\"x\":1}\r\n\r\nevent: e\ndata: l1\ndata: l2\n\n",
        );
        assert_eq!(got, vec!["a", "{\"x\":1}", "l1\nl2"]);
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn unterminated_last_event_is_kept() {
        let mut d = SseDecoder::default();
        assert!(d.feed(b"data: [DONE]").is_empty());
        assert_eq!(d.finish().as_deref(), Some("[DONE]"));
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(
            datas in proptest::collection::vec("[a-zA-Z0-9 {}:\",éü€]{0,40}", 1..8),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let body: String = datas.iter().map(|d| format!("data: {d}{nl}{nl}")).collect();
            let bytes = body.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = SseDecoder::default();
            let mut got = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                got.extend(d.feed(&bytes[prev..c]));
                prev = c;
            }
            got.extend(d.finish());
            prop_assert_eq!(got, datas);
        }
    }
}
