//! Splitting a byte stream into newline-terminated lines without ever ending the stream over
//! a line's content: a line that is not UTF-8, or is over the length limit, is a [`Line`] of its
//! own kind, not a decoding error. (A decoder error ends a `FramedRead`, and with it the
//! connection; only the reader's own I/O errors should.)

use std::io;

use tokio_util::bytes::{Buf as _, BytesMut};
use tokio_util::codec::Decoder;

/// One line read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line of text, without its `\n` (or `\r\n`).
    Text(String),
    /// A line that is not valid UTF-8; its bytes are dropped.
    NotUtf8,
    /// A line over the length limit; it is discarded up to its end, never buffered whole.
    TooLong,
}

/// Newline-delimited lines of at most `max_length` bytes.
#[derive(Debug)]
pub(crate) struct LineCodec {
    max_length: usize,
    /// How far the buffer has been searched for a newline.
    next_index: usize,
    /// Inside a line over the limit, skipping to its end.
    discarding: bool,
}

impl LineCodec {
    pub(crate) fn new(max_length: usize) -> Self {
        Self {
            max_length,
            next_index: 0,
            discarding: false,
        }
    }
}

fn line_of(bytes: &[u8]) -> Line {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Line::Text(text.to_owned()),
        Err(_) => Line::NotUtf8,
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        loop {
            let read_to = self.max_length.saturating_add(1).min(buf.len());
            let newline = memchr::memchr(b'\n', &buf[self.next_index..read_to]);
            match (self.discarding, newline) {
                (true, Some(offset)) => {
                    buf.advance(self.next_index + offset + 1);
                    self.discarding = false;
                    self.next_index = 0;
                }
                (true, None) => {
                    buf.advance(read_to);
                    self.next_index = 0;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                (false, Some(offset)) => {
                    let end = self.next_index + offset;
                    self.next_index = 0;
                    let line = buf.split_to(end + 1);
                    return Ok(Some(line_of(&line[..end])));
                }
                (false, None) if buf.len() > self.max_length => {
                    self.discarding = true;
                    self.next_index = 0;
                    return Ok(Some(Line::TooLong));
                }
                (false, None) => {
                    self.next_index = read_to;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        // A last line without its newline.
        if self.discarding || buf.is_empty() {
            buf.clear();
            return Ok(None);
        }
        self.next_index = 0;
        let line = buf.split_to(buf.len());
        Ok(Some(line_of(&line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut codec = LineCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Byte by byte, so that every split point of the input is exercised.
        for byte in input {
            buf.extend_from_slice(&[*byte]);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            out.push(line);
        }
        out
    }

    fn text(s: &str) -> Line {
        Line::Text(s.into())
    }

    #[test]
    fn accepts_lines_after_one_that_is_not_utf8() {
        let input = b"{\"a\":\"\xff\xfe\"}\n{\"b\":1}\r\nlast";
        assert_eq!(
            lines(input, 64),
            [Line::NotUtf8, text("{\"b\":1}"), text("last")]
        );
    }

    #[test]
    fn accepts_lines_after_one_over_the_limit() {
        let input = b"0123456789abcdef\nok\n0123456789";
        assert_eq!(lines(input, 8), [Line::TooLong, text("ok"), Line::TooLong]);
        assert_eq!(lines(b"12345678\n", 8), [text("12345678")]);
    }
}
