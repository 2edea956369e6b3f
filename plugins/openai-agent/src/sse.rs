//! A Server-Sent Events decoder fed with the response body in whatever pieces the
//! network delivers: an event, a line or a UTF-8 character may be split across chunks.
//!
//! It follows the SSE format as chat-completion servers use it: lines end with LF or
//! CRLF; `data:` lines (one optional space after the colon) accumulate into the
//! event's data, joined by `\n`; a blank line dispatches the event; lines starting
//! with `:` are comments (keep-alives); other fields (`event:`, `id:`, `retry:`) are
//! ignored, as are events without data.

/// Longest event (its data plus the unfinished line) the decoder holds, in bytes:
/// a stream that never ends its lines cannot grow memory without bound.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

#[derive(Default)]
pub struct Decoder {
    /// Bytes of the line not yet ended by a newline.
    line: Vec<u8>,
    /// `data:` lines of the event being read, joined by `\n`.
    data: String,
    /// Whether the event being read has a `data:` line (its data may be empty).
    has_data: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next bytes of the body; returns the data of every event they complete,
    /// in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(data) = self.take_line(&line)? {
                events.push(data);
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "the server sent an event longer than {MAX_EVENT_BYTES} bytes"
            ));
        }
        Ok(events)
    }

    /// The body ended: the data of an event whose lines were complete but that was not
    /// followed by a blank line (lenient; strict SSE would drop it). An unfinished line
    /// is dropped.
    pub fn finish(&mut self) -> Option<String> {
        self.line.clear();
        self.has_data.then(|| {
            self.has_data = false;
            std::mem::take(&mut self.data)
        })
    }

    /// Process one complete line; returns an event's data when the line dispatches it.
    fn take_line(&mut self, line: &[u8]) -> Result<Option<String>, String> {
        if line.is_empty() {
            return Ok(self.has_data.then(|| {
                self.has_data = false;
                std::mem::take(&mut self.data)
            }));
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let line = std::str::from_utf8(line)
            .map_err(|e| format!("the server sent an event line that is not UTF-8 ({e})"))?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(body: &[u8], piece: usize) -> Vec<String> {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        for chunk in body.chunks(piece) {
            events.extend(decoder.push(chunk).unwrap());
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn events_split_anywhere_decode_the_same() {
        let body =
            ": keep-alive\n\ndata: {\"a\":\"é\"}\n\nevent: x\r\ndata:[DONE]\r\n\r\n".as_bytes();
        let expected = ["{\"a\":\"é\"}", "[DONE]"];
        for piece in 1..=body.len() {
            assert_eq!(decode_in_pieces(body, piece), expected, "piece {piece}");
        }
    }

    #[test]
    fn multi_line_data_comments_and_other_fields() {
        let body = b"id: 1\ndata: a\n: note\ndata: b\nretry: 10\n\n\n\nevent: ping\n\ndata\n\n";
        assert_eq!(decode_in_pieces(body, 64), ["a\nb", ""]);
    }

    #[test]
    fn complete_lines_at_the_end_still_count_but_a_cut_line_does_not() {
        assert_eq!(decode_in_pieces(b"data: x\n", 3), ["x"]);
        assert!(decode_in_pieces(b"data: {\"cut", 3).is_empty());
    }

    #[test]
    fn refuses_endless_lines_and_bad_utf8() {
        let mut decoder = Decoder::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(decoder.push(&big).unwrap_err().contains("longer than"));
        let mut decoder = Decoder::new();
        assert!(
            decoder
                .push(b"data: \xff\n\n")
                .unwrap_err()
                .contains("not UTF-8")
        );
    }
}
