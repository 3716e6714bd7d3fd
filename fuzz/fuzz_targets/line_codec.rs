//! The stdio line splitter: however the input is cut into reads, the lines are the same, and
//! they are exactly the input's newline-separated lines, each judged on its own (text, not
//! UTF-8, or over the limit) so one bad line never ends the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_lp::__fuzz::{LineRead, split_lines};

/// What the splitter must produce, written from its contract rather than its code.
fn expected(input: &[u8], max: usize) -> Vec<LineRead> {
    let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    // The piece after the last newline is a line only when it is not empty.
    if lines.last().is_some_and(|last| last.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|line| {
            if line.len() > max {
                return LineRead::TooLong;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match std::str::from_utf8(line) {
                Ok(text) => LineRead::Text(text.to_owned()),
                Err(_) => LineRead::NotUtf8,
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [max, count, rest @ ..] = data else {
        return;
    };
    let max = usize::from(*max % 64) + if max & 0x80 != 0 { 1024 } else { 1 };
    let count = usize::from(count % 16).min(rest.len());
    let (sizes, input) = rest.split_at(count);
    let pieces: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();

    let whole = split_lines(input, max, &[]);
    assert_eq!(whole, expected(input, max), "max {max}");
    assert_eq!(split_lines(input, max, &pieces), whole, "pieces {pieces:?}");
    assert_eq!(
        split_lines(input, max, &vec![1; input.len()]),
        whole,
        "byte by byte"
    );
});
